"""Claims of the GAE page: λ = 0 is the TD error, λ = 1 is the discounted return minus the
value, the vectorised recursion equals the loop, and nothing past the last valid token is
bootstrapped."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.gae import gae, gae_reference, next_valid_values
from snippets.rl.policy_gradient import discounted_returns

MASK = torch.tensor(
    [
        [1, 1, 1, 1, 1, 1, 1],  # full row
        [1, 1, 1, 1, 0, 0, 0],  # right padding
        [0, 0, 1, 1, 1, 1, 1],  # left padding (prompt first)
        [0, 1, 1, 0, 1, 1, 0],  # interior gap (e.g. a tool observation)
        [0, 0, 0, 0, 0, 0, 0],  # empty row
    ]
)


def _data(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    rewards = torch.randn(*MASK.shape, generator=g, dtype=torch.float64)  # (B, T)
    values = torch.randn(*MASK.shape, generator=g, dtype=torch.float64)  # (B, T)
    return rewards, values


def _next_valid_value(values: torch.Tensor) -> torch.Tensor:
    """V_{t+1} read at the next valid position of the row (0 after the last one)."""
    nxt = torch.zeros_like(values)
    for b in range(values.shape[0]):
        steps = [t for t in range(values.shape[1]) if MASK[b, t]]
        for i, t in enumerate(steps[:-1]):
            nxt[b, t] = values[b, steps[i + 1]]
    return nxt


def test_next_valid_values_reads_the_next_valid_position() -> None:
    _, values = _data()
    assert_close(next_valid_values(values, MASK.bool()) * MASK, _next_valid_value(values))


def test_lambda_zero_is_the_td_error() -> None:
    rewards, values = _data()
    for gamma in (1.0, 0.9):
        advantages, _ = gae(rewards, values, MASK, gamma, lam=0.0)
        # δ_t = r_t + γ V_{t+1} − V_t
        td = rewards + gamma * _next_valid_value(values) - values  # (B, T)
        assert_close(advantages, td * MASK)


def test_lambda_one_is_return_minus_value() -> None:
    rewards, values = _data(1)
    for gamma in (1.0, 0.9):
        advantages, returns = gae(rewards, values, MASK, gamma, lam=1.0)
        mc_return = discounted_returns(rewards, MASK, gamma)  # (B, T)
        assert_close(advantages, (mc_return - values) * MASK)
        assert_close(returns, mc_return)  # the value target is then the Monte-Carlo return


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.99, 0.95), (0.5, 0.3), (1.0, 1.0)])
def test_vectorised_matches_reference_loop(gamma: float, lam: float) -> None:
    rewards, values = _data(2)
    advantages, returns = gae(rewards, values, MASK, gamma, lam)
    ref_advantages, ref_returns = gae_reference(rewards, values, MASK, gamma, lam)
    assert_close(advantages, ref_advantages)
    assert_close(returns, ref_returns)
    assert_close(returns, (advantages + values) * MASK)


def test_no_bootstrap_past_the_last_valid_token_and_garbage_ignored() -> None:
    rewards, values = _data(3)
    advantages, returns = gae(rewards, values, MASK, 0.99, 0.95)
    garbage_rewards = rewards.masked_fill(MASK == 0, float("nan"))
    garbage_values = values.masked_fill(MASK == 0, 1e9)
    garbage_advantages, garbage_returns = gae(garbage_rewards, garbage_values, MASK, 0.99, 0.95)
    assert_close(garbage_advantages, advantages)
    assert_close(garbage_returns, returns)
    assert (advantages[MASK == 0] == 0).all() and (returns[MASK == 0] == 0).all()
    # last valid token of the right-padded row: A = r − V, nothing bootstrapped after it
    assert_close(advantages[1, 3], rewards[1, 3] - values[1, 3])


def test_outputs_are_constants() -> None:
    rewards, values = _data(4)
    values.requires_grad_(True)
    advantages, returns = gae(rewards, values, MASK, 1.0, 0.95)
    assert advantages.grad_fn is None and returns.grad_fn is None


def test_bad_inputs_raise() -> None:
    rewards, values = _data()
    with pytest.raises(ValueError, match="gamma"):
        gae(rewards, values, MASK, 1.1, 0.9)
    with pytest.raises(ValueError, match="lam"):
        gae(rewards, values, MASK, 0.9, -0.5)
    with pytest.raises(ValueError, match="values"):
        gae(rewards, values[:, :-1], MASK, 0.9, 0.9)
    with pytest.raises(ValueError, match=r"rewards.*\(B, T\)"):
        gae(rewards[0], values[0], MASK[0], 0.9, 0.9)
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        gae(rewards, values, MASK[:, :-1], 0.9, 0.9)
    with pytest.raises(ValueError, match=r"rewards.*finite"):
        gae(rewards.masked_fill(MASK == 1, float("nan")), values, MASK, 0.9, 0.9)
    with pytest.raises(ValueError, match=r"values.*finite"):
        gae(rewards, values.masked_fill(MASK == 1, float("inf")), MASK, 0.9, 0.9)
    with pytest.raises(ValueError, match="values"):
        gae(rewards, values.long(), MASK, 0.9, 0.9)
