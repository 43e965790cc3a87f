"""Claims of the reward-model page: the loss is −log σ(r_c − r_r), stable for huge gaps,
its gradient is −σ(−Δ), and maximum likelihood recovers true reward differences."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.bradley_terry import bradley_terry_loss, preference_probability


def test_loss_value_and_gradient() -> None:
    r_c = torch.tensor([1.0, 0.0, -2.0], dtype=torch.float64, requires_grad=True)
    r_r = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64, requires_grad=True)
    loss = bradley_terry_loss(r_c, r_r)
    diff = (r_c - r_r).detach()
    assert_close(loss, -torch.log(torch.sigmoid(diff)).mean())
    assert float(bradley_terry_loss(torch.zeros(4), torch.zeros(4))) == pytest.approx(math.log(2))
    loss.backward()
    assert_close(r_c.grad, -torch.sigmoid(-diff) / 3)
    assert_close(r_r.grad, torch.sigmoid(-diff) / 3)


def test_numerically_stable_for_huge_gaps() -> None:
    r_c = torch.tensor([1000.0, -1000.0])  # float32: sigmoid(−1000) underflows to 0
    r_r = torch.zeros(2)
    naive = -torch.log(torch.sigmoid(r_c - r_r)).mean()
    assert not math.isfinite(float(naive))
    assert float(bradley_terry_loss(r_c, r_r)) == pytest.approx(500.0)  # (0 + 1000) / 2


def test_margin_shifts_the_difference() -> None:
    r_c, r_r = torch.tensor([2.0, 1.0]), torch.tensor([0.0, 0.5])
    margin = torch.tensor([1.0, 0.25])
    assert_close(bradley_terry_loss(r_c, r_r, margin), bradley_terry_loss(r_c - margin, r_r))
    assert_close(bradley_terry_loss(r_c, r_r, 1.0), bradley_terry_loss(r_c - 1.0, r_r))


def test_maximum_likelihood_recovers_true_reward_differences() -> None:
    g = torch.Generator().manual_seed(0)
    true_reward = torch.tensor([0.0, 0.5, 1.5, -1.0, 2.5], dtype=torch.float64)
    n = 20_000
    a = torch.randint(0, 5, (n,), generator=g)
    b = (a + torch.randint(1, 5, (n,), generator=g)) % 5  # b ≠ a
    a_wins = torch.rand(n, generator=g, dtype=torch.float64) < preference_probability(
        true_reward[a], true_reward[b]
    )
    chosen, rejected = torch.where(a_wins, a, b), torch.where(a_wins, b, a)

    reward = torch.zeros(5, dtype=torch.float64, requires_grad=True)  # the "reward model"
    opt = torch.optim.LBFGS([reward], max_iter=100, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = bradley_terry_loss(reward[chosen], reward[rejected])
        loss.backward()
        return loss

    opt.step(closure)
    fitted = reward.detach() - reward.detach()[0]
    # only differences are identifiable; 20k comparisons: std error of each ≈ 0.03
    assert_close(fitted, true_reward - true_reward[0], atol=0.12, rtol=0)


def test_bad_inputs_raise() -> None:
    with pytest.raises(ValueError, match=r"r_chosen.*\(B,\)"):
        bradley_terry_loss(torch.zeros(2, 2), torch.zeros(2, 2))
    with pytest.raises(ValueError, match="r_rejected"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(3))
    with pytest.raises(ValueError, match=r"r_chosen.*finite"):
        bradley_terry_loss(torch.tensor([float("nan")]), torch.zeros(1))
    with pytest.raises(ValueError, match="r_chosen"):
        bradley_terry_loss(torch.zeros(2, dtype=torch.long), torch.zeros(2))
    with pytest.raises(ValueError, match=r"margin.*\(B,\)"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), margin=torch.zeros(3))
    with pytest.raises(ValueError, match=r"margin.*finite"):
        bradley_terry_loss(torch.zeros(2), torch.zeros(2), margin=float("inf"))
