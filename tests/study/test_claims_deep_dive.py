"""Claims of docs/study/deep-dive.md about Q, checked by enumeration on a tiny token MDP.

The MDP: a vocabulary of 3 tokens, responses of exactly 2 tokens, a policy whose second-token
distribution depends on the first token (so values really depend on the prefix), a per-token
reward, and γ = 1. With deterministic transitions (append the token):

* Q(s_t, a_t) = r_t + γ V(s_{t+1}) exactly;
* E_{a ~ π}[Q(s, a)] = V(s), so the advantage has mean zero under the policy;
* the return of a sampled response is an unbiased estimate of Q(s_0, a_0).
"""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

VOCAB, GAMMA = 3, 1.0
g = torch.Generator().manual_seed(0)
P0 = torch.softmax(torch.randn(VOCAB, generator=g, dtype=torch.float64), dim=0)  # π(a0)
P1 = torch.softmax(torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64), dim=1)  # π(a1 | a0)
R0 = torch.randn(VOCAB, generator=g, dtype=torch.float64)  # r_0(a0)
R1 = torch.randn(VOCAB, VOCAB, generator=g, dtype=torch.float64)  # r_1(a0, a1), terminal


def q_by_enumeration(a0: int) -> torch.Tensor:
    """Q(s_0, a0): expected total reward over every completion, weighted by π."""
    return sum(P1[a0, a1] * (R0[a0] + GAMMA * R1[a0, a1]) for a1 in range(VOCAB))


def v1(a0: int) -> torch.Tensor:
    """V(s_1) with s_1 = (x, a0): the policy picks a1 and the episode ends."""
    return (P1[a0] * R1[a0]).sum()


def test_q_is_reward_plus_value_of_the_next_prefix() -> None:
    for a0 in range(VOCAB):
        assert_close(q_by_enumeration(a0), R0[a0] + GAMMA * v1(a0))


def test_advantage_has_zero_mean_under_the_policy() -> None:
    q = torch.stack([q_by_enumeration(a0) for a0 in range(VOCAB)])
    v0 = sum(
        P0[a0] * P1[a0, a1] * (R0[a0] + GAMMA * R1[a0, a1])
        for a0, a1 in itertools.product(range(VOCAB), range(VOCAB))
    )
    assert_close((P0 * q).sum(), v0)
    assert_close((P0 * (q - v0)).sum(), torch.tensor(0.0, dtype=torch.float64))
    assert (q - v0).abs().max() > 0.01  # advantages themselves are not all zero


def test_sampled_return_is_an_unbiased_estimate_of_q() -> None:
    sampler = torch.Generator().manual_seed(1)
    n = 200_000
    for a0 in range(VOCAB):
        a1 = torch.multinomial(P1[a0], n, replacement=True, generator=sampler)
        returns = R0[a0] + GAMMA * R1[a0, a1]
        stderr = returns.std() / n**0.5
        assert abs(returns.mean() - q_by_enumeration(a0)) < 5 * stderr
