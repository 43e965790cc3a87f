"""Claims of the GAE page not covered by tests/rl/test_gae.py: GAE is the (1 − λ)λ^{k−1}
weighted average of k-step advantages, its bias is γ·b_{t+1} at λ = 0 and 0 at λ = 1 for a
critic off by b, its reward weights are (γλ)^l (so the variance grows with λ), and the
"zero the values, read the next column" convention of TRL / OpenRLHF matches ours for right
padding but not for a gap in the middle of a row; TRL's extra position after the last token
changes the last advantage by (1 − λ)(V_extra − score) at γ = 1."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.gae import gae


def _k_step(rewards: torch.Tensor, values: torch.Tensor, t: int, k: int, gamma: float) -> float:
    """Â^(k)_t = Σ_{l<k} γ^l r_{t+l} + γ^k V_{t+k} − V_t on one full row (V = 0 past the end)."""
    n = rewards.shape[0]
    total = sum(gamma**j * float(rewards[t + j]) for j in range(min(k, n - t)))
    bootstrap = gamma**k * float(values[t + k]) if t + k < n else 0.0
    return total + bootstrap - float(values[t])


@pytest.mark.parametrize(("gamma", "lam"), [(1.0, 0.95), (0.9, 0.5), (0.99, 0.0), (1.0, 1.0)])
def test_gae_is_the_weighted_average_of_k_step_advantages(gamma: float, lam: float) -> None:
    g = torch.Generator().manual_seed(0)
    n = 6
    rewards = torch.randn(n, generator=g, dtype=torch.float64)
    values = torch.randn(n, generator=g, dtype=torch.float64)
    advantages, _ = gae(rewards[None], values[None], torch.ones(1, n), gamma, lam)
    for t in range(n):
        horizon = n - t  # k ≥ horizon is the Monte Carlo advantage
        weighted = sum(
            (1 - lam) * lam ** (k - 1) * _k_step(rewards, values, t, k, gamma)
            for k in range(1, horizon)
        )
        weighted += lam ** (horizon - 1) * _k_step(rewards, values, t, horizon, gamma)
        assert advantages[0, t].item() == pytest.approx(weighted, abs=1e-12)


@pytest.mark.parametrize("gamma", [1.0, 0.9])
def test_bias_is_gamma_b_next_at_lambda_zero_and_zero_at_lambda_one(gamma: float) -> None:
    g = torch.Generator().manual_seed(1)
    n = 5
    mean_rewards = torch.randn(1, n, generator=g, dtype=torch.float64)
    true_values = torch.zeros(1, n, dtype=torch.float64)
    running = torch.zeros(1, dtype=torch.float64)
    for t in reversed(range(n)):  # V*_t = E[r_t] + γ V*_{t+1}
        running = mean_rewards[:, t] + gamma * running
        true_values[:, t] = running
    b = torch.randn(1, n, generator=g, dtype=torch.float64)  # critic error
    mask = torch.ones(1, n)
    # E[A_t] = GAE of the mean rewards (linearity); the unbiased target is E[G_t] − V_t = −b_t
    biases = {}
    for lam in (0.0, 0.5, 1.0):
        mean_adv, _ = gae(mean_rewards, true_values + b, mask, gamma, lam)
        biases[lam] = mean_adv + b
    b_next = torch.cat([b[:, 1:], torch.zeros(1, 1, dtype=torch.float64)], dim=1)
    assert_close(biases[0.0], gamma * b_next)
    assert_close(biases[1.0], torch.zeros_like(b))
    assert not torch.allclose(biases[0.5], torch.zeros_like(b))


def test_reward_weights_are_powers_of_gamma_lambda_and_variance_grows() -> None:
    n, gamma = 6, 0.99
    stds = []
    for lam in (0.0, 0.3, 0.7, 0.95, 1.0):
        eye = torch.eye(n, dtype=torch.float64)  # row l: a unit reward at position l
        zeros = torch.zeros(n, n, dtype=torch.float64)
        advantages, _ = gae(eye, zeros, torch.ones(n, n), gamma, lam)
        weights = advantages[:, 0]  # ∂A_0/∂r_l
        expected = torch.tensor([(gamma * lam) ** j for j in range(n)], dtype=torch.float64)
        assert_close(weights, expected)
        stds.append(float(weights.square().sum().sqrt()))  # std of A_0 for unit-variance rewards
    assert stds == sorted(stds) and stds[0] == 1.0 and stds[-1] > stds[0]


def _next_column_gae(rewards, values, mask, gamma, lam):  # TRL / OpenRLHF convention
    values = values * mask
    rewards = rewards * mask
    last, out = torch.zeros(rewards.shape[0], dtype=rewards.dtype), []
    for t in reversed(range(rewards.shape[1])):
        next_values = values[:, t + 1] if t < rewards.shape[1] - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lam * last
        out.append(last)
    return torch.stack(out[::-1], dim=1) * mask


def test_next_column_convention_matches_for_right_padding_only() -> None:
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(3, 6, generator=g, dtype=torch.float64)
    values = torch.randn(3, 6, generator=g, dtype=torch.float64)
    right = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]])
    ours, _ = gae(rewards, values, right, 1.0, 0.95)
    assert_close(ours, _next_column_gae(rewards, values, right, 1.0, 0.95))
    gap = torch.tensor([[1, 1, 0, 0, 1, 1]])  # e.g. a tool observation in the middle
    ours, _ = gae(rewards[:1], values[:1], gap, 1.0, 0.95)
    theirs = _next_column_gae(rewards[:1], values[:1], gap, 1.0, 0.95)
    assert not torch.allclose(ours, theirs)


def test_prompt_position_in_the_mask_leaves_response_advantages_unchanged() -> None:
    # "Prompt tokens in the mask": the recursion runs backwards, so a prompt position left in
    # the mask only gets an advantage of its own; the response's advantages do not move.
    g = torch.Generator().manual_seed(4)
    rewards = torch.randn(2, 6, generator=g, dtype=torch.float64)
    values = torch.randn(2, 6, generator=g, dtype=torch.float64)
    response_only = torch.tensor([[0, 0, 1, 1, 1, 1], [0, 0, 1, 1, 1, 0]])
    with_prompt = torch.tensor([[0, 1, 1, 1, 1, 1], [0, 1, 1, 1, 1, 0]])
    ours, _ = gae(rewards, values, response_only, 1.0, 0.95)
    leaky, _ = gae(rewards, values, with_prompt, 1.0, 0.95)
    response = response_only.bool()
    assert_close(leaky[response], ours[response])
    assert (leaky[:, 1] != 0).all() and (ours[:, 1] == 0).all()  # the prompt token now has one


def test_trls_extra_position_changes_the_last_advantage_by_one_minus_lambda() -> None:
    """TRL: score at the position after the last token (KL 0 there), values kept up to it."""
    g = torch.Generator().manual_seed(5)
    kl_rewards = torch.randn(1, 4, generator=g, dtype=torch.float64)  # -β k1, 3 valid tokens
    values = torch.randn(1, 4, generator=g, dtype=torch.float64)  # column 3: V at the extra spot
    score = 0.7
    mask = torch.tensor([[1, 1, 1, 0]])
    ours_rewards = kl_rewards.clone()
    ours_rewards[0, 3] = 0.0
    ours_rewards[0, 2] += score  # ours: the score on the last valid token
    trl_rewards = kl_rewards.clone()
    trl_rewards[0, 3] = score  # TRL: on the next position, whose KL is 0
    extended = torch.ones(1, 4, dtype=torch.long)  # TRL's ~padding_mask_p1
    for lam in (0.95, 0.5, 1.0):
        ours, _ = gae(ours_rewards, values, mask, 1.0, lam)
        trl = _next_column_gae(trl_rewards, values, extended, 1.0, lam)
        expected = (1 - lam) * (values[0, 3] - score)
        assert_close(trl[0, 2] - ours[0, 2], expected)
    values[0, 3] = score  # a critic that predicts the score there: the conventions agree
    ours, _ = gae(ours_rewards, values, mask, 1.0, 0.9)
    assert_close(_next_column_gae(trl_rewards, values, extended, 1.0, 0.9)[:, :3], ours[:, :3])
