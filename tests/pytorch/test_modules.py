"""Parameters vs buffers, the plain-list pitfall, state_dict round trips."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snippets.pytorch.modules import BrokenStack, RunningNorm, Stack, count_params, module_demo


def test_parameters_buffers_and_state_dict() -> None:
    norm = RunningNorm(3)
    assert [n for n, _ in norm.named_parameters()] == ["scale"]
    assert sorted(n for n, _ in norm.named_buffers()) == ["running_mean", "steps"]
    assert list(norm.state_dict()) == ["scale", "running_mean"]  # steps is not persistent


def test_running_mean_follows_the_ema_in_train_mode_only() -> None:
    norm = RunningNorm(2, momentum=0.25)
    x = torch.tensor([[1.0, 3.0], [3.0, 5.0]])  # batch mean (2, 4)
    norm(x)
    torch.testing.assert_close(norm.running_mean, torch.tensor([0.5, 1.0]))  # 0.75·0 + 0.25·m
    norm.eval()
    out = norm(x)
    torch.testing.assert_close(norm.running_mean, torch.tensor([0.5, 1.0]))
    torch.testing.assert_close(out, x - torch.tensor([0.5, 1.0]))
    assert int(norm.steps) == 1


def test_plain_list_hides_parameters_modulelist_registers_them() -> None:
    assert count_params(BrokenStack(4, 3)) == 0
    assert count_params(Stack(4, 3)) == 3 * (4 * 4 + 4)
    optimizer = torch.optim.SGD(Stack(4, 3).parameters(), lr=0.1)
    assert sum(p.numel() for p in optimizer.param_groups[0]["params"]) == 60


def test_count_params_trainable_only() -> None:
    model = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    model[0].requires_grad_(False)
    assert count_params(model) == 8 + 3
    assert count_params(model, trainable_only=True) == 3


def test_module_demo_numbers() -> None:
    out = module_demo()
    assert out["counts"] == {"plain list": 0, "ModuleList": 60, "Sequential": 58, "ModuleDict": 30}
    assert out["frozen_in_eval"] and out["reload_equal"]
    assert out["missing_keys"] == 5  # 6 tensors in Stack(4, 3), one given


def test_running_norm_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="x"):
        RunningNorm(3)(torch.zeros(3))
    with pytest.raises(ValueError, match="x"):
        RunningNorm(3)(torch.zeros(2, 3, dtype=torch.long))


def test_running_norm_rejects_a_feature_count_and_momentum_it_cannot_use() -> None:
    with pytest.raises(ValueError, match=r"x must have shape \(N, D\) = \(2, 3\)"):
        RunningNorm(3)(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="momentum must be in"):
        RunningNorm(3, momentum=5.0)
    with pytest.raises(ValueError, match="momentum must be > 0"):
        RunningNorm(3, momentum=0.0)
    with pytest.raises(ValueError, match="dim must be a positive int"):
        RunningNorm(0)
    norm = RunningNorm(3, momentum=1.0)  # the upper end is allowed: mean of the last batch
    norm(torch.full((2, 3), 4.0))
    assert norm.running_mean.tolist() == [4.0, 4.0, 4.0]
