"""Claims of docs/rl/comparison.md: how the advantage estimators relate on one rewards tensor.

Each test matches one bullet under "One rewards tensor, every estimator" or one answer of the
interview questions. The per-prompt identities are checked on random rewards in float64, the
page's numbers on the page's own tensor.
"""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages, reinforce_pp_advantages, rloo_advantages
from snippets.rl.dpo import dpo_loss
from snippets.rl.gae import gae

PAGE_REWARDS = torch.tensor(
    [[1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 1.0, 1.0]], dtype=torch.float64
)  # (P, G) the page's verifier scores


def _outcome_tokens(rewards: torch.Tensor, steps: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Flatten (P, G) rewards to (B, T) token rewards with the reward on the last token."""
    batch = rewards.numel()
    token_rewards = torch.zeros(batch, steps, dtype=rewards.dtype)  # (B, T)
    token_rewards[:, -1] = rewards.flatten()
    return token_rewards, torch.ones(batch, steps, dtype=torch.bool)


def _random_rewards(seed: int = 0, prompts: int = 6, group: int = 5) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(prompts, group, generator=g, dtype=torch.float64)  # (P, G)


def test_rloo_is_dr_grpo_scaled_by_g_over_g_minus_one() -> None:
    rewards = _random_rewards()
    group = rewards.shape[1]
    dr_grpo = grpo_advantages(rewards, scale_by_std=False)
    assert_close(rloo_advantages(rewards), group / (group - 1) * dr_grpo)
    # the page's numbers: 4/3 · 0.75 = 1
    assert_close(rloo_advantages(PAGE_REWARDS)[0, 0].item(), 1.0)
    assert_close(grpo_advantages(PAGE_REWARDS, scale_by_std=False)[0, 0].item(), 0.75)


def test_grpo_is_dr_grpo_divided_by_the_group_std() -> None:
    rewards = _random_rewards(seed=1)
    std = rewards.std(dim=1, keepdim=True, correction=1)  # (P, 1)
    expected = grpo_advantages(rewards, scale_by_std=False) / (std + 1e-6)
    assert_close(grpo_advantages(rewards), expected)
    # the hard prompt's lone correct answer: 0.75 / 0.5 = 1.5, three times the medium one's 0.5
    page = grpo_advantages(PAGE_REWARDS)
    assert_close(page[0, 0].item(), 1.5, atol=1e-5, rtol=0.0)
    assert_close(page[1, 0].item(), 0.5, atol=1e-5, rtol=0.0)
    # both mixed groups have std 0.5, so the 3:1 ratio is already in Dr. GRPO (centring)
    dr = grpo_advantages(PAGE_REWARDS, scale_by_std=False)
    assert_close(PAGE_REWARDS[:2].std(dim=1), torch.full((2,), 0.5, dtype=PAGE_REWARDS.dtype))
    assert_close((dr[0, 0] / dr[1, 0]).item(), 3.0)
    # a half-solved group has a larger std (0.577): there the division changes the weight
    half = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert_close(grpo_advantages(half)[0, 0].item(), 0.866, atol=1e-3, rtol=0.0)
    assert_close(grpo_advantages(half, scale_by_std=False)[0, 0].item(), 0.5)


def test_all_equal_group_is_zero_for_group_methods_only() -> None:
    token_rewards, mask = _outcome_tokens(PAGE_REWARDS)
    for advantages in (
        rloo_advantages(PAGE_REWARDS),
        grpo_advantages(PAGE_REWARDS),
        grpo_advantages(PAGE_REWARDS, scale_by_std=False),
    ):
        assert torch.equal(advantages[2], torch.zeros(4, dtype=torch.float64))
    # REINFORCE++ compares with the batch: the easy prompt's answers stay positive
    reinforce_pp = reinforce_pp_advantages(token_rewards, mask)[:, 0].reshape(3, 4)  # (P, G)
    assert (reinforce_pp[2] > 0.5).all()


def test_reinforce_pp_baseline_is_the_batch_mean() -> None:
    token_rewards, mask = _outcome_tokens(PAGE_REWARDS)
    advantages = reinforce_pp_advantages(token_rewards, mask)  # (B, T)
    flat = PAGE_REWARDS.flatten()
    mean = flat.mean()  # 8 / 12
    assert_close(mean.item(), 8.0 / 12.0)
    std = flat.var(correction=0).sqrt()  # population std over the batch
    # γ = 1 and the reward on the last token: every token of a response has the same return
    expected = ((flat - mean) / std).unsqueeze(1).expand(-1, 3)
    assert_close(advantages, expected)
    assert_close(advantages[0, 0].item(), math.sqrt(0.5), atol=1e-6, rtol=0.0)  # +0.71


def test_gae_with_lambda_one_is_reward_minus_the_critic_at_the_first_token() -> None:
    token_rewards, mask = _outcome_tokens(PAGE_REWARDS)
    g = torch.Generator().manual_seed(2)
    values = torch.rand(token_rewards.shape, generator=g, dtype=torch.float64)  # (B, T)
    advantages, _ = gae(token_rewards, values, mask, gamma=1.0, lam=1.0)
    assert_close(advantages[:, 0], PAGE_REWARDS.flatten() - values[:, 0])


def test_reinforce_without_baseline_never_pushes_a_wrong_answer_down() -> None:
    # with 0/1 rewards the raw return is ≥ 0: wrong answers get weight 0, never negative
    assert (PAGE_REWARDS >= 0).all()
    assert (rloo_advantages(PAGE_REWARDS)[PAGE_REWARDS == 0] < 0).all()


def test_dpo_pairs_and_loss_at_the_reference() -> None:
    pairs = [
        (p, int(r.argmax()), int(r.argmin()))
        for p, r in enumerate(PAGE_REWARDS)
        if r.max() > r.min()
    ]
    assert pairs == [(0, 0, 1), (1, 0, 3)]  # the all-correct prompt yields no pair
    g = torch.Generator().manual_seed(3)
    logps = -10.0 * torch.rand(5, generator=g, dtype=torch.float64)  # (B,)
    rejected = logps - 2.0
    loss, _, _ = dpo_loss(logps, rejected, logps, rejected, beta=0.3)
    assert_close(loss, torch.tensor(math.log(2.0), dtype=torch.float64))
