"""Claims of the process-vs-outcome page: placing normalised step rewards on step-end tokens
and taking returns-to-go (γ = 1) is DeepSeekMath's process-supervision advantage; consecutive
steps differ by exactly one step reward; with one step per response it is GRPO's outcome
advantage; an outcome reward gives every token of a response the same credit (on the page:
the group-normalised ∓0.71 of the two example responses)."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.policy_gradient import discounted_returns


def _process_advantages(step_scores: torch.Tensor, step_len: int) -> torch.Tensor:
    """(G, K) step scores -> (G, K·step_len) token advantages via discounted_returns."""
    groups, steps = step_scores.shape
    normalised = (step_scores - step_scores.mean()) / step_scores.std()
    rewards = torch.zeros(groups, steps * step_len, dtype=step_scores.dtype)
    ends = torch.arange(1, steps + 1) * step_len - 1
    rewards[:, ends] = normalised
    mask = torch.ones_like(rewards, dtype=torch.bool)
    return discounted_returns(rewards, mask, 1.0)


def test_matches_deepseekmath_formula() -> None:
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(4, 5, generator=g, dtype=torch.float64)  # G = 4 responses, K = 5 steps
    step_len = 3
    adv = _process_advantages(scores, step_len)
    normalised = (scores - scores.mean()) / scores.std()
    for i in range(4):
        for t in range(5 * step_len):
            ends = [j for j in range(5) if (j + 1) * step_len - 1 >= t]  # index(j) ≥ t
            assert_close(adv[i, t], normalised[i, ends].sum())


def test_consecutive_steps_differ_by_one_step_reward() -> None:
    scores = torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.3, 0.7]], dtype=torch.float64)
    adv = _process_advantages(scores, 2)
    normalised = (scores - scores.mean()) / scores.std()
    per_step = adv[:, ::2]  # (G, K) advantage of each step's tokens
    assert_close(per_step[:, :-1] - per_step[:, 1:], normalised[:, :-1])
    assert_close(per_step[:, -1], normalised[:, -1])
    # the flawed middle step of the lucky second response gets a negative advantage
    assert per_step[1, 1] < 0 < per_step[1, 2]


def test_one_step_per_response_is_grpo_outcome_supervision() -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.rand(6, 1, generator=g, dtype=torch.float64)  # G = 6 responses, K = 1
    adv = _process_advantages(rewards, 4)  # (G, 4): same value on every token
    grpo = grpo_advantages(rewards.T, eps=1e-12)[0]  # (G,), eps made negligible
    assert_close(adv, grpo[:, None].expand(6, 4))


def test_outcome_reward_gives_every_token_the_same_credit() -> None:
    mask = torch.ones(2, 6, dtype=torch.bool)
    rewards = torch.zeros(2, 6)
    rewards[:, -1] = torch.tensor([0.0, 1.0])
    returns = discounted_returns(rewards, mask, 1.0)
    assert (returns[0] == 0).all() and (returns[1] == 1).all()


def test_page_outcome_row_is_group_normalised() -> None:
    outcome = torch.tensor([0.0, 1.0], dtype=torch.float64)  # A wrong, B right: one group, G = 2
    adv = grpo_advantages(outcome[None, :])[0]  # (2,)
    # (r − mean) / std with Bessel's correction: ±0.5 / 0.7071 = ±1/√2 (up to eps = 1e-6)
    assert_close(adv, torch.tensor([-(0.5**0.5), 0.5**0.5], dtype=torch.float64), atol=1e-5, rtol=0)
    per_token = adv[:, None].expand(2, 6)  # every token of a response gets its advantage
    assert_close(
        per_token.round(decimals=2), torch.tensor([[-0.71] * 6, [0.71] * 6], dtype=torch.float64)
    )
    # A's good first steps get exactly the credit of its bad last step; B's dubious middle
    # step gets exactly the credit of its good steps
    assert (per_token[0] == per_token[0, -1]).all() and per_token[0, 0] < 0
    assert (per_token[1] == per_token[1, 0]).all() and per_token[1, 2] > 0
    # the process row, by contrast, separates the steps within a response
    process = _process_advantages(
        torch.tensor([[0.9, 0.8, 0.1], [0.9, 0.3, 0.7]], dtype=torch.float64), 2
    )
    assert process[0, 0] > process[0, -1] and process[1, 2] < process[1, 0]
