"""The toy bandit is what the tour trains on: check its reward bookkeeping and its
preference data against exact expectations."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.toy import (
    SEQ_LEN,
    TOKEN_REWARD,
    TablePolicy,
    expected_reward,
    preference_pairs,
    sample,
    sequence_reward,
    token_rewards,
)


def test_uniform_policy_reward_and_shapes() -> None:
    policy = TablePolicy()
    assert expected_reward(policy) == pytest.approx(float(TOKEN_REWARD.mean()))  # 0.4375
    tokens = sample(policy, 16, torch.Generator().manual_seed(0))
    assert tokens.shape == (16, SEQ_LEN) and tokens.dtype == torch.long
    assert policy(16).shape == (16, SEQ_LEN, len(TOKEN_REWARD))
    assert_close(token_rewards(tokens).sum(1), sequence_reward(tokens))


def test_expected_reward_matches_monte_carlo() -> None:
    policy = TablePolicy()
    with torch.no_grad():
        policy.logits.copy_(
            torch.randn(SEQ_LEN, len(TOKEN_REWARD), generator=torch.Generator().manual_seed(1))
        )
    rewards = sequence_reward(sample(policy, 50_000, torch.Generator().manual_seed(2)))
    std_err = float(rewards.std()) / 50_000**0.5
    assert abs(float(rewards.mean()) - expected_reward(policy)) < 5 * std_err


def test_logprobs_are_the_table_log_softmax() -> None:
    policy = TablePolicy()
    with torch.no_grad():
        policy.logits.copy_(
            torch.randn(SEQ_LEN, len(TOKEN_REWARD), generator=torch.Generator().manual_seed(3))
        )
    tokens = sample(policy, 8, torch.Generator().manual_seed(4))
    table = torch.log_softmax(policy.logits, -1)  # (T, V)
    expected = table[torch.arange(SEQ_LEN), tokens]  # (B, T)
    assert_close(policy.logprobs(tokens), expected)


def test_preference_labels_follow_bradley_terry() -> None:
    n, scale = 40_000, 4.0
    chosen, rejected = preference_pairs(n, torch.Generator().manual_seed(5), reward_scale=scale)
    gap = sequence_reward(chosen) - sequence_reward(rejected)  # (n,)
    decided = gap != 0
    agree = float((gap[decided] > 0).float().mean())  # chosen really is better
    # expected agreement: E[σ(s |ΔR|)] over pairs with a reward gap
    expected = float(torch.sigmoid(scale * gap[decided].abs()).mean())
    assert agree == pytest.approx(expected, abs=0.01)
    assert 0.6 < agree < 0.95  # noisy, like human labels
