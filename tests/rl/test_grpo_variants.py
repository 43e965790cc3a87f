"""snippets/rl/grpo_variants.py: GSPO's sequence ratio and loss, DAPO's overlong penalty and
group filter, each against a reference written differently (a loop, the paper's product form,
verl's stop-gradient form, TRL's piecewise form), plus every ValueError path."""

from __future__ import annotations

import inspect
import itertools
import math

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.grpo import grpo_loss
from snippets.rl.grpo_variants import (
    dapo_overlong_penalty,
    gspo_loss,
    gspo_sequence_ratio,
    mixed_group_mask,
)
from snippets.rl.ppo import ppo_policy_loss

MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
)
LENGTHS = [6, 2, 3, 1]


def _batch(seed: int, noise: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    old = -3 * torch.rand(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    new = old + noise * torch.randn(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)  # one group, G = 4
    return old, new, grpo_advantages(rewards).reshape(-1)  # advantages (B,)


def _gspo_paper(new: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, eps: float):
    """GSPO from the paper's product form, one response at a time:
    s_i = (Π_t π_θ / Π_t π_old)^(1/|y_i|), L = −(1/G) Σ_i min(s_i A_i, clip(s_i) A_i)."""
    terms = []
    for i, length in enumerate(LENGTHS):
        seq_new = torch.exp(new[i, :length]).prod()  # π_θ(y_i | x)
        seq_old = torch.exp(old[i, :length]).prod()  # π_old(y_i | x)
        s = (seq_new / seq_old) ** (1.0 / length)
        clipped = torch.clamp(s, 1 - eps, 1 + eps)
        terms.append(torch.minimum(s * adv[i], clipped * adv[i]))
    return -torch.stack(terms).mean()


def _gspo_verl(new: torch.Tensor, old: torch.Tensor, adv: torch.Tensor, eps: float):
    """verl compute_policy_loss_gspo's stop-gradient form with its seq-mean-token-mean."""
    mask = MASK.to(new.dtype)  # (B, T)
    seq = ((new - old) * mask).sum(-1) / mask.sum(-1)  # (B,)
    log_s = new - new.detach() + seq.detach()[:, None]  # (B, T): value log s_i, grad 1
    s = torch.exp(torch.clamp(log_s, max=10.0))  # (B, T)
    a = adv[:, None]  # (B, 1)
    per_token = torch.maximum(-a * s, -a * torch.clamp(s, 1 - eps, 1 + eps))  # (B, T)
    return ((per_token * mask).sum(-1) / mask.sum(-1)).mean()


# --- gspo_sequence_ratio ---------------------------------------------------------------------


def test_sequence_ratio_is_the_geometric_mean_of_token_ratios() -> None:
    old, new, _ = _batch(0, noise=0.3)
    ours = gspo_sequence_ratio(new, old, MASK)  # (B,)
    for i, length in enumerate(LENGTHS):
        token_ratios = torch.exp(new[i, :length] - old[i, :length])  # (L,)
        assert_close(ours[i], token_ratios.prod() ** (1.0 / length))


def test_sequence_ratio_ignores_padding_and_gives_one_for_an_empty_row() -> None:
    old, new, _ = _batch(1)
    garbage = ~MASK.bool()
    ours = gspo_sequence_ratio(new.masked_fill(garbage, math.nan), old, MASK)
    assert_close(ours, gspo_sequence_ratio(new, old, MASK))
    empty = torch.zeros(1, 6, dtype=torch.long)
    assert gspo_sequence_ratio(new[:1], old[:1], empty).tolist() == [1.0]
    leaf = new.masked_fill(garbage, math.nan).requires_grad_(True)
    gspo_sequence_ratio(leaf, old, MASK).sum().backward()
    assert leaf.grad is not None
    assert (leaf.grad[garbage] == 0).all() and torch.isfinite(leaf.grad).all()


def test_sequence_ratio_clamps_the_log_ratio_at_20() -> None:
    old = torch.zeros(1, 2, dtype=torch.float64)
    new = torch.full((1, 2), 100.0, dtype=torch.float64)
    expected = torch.exp(torch.tensor([20.0], dtype=torch.float64))  # not exp(100)
    assert_close(gspo_sequence_ratio(new, old, torch.ones(1, 2)), expected)


# --- gspo_loss -------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_gspo_loss_and_gradient_match_the_paper_and_verl(seed: int) -> None:
    old, new, adv = _batch(seed, noise=0.3)
    leaves = [new.clone().requires_grad_(True) for _ in range(3)]
    ours, _ = gspo_loss(leaves[0], old, adv, MASK, clip_eps=0.2, clip_eps_high=None)
    paper = _gspo_paper(leaves[1], old, adv, 0.2)
    verl = _gspo_verl(leaves[2], old, adv, 0.2)
    assert_close(ours, paper)
    assert_close(ours, verl)
    grads = [
        torch.autograd.grad(loss, leaf)[0]
        for loss, leaf in zip([ours, paper, verl], leaves, strict=True)
    ]
    assert_close(grads[0], grads[1] * MASK)
    assert_close(grads[0], grads[2] * MASK)


def test_gspo_gradient_equals_grpo_on_policy_with_beta_zero() -> None:
    old, _, adv = _batch(5)
    a = old.clone().requires_grad_(True)
    b = old.clone().requires_grad_(True)
    (g_gspo,) = torch.autograd.grad(gspo_loss(a, old, adv, MASK)[0], a)
    grpo, _ = grpo_loss(b, old, None, adv, MASK, beta=0.0, aggregation="seq-mean-token-mean")
    (g_grpo,) = torch.autograd.grad(grpo, b)
    assert_close(g_gspo, g_grpo)
    lengths = MASK.sum(1, keepdim=True).double()  # (B, 1)
    assert_close(g_gspo, -adv[:, None] / (4 * lengths) * MASK)  # −A_i / (G |y_i|)


def test_gspo_differs_off_policy_and_weights_every_token_of_a_response_alike() -> None:
    old, new, adv = _batch(6)
    a = new.clone().requires_grad_(True)
    b = new.clone().requires_grad_(True)
    loss, stats = gspo_loss(a, old, adv, MASK, clip_eps=0.2, clip_eps_high=None)
    assert stats["clip_frac"] == 0.0  # no clipping: the difference is the ratio itself
    (g_gspo,) = torch.autograd.grad(loss, a)
    (g_grpo,) = torch.autograd.grad(grpo_loss(b, old, None, adv, MASK, beta=0.0)[0], b)
    assert not torch.allclose(g_gspo, g_grpo)
    for i, length in enumerate(LENGTHS):
        row = g_gspo[i, :length]
        assert (row != 0).all()
        assert_close(row, row[:1].expand_as(row))
        grpo_row = g_grpo[i, :length]
        assert length == 1 or not torch.allclose(grpo_row, grpo_row[:1].expand_as(grpo_row))


def test_whole_sequences_are_clipped_not_tokens() -> None:
    old = torch.full((4, 6), -1.0, dtype=torch.float64)
    log_ratio = torch.zeros(4, 6, dtype=torch.float64)
    log_ratio[0, 0] = 0.9  # one token ratio 2.46 > 1.2, but s_0 = exp(0.15) = 1.16 inside
    log_ratio[3, 0] = 0.3  # one-token response, s_3 = 1.35 > 1.2: clipped
    adv = torch.tensor([0.5, -0.5, -0.5, 0.5], dtype=torch.float64)
    a = (old + log_ratio).requires_grad_(True)
    b = (old + log_ratio).requires_grad_(True)
    loss, stats = gspo_loss(a, old, adv, MASK, clip_eps=0.2, clip_eps_high=None)
    (g_gspo,) = torch.autograd.grad(loss, a)
    (g_grpo,) = torch.autograd.grad(grpo_loss(b, old, None, adv, MASK, beta=0.0)[0], b)
    assert (g_gspo[0, :6] != 0).all()  # GSPO keeps every token of response 0 ...
    assert g_grpo[0, 0] == 0 and (g_grpo[0, 1:6] != 0).all()  # ... GRPO drops token 0
    assert g_gspo[3, 0] == 0 and g_grpo[3, 0] == 0  # response 3 is clipped as a whole
    assert stats["clip_frac"] == pytest.approx(1 / 12)  # 1 of 12 valid tokens
    assert stats["ratio_max"] == pytest.approx(math.exp(0.3))
    assert stats["ratio_mean"] == pytest.approx((math.exp(0.15) + 2 + math.exp(0.3)) / 4)


def test_defaults_are_the_gspo_paper_clip_range_and_none_is_symmetric() -> None:
    params = inspect.signature(gspo_loss).parameters
    assert params["clip_eps"].default == 3e-4 and params["clip_eps_high"].default == 4e-4
    old = torch.zeros(1, 1, dtype=torch.float64)
    adv = torch.tensor([1.0], dtype=torch.float64)
    for log_s, clipped in [(3.5e-4, False), (4.5e-4, True)]:  # upper bound 1 + 4e-4
        leaf = torch.full((1, 1), log_s, dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(gspo_loss(leaf, old, adv, torch.ones(1, 1))[0], leaf)
        assert (grad.item() == 0) is clipped
    leaf = torch.full((1, 1), 3.5e-4, dtype=torch.float64, requires_grad=True)
    loss, stats = gspo_loss(leaf, old, adv, torch.ones(1, 1), clip_eps_high=None)
    (grad,) = torch.autograd.grad(loss, leaf)
    assert grad.item() == 0 and stats["clip_frac"] == 1.0  # symmetric: ceiling 1 + 3e-4


def test_gspo_stats_and_empty_rows() -> None:
    old, new, adv = _batch(7)
    loss, stats = gspo_loss(new, old, adv, MASK, clip_eps=0.2, clip_eps_high=None)
    _, ppo_stats = ppo_policy_loss(new, old, adv, MASK)
    assert stats["approx_kl"] == pytest.approx(ppo_stats["approx_kl"])  # token-level k3
    s = gspo_sequence_ratio(new, old, MASK)
    assert stats["ratio_mean"] == pytest.approx(float(s.mean()))
    assert stats["ratio_max"] == pytest.approx(float(s.max()))
    padded = gspo_loss(
        torch.cat([new, old[:1]]),
        torch.cat([old, old[:1]]),
        torch.cat([adv, torch.tensor([5.0], dtype=torch.float64)]),
        torch.cat([MASK, torch.zeros(1, 6, dtype=torch.long)]),
        clip_eps=0.2,
        clip_eps_high=None,
    )[0]
    assert_close(padded, loss)  # an empty row is not a response: the mean is over 4


# --- dapo_overlong_penalty -------------------------------------------------------------------


def _overlong_trl(length: int, max_len: int, cache: int) -> float:
    """TRL get_soft_overlong_punishment: DAPO eq. 13 case by case."""
    if length <= max_len - cache:
        return 0.0
    if length <= max_len:
        return (max_len - cache - length) / cache
    return -1.0


def test_overlong_penalty_is_zero_then_linear_then_minus_one() -> None:
    max_len, cache = 20480, 4096  # verl recipe/dapo: 16384 + 4096
    lengths = [0, 1, 16384, 16385, 18432, 20479, 20480, 20481, 30000]
    ours = dapo_overlong_penalty(torch.tensor(lengths), max_len, cache)
    expected = [_overlong_trl(n, max_len, cache) for n in lengths]
    assert_close(ours, torch.tensor(expected))
    assert ours[[2, 4, 6]].tolist() == [0.0, -0.5, -1.0]
    assert not torch.signbit(ours[:3]).any()  # +0.0, never −0.0
    assert ours.dtype == torch.get_default_dtype()
    as_float = dapo_overlong_penalty(torch.tensor(lengths, dtype=torch.float64), max_len, cache)
    assert as_float.dtype == torch.float64
    assert_close(as_float.float(), ours)


def test_overlong_penalty_factor_scales_it() -> None:
    lengths = torch.arange(0, 26)  # budget 20, cache 8: soft zone 13 .. 20
    half = dapo_overlong_penalty(lengths, 20, 8, factor=0.5)
    assert_close(half, 0.5 * dapo_overlong_penalty(lengths, 20, 8))
    assert float(half.min()) == -0.5


# --- mixed_group_mask ------------------------------------------------------------------------


def test_mixed_groups_are_those_with_some_but_not_all_correct() -> None:
    groups = torch.tensor(list(itertools.product([0.0, 1.0], repeat=4)))  # all 16 (P=16, G=4)
    n_correct = groups.sum(1)
    assert mixed_group_mask(groups).tolist() == ((n_correct > 0) & (n_correct < 4)).tolist()
    has_signal = grpo_advantages(groups).abs().sum(1) > 0  # (P,)
    assert mixed_group_mask(groups).tolist() == has_signal.tolist()


def test_mixed_group_mask_is_exact_where_a_float_std_is_not() -> None:
    rewards = torch.full((1, 7), 0.1)  # seven equal shaped rewards in float32
    assert rewards.std(dim=1, correction=0).item() > 0  # a std > 0 filter would keep it
    assert mixed_group_mask(rewards).tolist() == [False]
    assert mixed_group_mask(rewards.double()).tolist() == [False]
    nearly = torch.tensor([[0.5, 0.5, 0.5 + 1e-6]])
    assert mixed_group_mask(nearly).tolist() == [True]


def test_np_std_of_equal_values_depends_on_the_dtype() -> None:
    """The page: verl's np.std filter on seven equal rewards of 0.1 gives about 7e-9 in
    float32 (verl's reward tensor), about 1.4e-17 in float64, and exactly 0 on `acc`."""
    std32 = float(np.std(np.full(7, 0.1, dtype=np.float32)))
    std64 = float(np.std(np.full(7, 0.1, dtype=np.float64)))
    assert 5e-9 < std32 < 1e-8  # kept by a std > 0 filter
    assert 1e-17 < std64 < 2e-17  # also > 0, just smaller
    assert np.std(np.array([True] * 7)) == 0.0  # the recipe's acc metric: dropped
    assert np.std(np.array([np.float32(0.1)] * 7)) > 0  # a list of float32 scalars, as verl


# --- ValueError paths ------------------------------------------------------------------------


def _good():
    old, new, adv = _batch(8)
    return new, old, adv


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"logprobs": torch.zeros(4, 6, dtype=torch.long)}, r"logprobs must be a floating-point"),
        ({"logprobs": torch.zeros(4)}, r"logprobs must have shape \(B, T\)"),
        ({"old_logprobs": torch.zeros(4, 5)}, r"old_logprobs must have the same shape"),
        ({"mask": torch.ones(4, 5)}, r"mask must have shape \(B, T\) = \(4, 6\)"),
        ({"mask": torch.full((4, 6), 2)}, r"mask must contain only 0 and 1"),
        ({"old_logprobs": torch.full((4, 6), math.nan)}, r"old_logprobs must be finite"),
    ],
)
def test_ratio_and_loss_reject_bad_tensors(kwargs: dict, message: str) -> None:
    new, old, adv = _good()
    args = {"logprobs": new, "old_logprobs": old, "mask": MASK, **kwargs}
    with pytest.raises(ValueError, match=message):
        gspo_sequence_ratio(**args)
    with pytest.raises(ValueError, match=message):
        gspo_loss(advantages=adv, **args)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"advantages": torch.zeros(4, 6)},
            r"advantages must have shape \(B,\), got shape \(4, 6\)",
        ),
        ({"advantages": torch.zeros(3)}, r"advantages must have shape \(B,\) = \(4,\)"),
        ({"advantages": torch.zeros(4, dtype=torch.long)}, r"advantages must be a floating"),
        ({"advantages": torch.tensor([0.0, math.inf, 0, 0])}, r"advantages must be finite"),
        ({"clip_eps": 0.0}, r"clip_eps must be > 0"),
        ({"clip_eps": -0.1}, r"clip_eps must be > 0"),
        ({"clip_eps": True}, r"clip_eps must be a real number"),
        ({"clip_eps_high": 0.0}, r"clip_eps_high must be > 0"),
        ({"clip_eps_high": math.nan}, r"clip_eps_high must be finite"),
    ],
)
def test_gspo_loss_rejects_bad_advantages_and_clip(kwargs: dict, message: str) -> None:
    new, old, adv = _good()
    args = {"advantages": adv, **kwargs}
    with pytest.raises(ValueError, match=message):
        gspo_loss(new, old, mask=MASK, **args)


@pytest.mark.parametrize(
    ("lengths", "max_len", "cache_len", "factor", "message"),
    [
        (torch.zeros(2, 3), 20, 4, 1.0, r"lengths must have shape \(B,\)"),
        ([1, 2], 20, 4, 1.0, r"lengths must be a torch.Tensor of shape \(B,\)"),
        (torch.tensor([True]), 20, 4, 1.0, r"lengths must be an int or float tensor"),
        (torch.tensor([-1]), 20, 4, 1.0, r"lengths must be >= 0"),
        (torch.tensor([math.nan]), 20, 4, 1.0, r"lengths must be finite"),
        (torch.tensor([3]), 0, 4, 1.0, r"max_len must be a positive int, got 0"),
        (torch.tensor([3]), 20.0, 4, 1.0, r"max_len must be a positive int, got 20.0"),
        (torch.tensor([3]), True, 1, 1.0, r"max_len must be a positive int, got True"),
        (torch.tensor([3]), 20, 0, 1.0, r"cache_len must be a positive int, got 0"),
        (torch.tensor([3]), 20, 21, 1.0, r"cache_len must be <= max_len = 20, got 21"),
        (torch.tensor([3]), 20, 4, 0.0, r"factor must be > 0"),
        (torch.tensor([3]), 20, 4, math.inf, r"factor must be finite"),
    ],
)
def test_overlong_penalty_rejects_bad_arguments(
    lengths, max_len, cache_len, factor, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        dapo_overlong_penalty(lengths, max_len, cache_len, factor)


@pytest.mark.parametrize(
    ("rewards", "message"),
    [
        (torch.zeros(4), r"rewards must have shape \(P, G\)"),
        (torch.zeros(3, 1), r"G >= 2 samples per prompt, got G = 1"),
        (torch.zeros(2, 4, dtype=torch.long), r"rewards must be a floating-point"),
        (torch.tensor([[0.0, math.nan]]), r"rewards must be finite"),
    ],
)
def test_mixed_group_mask_rejects_bad_rewards(rewards: torch.Tensor, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mixed_group_mask(rewards)


def test_filter_on_correctness_not_on_the_shaped_reward() -> None:
    """An all-wrong group whose answers differ in length looks mixed once the overlong
    penalty is added: filtering on the shaped reward keeps it, with advantages that only
    rank lengths. verl's DAPO recipe filters on accuracy (filter_groups.metric=acc)."""
    correct = torch.zeros(1, 4)  # (P, G): every answer wrong
    lengths = torch.tensor([1000, 17408, 18432, 20480])  # tokens
    shaped = correct + dapo_overlong_penalty(lengths, 20480, 4096)[None, :]  # (P, G)
    assert mixed_group_mask(correct).tolist() == [False]
    assert mixed_group_mask(shaped).tolist() == [True]
    adv = grpo_advantages(shaped)[0]  # (G,)
    assert bool((adv[:-1] > adv[1:]).all())  # ranked by length alone: shorter is "better"
