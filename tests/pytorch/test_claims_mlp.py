"""Claims of docs/pytorch/mlp.md that tests/pytorch/test_mlp.py does not check."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def test_cross_entropy_is_mean_negative_log_softmax_of_the_target() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(6, 4, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 4, (6,), generator=gen)
    by_hand = -torch.log_softmax(logits, dim=1).gather(1, y.unsqueeze(1)).mean()
    torch.testing.assert_close(F.cross_entropy(logits, y), by_hand)
    torch.testing.assert_close(F.nll_loss(torch.log_softmax(logits, 1), y), by_hand)


def test_softmax_before_cross_entropy_puts_a_floor_under_the_loss() -> None:
    logits = torch.tensor([[50.0, -50.0]])  # as confident as it gets
    y = torch.tensor([0])
    assert F.cross_entropy(logits, y).item() < 1e-6
    doubled = F.cross_entropy(torch.softmax(logits, dim=1), y).item()
    assert math.isclose(doubled, math.log(1 + math.exp(-1)), rel_tol=1e-6)  # 0.3133


def test_two_class_softmax_cross_entropy_is_logistic_loss_on_the_logit_gap() -> None:
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(8, 2, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 2, (8,), generator=gen)
    gap = logits[:, 1] - logits[:, 0]
    torch.testing.assert_close(
        F.cross_entropy(logits, y), F.binary_cross_entropy_with_logits(gap, y.double())
    )


def test_linear_layers_without_activation_collapse_to_one_linear_map() -> None:
    torch.manual_seed(0)
    a, b = nn.Linear(2, 16).double(), nn.Linear(16, 3).double()
    x = torch.randn(5, 2, dtype=torch.float64)
    w = b.weight @ a.weight  # (3, 2)
    bias = b.weight @ a.bias + b.bias  # (3,)
    torch.testing.assert_close(b(a(x)), x @ w.T + bias)


def test_log_of_softmax_underflows_where_log_softmax_does_not() -> None:
    z = torch.tensor([0.0, -200.0])
    assert torch.log(torch.softmax(z, dim=0))[1].item() == float("-inf")
    assert torch.log_softmax(z, dim=0)[1].item() == -200.0
