"""Claims of docs/pytorch/mlp.md that tests/pytorch/test_mlp.py does not check."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.pytorch.mlp import MLP2D, accuracy, make_moons


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


def _moons_net_at_step_0() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    X, y = make_moons(512, 0.15, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    return MLP2D(32), X, y


@torch.no_grad()
def test_first_loss_separates_scale_bugs_from_label_bugs() -> None:
    net, X, y = _moons_net_at_step_0()
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    near_log_c = {
        "plain": F.cross_entropy(net(X), y).item(),
        "shuffled labels": F.cross_entropy(net(X), shuffled).item(),
        "double softmax": F.cross_entropy(net(X).softmax(dim=1), y).item(),
    }
    for name, loss in near_log_c.items():
        assert abs(loss - math.log(2)) < 0.02, name  # label bugs are invisible at step 0
    big = copy.deepcopy(net)
    for p in big.parameters():
        p.mul_(10)
    far = {
        "inputs x100": F.cross_entropy(net(100 * X), y).item(),
        "weights x10": F.cross_entropy(big(X), y).item(),
        "sum, not mean": F.cross_entropy(net(X), y, reduction="sum").item(),
    }
    assert round(far["inputs x100"], 2) == 1.87
    assert round(far["weights x10"], 1) == 22.7
    assert round(far["sum, not mean"]) == 349
    assert far["sum, not mean"] == pytest.approx(len(y) * near_log_c["plain"])


def test_label_bugs_show_later_as_a_plateau_or_no_held_out_gain() -> None:
    gen = torch.Generator().manual_seed(0)
    X, y = make_moons(512, 0.15, gen)
    X_test, y_test = make_moons(512, 0.15, gen)
    shuffled = y[torch.randperm(len(y), generator=torch.Generator().manual_seed(1))]
    results = {}
    for name, labels, double in [("right", y, False), ("shuffled", shuffled, False),
                                 ("double softmax", y, True)]:  # fmt: skip
        torch.manual_seed(0)
        net = MLP2D(32)
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        for _ in range(200):
            z = net(X)
            loss = F.cross_entropy(z.softmax(dim=1) if double else z, labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        results[name] = (loss.item(), accuracy(net, X_test, y_test))
    assert results["right"][1] > 0.95
    assert results["shuffled"][1] < 0.7  # held-out accuracy does not rise
    floor = math.log(1 + math.exp(-1))
    assert results["double softmax"][0] > floor > results["right"][0]  # stuck above the floor
