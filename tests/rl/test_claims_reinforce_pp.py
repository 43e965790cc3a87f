"""Claims of the REINFORCE++ page not already in tests/rl/test_advantages.py: the return of a
token is the outcome reward minus β times the KL still to come; whitening over tokens weights
each response by its length; the batch baseline keeps the reward scale of each prompt, unlike
GRPO's per-group division."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages, reinforce_pp_advantages
from snippets.rl.kl import kl_k1
from snippets.rl.policy_gradient import discounted_returns


def _terminal(reward: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token rewards that hold reward[b] at the last valid token of row b, 0 elsewhere."""
    last = mask.shape[1] - 1 - mask.long().flip(1).argmax(1)  # (B,) OpenRLHF's eos index
    out = torch.zeros(mask.shape, dtype=reward.dtype)
    out[torch.arange(len(reward)), last] = reward
    return out


def test_return_is_outcome_minus_future_kl() -> None:
    g = torch.Generator().manual_seed(0)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    logp = -torch.rand(2, 4, generator=g, dtype=torch.float64)
    ref = -torch.rand(2, 4, generator=g, dtype=torch.float64)
    outcome = torch.tensor([1.0, -0.5], dtype=torch.float64)
    beta = 0.1
    kl = kl_k1(logp, ref)  # (B, T)
    token_rewards = _terminal(outcome, mask) - beta * kl
    returns = discounted_returns(token_rewards, mask, 1.0)
    for b in range(2):
        for t in range(int(mask[b].sum())):
            future_kl = kl[b, t : int(mask[b].sum())].sum()
            assert_close(returns[b, t], outcome[b] - beta * future_kl)


def test_token_whitening_weights_responses_by_length() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0]], dtype=torch.bool)
    outcome = torch.tensor([1.0, 0.0], dtype=torch.float64)
    adv = reinforce_pp_advantages(_terminal(outcome, mask), mask, gamma=1.0)
    lengths = mask.sum(1).double()  # (B,) 6 and 2
    mu = (lengths * outcome).sum() / lengths.sum()  # 0.75, not the per-response mean 0.5
    sigma = ((lengths * (outcome - mu) ** 2).sum() / lengths.sum()).sqrt()
    expected = torch.where(mask, ((outcome - mu) / sigma)[:, None], torch.zeros(()).double())
    assert_close(adv, expected)
    # so the long correct answer gets less credit per token than the short wrong one loses
    assert adv[0, 0] < -adv[1, 0]


def test_batch_baseline_keeps_each_prompts_scale_grpo_does_not() -> None:
    rewards = torch.tensor([[1.0, 0.0], [0.95, 0.85]], dtype=torch.float64)  # (P, G)
    mask = torch.ones(4, 2, dtype=torch.bool)  # 4 responses of 2 tokens
    flat = rewards.reshape(-1)
    plus = reinforce_pp_advantages(_terminal(flat, mask), mask)[:, 0].view(2, 2)
    centred = (rewards - rewards.mean(1, keepdim=True)).reshape(-1)
    with_baseline = reinforce_pp_advantages(_terminal(centred, mask), mask)[:, 0].view(2, 2)
    grpo = grpo_advantages(rewards)
    # GRPO gives both prompts the same spread; the batch-normalised versions keep the 10:1 ratio
    assert_close(grpo[0].abs(), grpo[1].abs(), atol=1e-4, rtol=0)  # eps = 1e-6 in the std
    for adv in (plus, with_baseline):
        ratio = (adv[0, 0] - adv[0, 1]) / (adv[1, 0] - adv[1, 1])
        assert_close(ratio, torch.tensor(10.0).double())
