"""snippets/rl/best_of_n.py: each function against a reference written differently (Python
loops, enumeration of all N-tuples of draws, seeded Monte Carlo, closed forms of the normal
maximum, REINFORCE's loss), plus every ValueError path."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.best_of_n import (
    best_of_n_indices,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    filtered_sft_loss,
    normal_best_of_n_mean,
    rejection_sample_mask,
)
from snippets.rl.policy_gradient import reinforce_loss

F64 = torch.float64
BASE = torch.tensor([0.1, 0.25, 0.05, 0.35, 0.25], dtype=F64)  # (K,)
REWARDS = torch.tensor([0.3, -1.0, 2.0, 0.7, 1.1], dtype=F64)  # (K,) distinct, unsorted


def _bon_by_enumeration(base: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """π_BoN by brute force: every N-tuple of draws, its probability, and its best item."""
    out = torch.zeros_like(base)
    for draw in itertools.product(range(len(base)), repeat=n):
        best = max(draw, key=lambda k: float(rewards[k]))
        out[best] += math.prod(float(base[k]) for k in draw)
    return out


# --- best_of_n_indices -----------------------------------------------------------------------


def test_indices_match_a_loop_and_take_the_first_maximum() -> None:
    g = torch.Generator().manual_seed(0)
    rewards = torch.randint(0, 3, (50, 6), generator=g).float()  # many ties
    ours = best_of_n_indices(rewards)
    for p in range(rewards.shape[0]):
        row = rewards[p].tolist()
        assert int(ours[p]) == row.index(max(row))
    assert ours.dtype == torch.long and ours.shape == (50,)


def test_indices_with_one_response_per_prompt_are_zero() -> None:
    assert best_of_n_indices(torch.randn(3, 1)).tolist() == [0, 0, 0]


# --- rejection_sample_mask -------------------------------------------------------------------


def _topk_loop(rewards: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k per row by a Python sort on (−reward, index): ties go to the lower index."""
    keep = torch.zeros_like(rewards, dtype=torch.bool)
    for p, row in enumerate(rewards.tolist()):
        ranked = sorted(range(len(row)), key=lambda i: (-row[i], i))
        keep[p, ranked[:k]] = True
    return keep


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_mask_matches_a_loop_with_ties(k: int) -> None:
    g = torch.Generator().manual_seed(1)
    rewards = torch.randint(0, 4, (40, 5), generator=g).double()  # (P, N) with ties
    ours = rejection_sample_mask(rewards, k=k)
    assert torch.equal(ours, _topk_loop(rewards, k))
    assert (ours.sum(dim=1) == k).all()  # exactly k per prompt, whatever the ties


def test_threshold_and_both() -> None:
    rewards = torch.tensor([[1.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.0, 0.0], [0.2, 0.9, 0.5, 0.7]])
    by_threshold = rejection_sample_mask(rewards, threshold=0.5)
    assert torch.equal(by_threshold, rewards >= 0.5)
    assert not by_threshold[1].any()  # nothing passes: an empty group
    both = rejection_sample_mask(rewards, k=2, threshold=0.5)
    assert torch.equal(both, _topk_loop(rewards, 2) & (rewards >= 0.5))
    assert both.sum(dim=1).tolist() == [2, 0, 2]


# --- best_of_n_probs and best_of_n_kl --------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_probs_match_enumeration_of_all_draws(n: int) -> None:
    ours = best_of_n_probs(BASE, REWARDS, n)
    assert_close(ours, _bon_by_enumeration(BASE, REWARDS, n))
    assert_close(ours.sum(), torch.tensor(1.0, dtype=F64))


def test_n_equal_one_gives_the_base_and_zero_kl() -> None:
    assert_close(best_of_n_probs(BASE, REWARDS, 1), BASE)
    assert 0.0 <= float(best_of_n_kl(BASE, REWARDS, 1)) < 1e-15  # 0 up to rounding of the CDF
    assert best_of_n_kl_bound(1) == 0.0


def test_probs_follow_the_responses_when_they_are_reordered() -> None:
    perm = torch.tensor([3, 0, 4, 2, 1])
    assert_close(
        best_of_n_probs(BASE[perm], REWARDS[perm], 5), best_of_n_probs(BASE, REWARDS, 5)[perm]
    )


def test_probs_match_seeded_monte_carlo() -> None:
    """200,000 best-of-4 draws. A frequency has standard error sqrt(q(1 − q)/M) <= 0.0011;
    5 standard errors per item fail by chance with probability < 1e-5 over the 5 items."""
    n, draws = 4, 200_000
    g = torch.Generator().manual_seed(0)
    samples = torch.multinomial(BASE.expand(draws, -1), n, replacement=True, generator=g)  # (M, n)
    chosen = samples.gather(1, best_of_n_indices(REWARDS[samples])[:, None])[:, 0]  # (M,)
    freq = torch.bincount(chosen, minlength=len(BASE)).double() / draws  # (K,)
    exact = best_of_n_probs(BASE, REWARDS, n)
    stderr = (exact * (1 - exact) / draws).sqrt()
    assert ((freq - exact).abs() <= 5 * stderr).all(), (freq, exact)
    # and the Monte Carlo agrees with the exact distribution far better than with the base
    assert (freq - exact).abs().max() < 0.01 < (freq - BASE).abs().max()


def test_zero_probability_responses_are_never_chosen() -> None:
    base = torch.tensor([0.5, 0.0, 0.5], dtype=F64)
    rewards = torch.tensor([0.0, 5.0, 1.0], dtype=F64)  # the impossible response is the best
    bon = best_of_n_probs(base, rewards, 3)
    assert bon[1] == 0.0
    assert_close(bon, torch.tensor([0.125, 0.0, 0.875], dtype=F64))
    assert torch.isfinite(best_of_n_kl(base, rewards, 3))


@pytest.mark.parametrize("n", [2, 3, 8])
def test_kl_matches_the_definition(n: int) -> None:
    bon = _bon_by_enumeration(BASE, REWARDS, n) if n < 8 else best_of_n_probs(BASE, REWARDS, n)
    direct = float((bon * (bon / BASE).log()).sum())
    assert best_of_n_kl(BASE, REWARDS, n).item() == pytest.approx(direct, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_kl_is_below_the_bound_for_random_bases(seed: int) -> None:
    torch.manual_seed(seed)  # Dirichlet.sample draws from the global generator
    base = torch.distributions.Dirichlet(torch.ones(12, dtype=F64)).sample()  # (K,)
    rewards = torch.randn(12, dtype=F64)  # (K,) distinct with probability 1
    for n in (1, 2, 4, 16, 64):
        assert float(best_of_n_kl(base, rewards, n)) <= best_of_n_kl_bound(n) + 1e-12


def test_bound_values() -> None:
    assert best_of_n_kl_bound(2) == pytest.approx(math.log(2) - 0.5)
    assert best_of_n_kl_bound(16) == pytest.approx(math.log(16) - 15 / 16)


def test_float32_inputs_work() -> None:
    bon = best_of_n_probs(BASE.float(), REWARDS.float(), 4)
    assert bon.dtype == torch.float32
    assert_close(bon.double(), best_of_n_probs(BASE, REWARDS, 4), atol=1e-6, rtol=1e-5)


# --- normal_best_of_n_mean -------------------------------------------------------------------


def test_normal_mean_matches_closed_forms() -> None:
    # E[max of 2] = 1/√π, E[max of 3] = 3/(2√π), E[max of 4] = (3/√π)(1/2 + arcsin(1/3)/π)
    assert abs(normal_best_of_n_mean(1)) < 1e-10
    assert normal_best_of_n_mean(2) == pytest.approx(1 / math.sqrt(math.pi), abs=1e-9)
    assert normal_best_of_n_mean(3) == pytest.approx(1.5 / math.sqrt(math.pi), abs=1e-9)
    four = 3 / math.sqrt(math.pi) * (0.5 + math.asin(1 / 3) / math.pi)
    assert normal_best_of_n_mean(4) == pytest.approx(four, abs=1e-9)


def test_normal_mean_matches_monte_carlo_for_sixteen() -> None:
    """100,000 maxima of 16 normals; their std is below 0.6, so the standard error of the
    mean is below 0.002 and 0.01 is five of them."""
    g = torch.Generator().manual_seed(0)
    maxima = torch.randn(100_000, 16, generator=g, dtype=F64).amax(dim=1)
    assert float(maxima.std()) < 0.6
    assert float(maxima.mean()) == pytest.approx(normal_best_of_n_mean(16), abs=0.01)


# --- filtered_sft_loss -----------------------------------------------------------------------


def _batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    logprobs = (-3 * torch.rand(6, 5, generator=g, dtype=F64)).requires_grad_()  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]] * 2)  # (B, T)
    keep = torch.tensor([True, False, True, False, False, True])  # (B,)
    return logprobs, mask, keep


def test_sft_loss_matches_a_loop_and_ignores_padding() -> None:
    logprobs, mask, keep = _batch(0)
    terms = [logprobs[i, mask[i].bool()].sum() for i in range(6) if keep[i]]
    assert_close(filtered_sft_loss(logprobs, mask, keep), -torch.stack(terms).mean())
    garbage = logprobs.detach().masked_fill(~mask.bool(), math.nan)
    assert_close(filtered_sft_loss(garbage, mask, keep), filtered_sft_loss(logprobs, mask, keep))


def test_sft_gradient_is_reinforce_with_a_zero_one_reward_times_b_over_kept() -> None:
    logprobs, mask, keep = _batch(1)
    (sft_grad,) = torch.autograd.grad(filtered_sft_loss(logprobs, mask, keep), logprobs)
    rf = reinforce_loss(logprobs, keep.to(F64), mask, aggregation="seq-mean-token-sum")
    (rf_grad,) = torch.autograd.grad(rf, logprobs)
    assert_close(sft_grad, rf_grad * 6 / 3)  # B / |K| = 6 / 3


def test_sft_loss_with_nothing_kept_is_zero_with_zero_gradient() -> None:
    logprobs, mask, _ = _batch(2)
    loss = filtered_sft_loss(logprobs, mask, torch.zeros(6, dtype=torch.bool))
    (grad,) = torch.autograd.grad(loss, logprobs)
    assert float(loss.detach()) == 0.0 and not grad.any()


# --- errors ----------------------------------------------------------------------------------


def test_errors_name_the_argument() -> None:
    r = torch.zeros(2, 4)
    with pytest.raises(ValueError, match=r"rewards must have shape \(P, N\)"):
        best_of_n_indices(torch.zeros(4))
    with pytest.raises(ValueError, match="N >= 1"):
        best_of_n_indices(torch.zeros(2, 0))
    with pytest.raises(ValueError, match="rewards must be finite"):
        best_of_n_indices(torch.tensor([[0.0, math.nan]]))
    with pytest.raises(ValueError, match="rewards must be a floating-point tensor"):
        rejection_sample_mask(torch.zeros(2, 4, dtype=torch.long), k=1)
    with pytest.raises(ValueError, match="needs k, threshold, or both"):
        rejection_sample_mask(r)
    with pytest.raises(ValueError, match=r"k must be <= N = 4"):
        rejection_sample_mask(r, k=5)
    with pytest.raises(ValueError, match="k must be a positive int"):
        rejection_sample_mask(r, k=0)
    with pytest.raises(ValueError, match="k must be a positive int"):
        rejection_sample_mask(r, k=True)
    with pytest.raises(ValueError, match="threshold must be finite"):
        rejection_sample_mask(r, threshold=math.nan)


def test_distribution_errors() -> None:
    with pytest.raises(ValueError, match=r"base_probs must have shape \(K,\)"):
        best_of_n_probs(BASE[None], REWARDS, 2)
    with pytest.raises(ValueError, match="base_probs must be >= 0"):
        best_of_n_probs(torch.tensor([1.5, -0.5], dtype=F64), REWARDS[:2], 2)
    with pytest.raises(ValueError, match="base_probs must sum to 1"):
        best_of_n_probs(BASE * 0.9, REWARDS, 2)
    with pytest.raises(ValueError, match=r"rewards must have shape \(K,\) = \(5,\)"):
        best_of_n_probs(BASE, REWARDS[:4], 2)
    with pytest.raises(ValueError, match="rewards must be distinct"):
        best_of_n_probs(BASE, torch.tensor([0.0, 1.0, 2.0, 1.0, 3.0], dtype=F64), 2)
    with pytest.raises(ValueError, match="n must be a positive int"):
        best_of_n_probs(BASE, REWARDS, 0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        best_of_n_kl(BASE, REWARDS, 2.0)
    with pytest.raises(ValueError, match="n must be a positive int"):
        best_of_n_kl_bound(True)
    with pytest.raises(ValueError, match="n must be a positive int"):
        normal_best_of_n_mean(0)


def test_sft_errors() -> None:
    logprobs, mask, keep = _batch(3)
    with pytest.raises(ValueError, match=r"keep must have shape \(B,\)"):
        filtered_sft_loss(logprobs, mask, keep[:4])
    with pytest.raises(ValueError, match="keep must contain only 0 and 1"):
        filtered_sft_loss(logprobs, mask, torch.full((6,), 0.5))
    with pytest.raises(ValueError, match=r"mask must have shape \(B, T\)"):
        filtered_sft_loss(logprobs, mask[:, :3], keep)
    with pytest.raises(ValueError, match=r"logprobs must have shape \(B, T\)"):
        filtered_sft_loss(logprobs[0], mask, keep)
