"""Claims of the GRPO and GRPO-successors pages that tests/rl/test_grpo.py,
test_advantages.py, test_aggregation.py and test_grpo_variants.py do not already check: std
scaling equalises groups, zero-advantage groups dilute a token-mean batch, Dr. GRPO's per-token
weight ignores length, GSPO's sequence ratio and its gradient against GRPO's, and DAPO's
overlong penalty against the form verl writes."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.grpo import grpo_loss
from snippets.rl.grpo_variants import dapo_overlong_penalty, gspo_loss, gspo_sequence_ratio

MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
)


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
    ours = gspo_sequence_ratio(new, old, MASK)  # (B,)
    valid = MASK.bool()
    for b in range(4):
        token_ratios = torch.exp(new[b][valid[b]] - old[b][valid[b]])  # (L_b,)
        geometric = token_ratios.prod() ** (1 / len(token_ratios))
        assert_close(ours[b], geometric)


def test_gspo_and_grpo_gradients_agree_on_policy_and_differ_off_policy() -> None:
    old, new, adv = _batch(3)
    kwargs = {"clip_eps": 0.2, "clip_eps_high": None}  # GRPO's ε, so only the ratio differs
    # on-policy (ratio 1 everywhere): identical gradients, both −A_i / (G |y_i|) per token
    a = old.clone().requires_grad_(True)
    b = old.clone().requires_grad_(True)
    grpo, _ = grpo_loss(a, old, None, adv, MASK, beta=0.0)
    (g_grpo,) = torch.autograd.grad(grpo, a)
    (g_gspo,) = torch.autograd.grad(gspo_loss(b, old, adv, MASK, **kwargs)[0], b)
    assert_close(g_gspo, g_grpo)
    # off-policy: the sequence ratio weights every token of a sequence alike, GRPO does not
    a = new.clone().requires_grad_(True)
    b = new.clone().requires_grad_(True)
    grpo, _ = grpo_loss(a, old, None, adv, MASK, beta=0.0)
    (g_grpo,) = torch.autograd.grad(grpo, a)
    (g_gspo,) = torch.autograd.grad(gspo_loss(b, old, adv, MASK, **kwargs)[0], b)
    assert not torch.allclose(g_gspo, g_grpo)
    row = g_gspo[0][MASK[0].bool()]  # all tokens of one sequence get the same gradient
    assert (row != 0).all()
    assert_close(row, row[:1].expand_as(row))


def _overlong_verl(length: int, max_len: int, cache: int, factor: float = 1.0) -> float:
    """verl workers/reward_manager/dapo.py: min(−exceed / L_cache · factor, 0)."""
    exceed = length - (max_len - cache)
    return min(-exceed / cache * factor, 0.0)


def test_overlong_penalty_forms_agree_and_reach_minus_one_at_the_budget() -> None:
    max_len, cache = 20480, 4096  # verl recipe/dapo: 16384 + 4096
    lengths = (1, 16384, 16385, 18432, 20479, 20480)
    for factor in (1.0, 0.5):
        ours = dapo_overlong_penalty(torch.tensor(lengths), max_len, cache, factor).tolist()
        verl = [_overlong_verl(n, max_len, cache, factor) for n in lengths]
        assert ours == pytest.approx(verl)
    ours = dapo_overlong_penalty(torch.tensor([16384, 18432, 20480]), max_len, cache)
    assert ours.tolist() == [0.0, -0.5, -1.0]
    # beyond the budget the paper (and ours) stays at −1; verl's form has no floor
    assert dapo_overlong_penalty(torch.tensor([24576]), max_len, cache).item() == -1.0
    assert math.isclose(_overlong_verl(24576, max_len, cache), -2.0)


def test_population_std_inflates_advantages_by_sqrt_g_over_g_minus_one() -> None:
    g = torch.Generator().manual_seed(4)
    rewards = torch.rand(3, 5, generator=g, dtype=torch.float64)  # (P, G) with G = 5
    centred = rewards - rewards.mean(1, keepdim=True)
    population = centred / rewards.std(1, keepdim=True, correction=0)
    assert_close(population, grpo_advantages(rewards, eps=1e-12) * math.sqrt(5 / 4))
