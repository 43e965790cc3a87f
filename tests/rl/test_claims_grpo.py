"""Claims of the GRPO page that tests/rl/test_grpo.py, test_advantages.py and
test_aggregation.py do not already check: std scaling equalises groups, zero-advantage groups
dilute a token-mean batch, Dr. GRPO's per-token weight ignores length, GSPO's sequence ratio,
and DAPO's overlong penalty as verl writes it."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.aggregation import mask_out
from snippets.rl.grpo import grpo_loss

MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
)


def _gspo_loss_reference(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
) -> torch.Tensor:
    """GSPO, written from the paper's definition (as verl compute_policy_loss_gspo states it):
    s_i = exp(mean_t log r_{i,t}), loss = −mean_i min(s_i A_i, clip(s_i, 1 − ε, 1 + ε) A_i)."""
    valid = mask.to(logprobs.dtype)  # (B, T)
    log_ratio = mask_out(logprobs - old_logprobs, mask.bool())  # (B, T)
    seq_ratio = torch.exp(log_ratio.sum(-1) / valid.sum(-1))  # (B,) s_i
    clipped = seq_ratio.clamp(1 - clip_eps, 1 + clip_eps)  # (B,)
    return -torch.minimum(seq_ratio * advantages, clipped * advantages).mean()  # ()


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    old = -3 * torch.rand(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    noise = 0.3 * torch.randn(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    advantages = grpo_advantages(torch.tensor([[1.0, 0.0, 0.0, 1.0]]).double()).reshape(-1)
    return old, old + noise, advantages


def test_std_scaling_gives_every_binary_group_the_same_sum_of_squares() -> None:
    """GRPO: Σ_i A_i² = G − 1 for every mixed group; Dr. GRPO: Σ_i A_i² = G p (1 − p)."""
    group = 8
    rows = []
    for correct in range(1, group):
        rows.append([1.0] * correct + [0.0] * (group - correct))
    rewards = torch.tensor(rows, dtype=torch.float64)  # (7, 8): 1 to 7 correct answers
    p = rewards.mean(1)  # (7,) success rate of each group
    grpo_sq = grpo_advantages(rewards, eps=1e-12).square().sum(1)  # (7,)
    dr_sq = grpo_advantages(rewards, scale_by_std=False).square().sum(1)  # (7,)
    assert_close(grpo_sq, torch.full((7,), float(group - 1)).double())
    assert_close(dr_sq, group * p * (1 - p))
    # Dr. GRPO gives the 4/8 group 16/7 times the weight of the 1/8 group; GRPO gives the same
    assert float(dr_sq[3] / dr_sq[0]) == pytest.approx(16 / 7)


def test_zero_advantage_groups_dilute_a_token_mean_batch() -> None:
    """With token-mean, a group whose rewards are all equal adds no gradient of its own but its
    tokens enter the denominator: the other groups' gradient shrinks by N_inf / (N_inf + N_0).
    Dynamic sampling (DAPO) refills the batch instead."""
    old, _, adv = _batch(0)
    informative = old.clone().requires_grad_(True)  # ratio 1
    loss, _ = grpo_loss(informative, old, None, adv, MASK, beta=0.0, aggregation="token-mean")
    (grad,) = torch.autograd.grad(loss, informative)

    flat = grpo_advantages(torch.ones(1, 4, dtype=torch.float64)).reshape(-1)  # all zero
    both_old = torch.cat([old, old])  # (2B, T): the same answers, second group all-correct
    both = both_old.clone().requires_grad_(True)
    both_mask = torch.cat([MASK, MASK])
    both_adv = torch.cat([adv, flat])
    loss2, _ = grpo_loss(both, both_old, None, both_adv, both_mask, 0.2, 0.0, "token-mean")
    (grad2,) = torch.autograd.grad(loss2, both)
    assert_close(grad2[:4], grad / 2)  # N_0 = N_inf here, so the signal halves
    assert (grad2[4:] == 0).all()


def test_dr_grpo_per_token_weight_does_not_depend_on_length() -> None:
    """seq-mean-token-sum-norm at ratio 1: ∂L/∂log π_{i,t} = −A_i / (G · L_max) for every t."""
    old, _, adv = _batch(1)
    leaf = old.clone().requires_grad_(True)
    loss, _ = grpo_loss(leaf, old, None, adv, MASK, beta=0.0, aggregation="seq-mean-token-sum-norm")
    (grad,) = torch.autograd.grad(loss, leaf)
    assert_close(grad, (-adv[:, None] / (4 * MASK.shape[1])) * MASK)


def test_gspo_ratio_is_the_geometric_mean_of_token_ratios() -> None:
    old, new, _ = _batch(2)
    valid = MASK.bool()
    for b in range(4):
        token_ratios = torch.exp(new[b][valid[b]] - old[b][valid[b]])  # (L_b,)
        geometric = token_ratios.prod() ** (1 / len(token_ratios))
        seq_logratio = (new[b][valid[b]].sum() - old[b][valid[b]].sum()) / len(token_ratios)
        assert_close(torch.exp(seq_logratio), geometric)


def test_gspo_and_grpo_gradients_agree_on_policy_and_differ_off_policy() -> None:
    old, new, adv = _batch(3)
    # on-policy (ratio 1 everywhere): identical gradients, both −A_i / (G |y_i|) per token
    a = old.clone().requires_grad_(True)
    b = old.clone().requires_grad_(True)
    grpo, _ = grpo_loss(a, old, None, adv, MASK, beta=0.0)
    (g_grpo,) = torch.autograd.grad(grpo, a)
    (g_gspo,) = torch.autograd.grad(_gspo_loss_reference(b, old, adv, MASK), b)
    assert_close(g_gspo * MASK, g_grpo)
    # off-policy: the sequence ratio weights every token of a sequence alike, GRPO does not
    a = new.clone().requires_grad_(True)
    b = new.clone().requires_grad_(True)
    grpo, _ = grpo_loss(a, old, None, adv, MASK, beta=0.0)
    (g_grpo,) = torch.autograd.grad(grpo, a)
    (g_gspo,) = torch.autograd.grad(_gspo_loss_reference(b, old, adv, MASK), b)
    assert not torch.allclose(g_gspo * MASK, g_grpo)
    row = g_gspo[0][MASK[0].bool()]  # all tokens of one sequence get the same gradient
    assert_close(row, row[:1].expand_as(row))


def _overlong_piecewise(length: int, max_len: int, cache: int) -> float:
    """DAPO's soft overlong punishment for |y| ≤ L_max (the generation budget)."""
    if length <= max_len - cache:
        return 0.0
    return ((max_len - cache) - length) / cache


def _overlong_verl(length: int, max_len: int, cache: int, factor: float = 1.0) -> float:
    """verl workers/reward_manager/dapo.py: min(−exceed / L_cache · factor, 0)."""
    exceed = length - (max_len - cache)
    return min(-exceed / cache * factor, 0.0)


def test_overlong_penalty_forms_agree_and_reach_minus_one_at_the_budget() -> None:
    max_len, cache = 20480, 4096  # verl recipe/dapo: 16384 + 4096
    for length in (1, 16384, 16385, 18432, 20479, 20480):
        assert _overlong_verl(length, max_len, cache) == pytest.approx(
            _overlong_piecewise(length, max_len, cache)
        )
    assert _overlong_piecewise(16384, max_len, cache) == 0.0
    assert _overlong_piecewise(18432, max_len, cache) == pytest.approx(-0.5)
    assert _overlong_piecewise(20480, max_len, cache) == pytest.approx(-1.0)
    assert math.isclose(_overlong_verl(20480, max_len, cache, factor=0.5), -0.5)


def test_population_std_inflates_advantages_by_sqrt_g_over_g_minus_one() -> None:
    g = torch.Generator().manual_seed(4)
    rewards = torch.rand(3, 5, generator=g, dtype=torch.float64)  # (P, G) with G = 5
    centred = rewards - rewards.mean(1, keepdim=True)
    population = centred / rewards.std(1, keepdim=True, correction=0)
    assert_close(population, grpo_advantages(rewards, eps=1e-12) * math.sqrt(5 / 4))
