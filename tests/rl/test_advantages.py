"""Claims of the RLOO / GRPO / REINFORCE++ pages: the closed forms, the leave-one-out
identity, the unbiasedness of RLOO, and the normalisation conventions (n − 1 std, eps
outside the square root, batch whitening over valid tokens)."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import (
    grpo_advantages,
    masked_whiten,
    reinforce_pp_advantages,
    rloo_advantages,
)


def _rewards(seed: int = 0, prompts: int = 5, group: int = 4) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(prompts, group, generator=g, dtype=torch.float64)  # (P, G)


def test_rloo_closed_form_and_leave_one_out_loop() -> None:
    rewards = _rewards()
    group = rewards.shape[1]
    advantages = rloo_advantages(rewards)  # (P, G)
    # A = G/(G−1) · (r − mean)
    assert_close(advantages, group / (group - 1) * (rewards - rewards.mean(1, keepdim=True)))
    loop = torch.empty_like(rewards)
    for p in range(rewards.shape[0]):
        for i in range(group):
            others = [rewards[p, j] for j in range(group) if j != i]
            loop[p, i] = rewards[p, i] - sum(others) / len(others)
    assert_close(advantages, loop)
    assert_close(advantages.sum(1), torch.zeros(rewards.shape[0]).double())


def test_rloo_is_unbiased_and_the_plain_group_mean_shrinks_the_gradient() -> None:
    """Enumerate all K^G joint draws of a softmax bandit: E[(1/G) Σ_i A_i ∇log π(y_i)]."""
    k, group = 3, 3
    theta = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64, requires_grad=True)
    reward = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    probs = torch.softmax(theta, -1)
    (true_grad,) = torch.autograd.grad((probs * reward).sum(), theta)

    def expected_gradient(advantage_fn) -> torch.Tensor:
        total = torch.zeros(k, dtype=torch.float64)
        for draw in itertools.product(range(k), repeat=group):
            idx = torch.tensor(draw)
            logp = torch.log_softmax(theta, -1)  # (K,)
            weight = probs[idx].prod().detach()  # P(y_1, ..., y_G)
            adv = advantage_fn(reward[idx][None])[0]  # (G,)
            surrogate = (adv * logp[idx]).sum() / group
            (g,) = torch.autograd.grad(surrogate, theta)
            total += weight * g
        return total

    assert_close(expected_gradient(rloo_advantages), true_grad)
    # r − mean = (G−1)/G · RLOO advantage: same direction, gradient shrunk by (G−1)/G
    mean_centred = expected_gradient(lambda r: grpo_advantages(r, scale_by_std=False))
    assert_close(mean_centred, (group - 1) / group * true_grad)


def test_grpo_zero_mean_unit_unbiased_std() -> None:
    rewards = _rewards(1)
    advantages = grpo_advantages(rewards)  # (P, G)
    expected = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    assert_close(advantages, expected)
    assert_close(advantages.mean(1), torch.zeros(5).double())
    assert_close(advantages.std(1, correction=1), torch.ones(5).double(), atol=1e-5, rtol=0)
    # with the population std the rows would have std sqrt(G / (G − 1)) ≠ 1
    assert (advantages.std(1, correction=0) < 0.9).all()


def test_grpo_equal_rewards_give_exact_zero() -> None:
    rewards = torch.tensor([[1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0]])
    assert (grpo_advantages(rewards) == 0).all()
    assert (rloo_advantages(rewards) == 0).all()


def test_grpo_equal_but_inexact_rewards_still_give_exact_zero() -> None:
    # 0.1 is not a float32 number: the group mean misses it by a rounding error, which the
    # plain formula (verl, TRL) divides by ~eps and turns into a sizeable advantage.
    rewards = torch.full((2, 7), 0.1)  # (P, G) float32
    rewards[1] = torch.tensor([0.1, 0.3, 0.1, 0.1, 0.7, 0.1, 0.1])
    plain = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-6)
    # the failure this guards against: about -0.0074 for every answer, as the GRPO page says
    torch.testing.assert_close(plain[0], torch.full((7,), -0.0074), atol=1e-4, rtol=0)
    trl = (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + 1e-4)
    torch.testing.assert_close(trl[0], torch.full((7,), -7.4e-5), atol=1e-6, rtol=0)  # TRL's eps
    adv = grpo_advantages(rewards)
    assert torch.equal(adv[0], torch.zeros(7))
    torch.testing.assert_close(adv[1], plain[1])  # mixed groups are untouched
    assert torch.equal(grpo_advantages(rewards, scale_by_std=False)[0], torch.zeros(7))


def test_grpo_eps_is_added_outside_the_sqrt() -> None:
    rewards = torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    eps = 0.5
    std = 2**-0.5  # unbiased std of {0, 1}
    assert_close(
        grpo_advantages(rewards, eps=eps), torch.tensor([[-0.5, 0.5]]).double() / (std + eps)
    )
    inside = torch.tensor([[-0.5, 0.5]]).double() / (std**2 + eps) ** 0.5
    assert not torch.allclose(grpo_advantages(rewards, eps=eps), inside)


def test_dr_grpo_only_centres() -> None:
    rewards = _rewards(2)
    assert_close(
        grpo_advantages(rewards, scale_by_std=False), rewards - rewards.mean(1, keepdim=True)
    )


def test_advantages_are_constants() -> None:
    rewards = _rewards().requires_grad_(True)
    assert rloo_advantages(rewards).grad_fn is None
    assert grpo_advantages(rewards).grad_fn is None
    assert reinforce_pp_advantages(rewards, torch.ones(5, 4)).grad_fn is None


def _reinforce_pp_loop(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    returns = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        running = 0.0
        for t in reversed(range(rewards.shape[1])):
            if mask[b, t]:
                running = float(rewards[b, t]) + gamma * running
                returns[b, t] = running
    valid = returns[mask.bool()]
    whitened = (returns - valid.mean()) / valid.std(correction=0)
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def test_reinforce_pp_matches_loop_and_whitens_over_the_batch() -> None:
    g = torch.Generator().manual_seed(3)
    rewards = torch.randn(4, 7, generator=g, dtype=torch.float64)  # (B, T)
    mask = torch.tensor(
        [[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1, 0], [1, 1, 0, 0, 0, 0, 0]]
    )
    for gamma in (1.0, 0.9):
        advantages = reinforce_pp_advantages(rewards, mask, gamma)
        assert_close(advantages, _reinforce_pp_loop(rewards, mask, gamma))
        valid = advantages[mask.bool()]
        assert_close(valid.mean(), torch.tensor(0.0).double(), atol=1e-12, rtol=0)
        assert_close(valid.var(correction=0), torch.tensor(1.0).double())
        assert (advantages[mask == 0] == 0).all()
        # garbage at padding is ignored
        garbage = rewards.masked_fill(mask == 0, float("nan"))
        assert_close(reinforce_pp_advantages(garbage, mask, gamma), advantages)


def test_masked_whiten_constant_input_gives_zero() -> None:
    x = torch.full((2, 3), 5.0)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert (masked_whiten(x, mask) == 0).all()


def test_bad_inputs_raise() -> None:
    for fn in (rloo_advantages, grpo_advantages):
        with pytest.raises(ValueError, match=r"rewards.*G >= 2"):
            fn(torch.zeros(3, 1))
        with pytest.raises(ValueError, match=r"rewards.*\(P, G\)"):
            fn(torch.zeros(6))
        with pytest.raises(ValueError, match=r"rewards.*finite"):
            fn(torch.tensor([[0.0, float("nan")]]))
        with pytest.raises(ValueError, match=r"rewards.*finite"):
            fn(torch.tensor([[0.0, float("inf")]]))
        with pytest.raises(ValueError, match="rewards"):
            fn(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="eps"):
        grpo_advantages(torch.zeros(2, 2), eps=0.0)
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"token_rewards.*finite"):
        reinforce_pp_advantages(torch.tensor([[0.0, float("nan"), 0.0], [0.0, 0.0, 0.0]]), mask)
    with pytest.raises(ValueError, match=r"token_rewards.*\(B, T\)"):
        reinforce_pp_advantages(torch.zeros(3), mask)
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        reinforce_pp_advantages(torch.zeros(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match="gamma"):
        reinforce_pp_advantages(torch.zeros(2, 3), mask, gamma=1.5)
