"""Claims of the RLOO page not already in tests/rl/test_advantages.py: RLOO ignores a reward
offset shared by the group (so its gradient variance does too, while plain REINFORCE's grows
with the offset; on the test bandit RLOO's variance is lower even with no offset), and the
leave-one-out baseline of sample i never uses r_i."""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

from snippets.rl.advantages import rloo_advantages

K, GROUP = 3, 3
REWARD = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)  # reward of each arm


def _moments(advantage_fn, offset: float) -> tuple[torch.Tensor, float]:
    """Exact mean and total variance of (1/G) Σ_i A_i ∇log π(y_i) over all K^G group draws."""
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    probs = torch.softmax(theta, -1).detach()
    first = torch.zeros(K, dtype=torch.float64)
    second = 0.0
    for draw in itertools.product(range(K), repeat=GROUP):
        idx = torch.tensor(draw)
        weight = probs[idx].prod()  # P(y_1, ..., y_G)
        adv = advantage_fn((REWARD[idx] + offset)[None])[0]  # (G,)
        surrogate = (adv * torch.log_softmax(theta, -1)[idx]).sum() / GROUP
        (g,) = torch.autograd.grad(surrogate, theta)
        first += weight * g
        second += float(weight * g.square().sum())
    return first, second - float(first.square().sum())


def test_rloo_advantages_ignore_a_shared_offset() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(4, 5, generator=g, dtype=torch.float64)
    assert_close(rloo_advantages(rewards + 7.5), rloo_advantages(rewards))


def test_rloo_variance_is_offset_free_and_reinforce_variance_is_not() -> None:
    rloo_mean_0, rloo_var_0 = _moments(rloo_advantages, 0.0)
    rloo_mean_5, rloo_var_5 = _moments(rloo_advantages, 5.0)
    # plain REINFORCE: A_i = r_i, no baseline
    plain_mean_0, plain_var_0 = _moments(lambda r: r, 0.0)
    plain_mean_5, plain_var_5 = _moments(lambda r: r, 5.0)
    # same expected gradient for all four (both estimators are unbiased)
    for mean in (rloo_mean_5, plain_mean_0, plain_mean_5):
        assert_close(mean, rloo_mean_0)
    assert abs(rloo_var_5 - rloo_var_0) < 1e-12
    assert plain_var_5 > 5 * plain_var_0  # the offset inflates plain REINFORCE's variance
    assert rloo_var_5 < plain_var_5
    # on this bandit RLOO also beats plain REINFORCE with no offset at all
    assert rloo_var_0 < plain_var_0


def test_leave_one_out_baseline_does_not_see_its_own_reward() -> None:
    rewards = torch.tensor([[0.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    changed = rewards.clone()
    changed[0, 0] = 100.0  # change r_0 only
    baseline = rewards - rloo_advantages(rewards)
    changed_baseline = changed - rloo_advantages(changed)
    assert baseline[0, 0] == changed_baseline[0, 0]  # b_0 = mean of r_1..r_3, unchanged
    assert (baseline[0, 1:] != changed_baseline[0, 1:]).all()  # the others' baselines move
