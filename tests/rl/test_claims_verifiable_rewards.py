"""Claims of the verifiable-rewards page: with binary rewards a group carries signal only if it
is mixed, which for success probability p happens with probability 1 − p^G − (1 − p)^G; the
RLOO and GRPO advantages of k successes out of G have closed forms."""

from __future__ import annotations

import itertools
import math

import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages, rloo_advantages


def test_informative_group_probability_by_enumeration() -> None:
    group = 6
    outcomes = torch.tensor(list(itertools.product([0.0, 1.0], repeat=group)))  # (2^G, G)
    informative = (grpo_advantages(outcomes).abs().sum(dim=1) > 0).double()  # (2^G,)
    successes = outcomes.sum(dim=1).double()
    for p in (0.05, 0.3, 0.5, 0.95):
        prob = p**successes * (1 - p) ** (group - successes)  # P(outcome)
        assert_close(prob.sum(), torch.tensor(1.0).double())
        expected = 1 - p**group - (1 - p) ** group
        assert math.isclose(float((prob * informative).sum()), expected, rel_tol=1e-12)


def test_rloo_binary_closed_form() -> None:
    group = 8
    for k in range(1, group):
        rewards = torch.tensor([[1.0] * k + [0.0] * (group - k)], dtype=torch.float64)
        adv = rloo_advantages(rewards)[0]
        assert_close(adv[:k], torch.full((k,), (group - k) / (group - 1)).double())
        assert_close(adv[k:], torch.full((group - k,), -k / (group - 1)).double())


def test_grpo_binary_closed_form_and_rare_success_gets_large_advantage() -> None:
    group = 8
    values = []
    for k in range(1, group):
        rewards = torch.tensor([[1.0] * k + [0.0] * (group - k)], dtype=torch.float64)
        adv = grpo_advantages(rewards, eps=1e-12)[0]
        std = math.sqrt(k * (group - k) / (group * (group - 1)))
        assert math.isclose(float(adv[0]), (1 - k / group) / std, rel_tol=1e-9)
        assert math.isclose(float(adv[-1]), (0 - k / group) / std, rel_tol=1e-9)
        values.append(float(adv[0]))
    # the rarer the success, the larger the push on the successful sample
    assert all(a > b for a, b in itertools.pairwise(values))
