"""Best-of-N sampling and rejection-sampling fine-tuning: the simplest uses of a reward model.

Best-of-N draws N responses per prompt, scores them, and returns the highest-scoring one;
rejection-sampling fine-tuning (RS-FT, "expert iteration") keeps the best (or every passing)
response of each prompt and runs supervised fine-tuning on them. This module holds the
selection rules, the exact distribution of the best-of-N choice for a discrete base policy,
its KL to the base, and the filtered SFT loss:

    π_BoN(y) = F(y)^N − F(y⁻)^N,    KL(π_BoN ‖ π) ≤ log N − (N − 1)/N

with F(y) = P_{y'~π}(r(y') ≤ r(y)) and F(y⁻) = P_{y'~π}(r(y') < r(y)).

Conventions, and where the libraries differ:

* Shapes: rewards are (P, N), P prompts with N responses each, the N answers of a prompt in
  one row (N plays the role of the group size G of the RLOO and GRPO pages). Flattened
  per-response tensors are (B,) = (P·N,) in row-major order, as ``rewards.view(-1)`` gives.
* Ties: ``best_of_n_indices`` returns the *first* maximal index (``torch.argmax`` documents
  that it does), and ``rejection_sample_mask`` breaks ties in the top-k the same way.
  OpenRLHF ``rejection_sampling_processor`` (``openrlhf/utils/processor.py``, used by
  ``openrlhf/cli/batch_inference.py --post_processor rs``) keeps one response per prompt
  and replaces it only on a strictly larger reward, so the first response seen wins a tie,
  as here; it groups responses by the prompt *string*, so duplicate prompts in a data set
  become one group. TRL's ``BestOfNSampler`` (``trl/extras/best_of_n_sampler.py``, in the
  TRL versions that ship it) draws ``sample_size`` (default 4) completions per query and
  returns the ``n_candidates`` (default 1) best by ``scores.topk``; PyTorch's documentation
  warns that the indices ``topk`` returns for tied elements are not guaranteed to be stable.
* ``best_of_n_probs`` refuses tied rewards: with ties the chosen response depends on the
  tie-breaking rule, and F(y)^N − F(y⁻)^N is then the probability of the tied *reward level*,
  not of one response.
* ``filtered_sft_loss`` averages the summed token log-probabilities over the kept responses
  only. If nothing is kept it returns 0 (with a zero gradient), where a plain division by the
  number of kept responses would give NaN.
"""

from __future__ import annotations

import math

import torch

from snippets._checks import (
    check_finite,
    check_float,
    check_int,
    check_mask,
    check_ndim,
    check_real,
    check_shape,
)
from snippets.rl.aggregation import mask_out, masked_mean

__all__ = [
    "best_of_n_indices",
    "best_of_n_kl",
    "best_of_n_kl_bound",
    "best_of_n_probs",
    "filtered_sft_loss",
    "normal_best_of_n_mean",
    "rejection_sample_mask",
]

PROB_SUM_TOL = 1e-5  # |Σ_k π(y_k) − 1| allowed in best_of_n_probs (float32 rounding of a sum)


def _check_rewards(rewards: torch.Tensor) -> torch.Tensor:
    """Finite float rewards of shape (P, N) with N >= 1, detached."""
    check_float("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(P, N)")
    if rewards.shape[1] < 1:
        raise ValueError("rewards must have shape (P, N) with N >= 1 responses per prompt")
    check_finite("rewards", rewards)
    return rewards.detach()  # (P, N)


# --8<-- [start:select]
def best_of_n_indices(rewards: torch.Tensor) -> torch.Tensor:
    """Index of the highest-reward response of each prompt; the first one on ties.

    | Argument    | Shape  | Meaning                                              |
    |-------------|--------|------------------------------------------------------|
    | rewards     | (P, N) | one scalar reward per response, N >= 1 per prompt     |
    | **returns** | (P,)   | long index in [0, N) of the chosen response          |
    """
    rewards = _check_rewards(rewards)  # (P, N)
    # i*(x) = argmax_i r(x, y_i), the smallest such i (torch.argmax returns the first maximum)
    return rewards.argmax(dim=1)  # (P,)


def rejection_sample_mask(
    rewards: torch.Tensor, k: int | None = None, threshold: float | None = None
) -> torch.Tensor:
    """Which responses rejection-sampling fine-tuning keeps: top-k and/or reward >= threshold.

    With both, a response must be among the k best of its prompt *and* reach the threshold
    (the best k, if they are good enough). Ties in the top-k go to the lower index. A row can
    be all False when nothing reaches the threshold: that prompt gives no training data.

    | Argument    | Shape  | Meaning                                                  |
    |-------------|--------|----------------------------------------------------------|
    | rewards     | (P, N) | one scalar reward per response, N >= 1 per prompt         |
    | k           | int    | keep the k highest rewards of each prompt (1 <= k <= N)  |
    | threshold   | float  | keep rewards >= threshold (1.0 for 0/1 verifier rewards) |
    | **returns** | (P, N) | bool, True for the responses to fine-tune on             |
    """
    rewards = _check_rewards(rewards)  # (P, N)
    if k is None and threshold is None:
        raise ValueError("rejection_sample_mask needs k, threshold, or both; got neither")
    keep = torch.ones_like(rewards, dtype=torch.bool)  # (P, N)
    if k is not None:
        check_int("k", k)
        if k > rewards.shape[1]:
            raise ValueError(f"k must be <= N = {rewards.shape[1]} responses per prompt, got {k}")
        # rank of each response in its row, 0 = best; a stable sort puts the lower index first
        order = torch.sort(rewards, dim=1, descending=True, stable=True).indices  # (P, N)
        rank = torch.empty_like(order)  # (P, N)
        positions = torch.arange(rewards.shape[1], device=rewards.device).expand_as(order)  # (P, N)
        rank.scatter_(1, order, positions)  # rank[p, order[p, j]] = j
        keep &= rank < k  # (P, N)
    if threshold is not None:
        threshold = check_real("threshold", threshold)
        keep &= rewards >= threshold  # (P, N)
    return keep


# --8<-- [end:select]


def _check_distribution(base_probs: torch.Tensor, rewards: torch.Tensor, n: int) -> None:
    check_float("base_probs", base_probs)
    check_ndim("base_probs", base_probs, 1, "(K,)")
    check_finite("base_probs", base_probs)
    if (base_probs < 0).any():
        raise ValueError("base_probs must be >= 0 (a probability vector of shape (K,))")
    total = float(base_probs.sum())
    if abs(total - 1.0) > PROB_SUM_TOL:
        raise ValueError(f"base_probs must sum to 1 (tolerance {PROB_SUM_TOL}), got {total:.6g}")
    check_float("rewards", rewards)
    check_shape("rewards", rewards, base_probs.shape, "(K,)")
    check_finite("rewards", rewards)
    sorted_rewards = torch.sort(rewards).values  # (K,)
    if (sorted_rewards[1:] == sorted_rewards[:-1]).any():
        raise ValueError(
            "rewards must be distinct (K,) values: with ties the best-of-N choice depends on "
            "the tie-breaking rule"
        )
    check_int("n", n)


# --8<-- [start:distribution]
def best_of_n_probs(base_probs: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Exact distribution of the best of n independent draws from a discrete base policy.

    Sort the K responses by reward; F is the base CDF in that order. The best of n draws has
    reward <= r(y) with probability F(y)^n and < r(y) with probability F(y⁻)^n, so it is y
    with probability F(y)^n − F(y⁻)^n (rewards distinct). n = 1 gives the base back.

    | Argument    | Shape | Meaning                                                    |
    |-------------|-------|------------------------------------------------------------|
    | base_probs  | (K,)  | π(y_k) >= 0, summing to 1                                  |
    | rewards     | (K,)  | r(y_k), all distinct (ValueError on ties)                  |
    | n           | int   | N >= 1 draws per prompt                                    |
    | **returns** | (K,)  | π_BoN(y_k), in the original order of the K responses       |
    """
    _check_distribution(base_probs, rewards, n)
    base_probs = base_probs.detach()  # (K,)
    order = torch.argsort(rewards.detach())  # (K,) from the lowest reward to the highest
    sorted_probs = base_probs[order]  # (K,)
    # F(y) = Σ_{y': r(y') <= r(y)} π(y'), clamped against rounding above 1
    cdf = torch.cumsum(sorted_probs, dim=0).clamp(max=1.0)  # (K,)
    # F(y⁻) = Σ_{y': r(y') < r(y)} π(y'): the CDF of the previous response, 0 for the lowest
    cdf_below = torch.cat([cdf.new_zeros(1), cdf[:-1]])  # (K,)
    # π_BoN(y) = F(y)^n − F(y⁻)^n
    sorted_bon = cdf**n - cdf_below**n  # (K,)
    bon = torch.empty_like(sorted_bon)  # (K,)
    bon[order] = sorted_bon  # back to the caller's order
    return bon


def best_of_n_kl(base_probs: torch.Tensor, rewards: torch.Tensor, n: int) -> torch.Tensor:
    """Exact KL(π_BoN ‖ π) = Σ_y π_BoN(y) log(π_BoN(y) / π(y)), terms with π_BoN(y) = 0 are 0.

    | Argument    | Shape | Meaning                                       |
    |-------------|-------|-----------------------------------------------|
    | base_probs  | (K,)  | π(y_k) >= 0, summing to 1                     |
    | rewards     | (K,)  | r(y_k), all distinct                          |
    | n           | int   | N >= 1                                        |
    | **returns** | ()    | KL in nats, in [0, log N − (N − 1)/N]         |
    """
    bon = best_of_n_probs(base_probs, rewards, n)  # (K,)
    base_probs = base_probs.detach()  # (K,)
    support = bon > 0  # (K,) where π_BoN > 0 we also have π > 0 (π_BoN(y) <= n π(y))
    safe_base = torch.where(support, base_probs, torch.ones_like(base_probs))  # (K,)
    safe_bon = torch.where(support, bon, torch.ones_like(bon))  # (K,)
    # KL = Σ_y π_BoN(y) (log π_BoN(y) − log π(y))
    terms = bon * (torch.log(safe_bon) - torch.log(safe_base))  # (K,)
    # KL >= 0; rounding of the CDF differences can leave −1e-17 for n = 1
    return mask_out(terms, support).sum().clamp(min=0.0)  # ()


def best_of_n_kl_bound(n: int) -> float:
    """The often-quoted KL of best-of-n, log n − (n − 1)/n: exact only for a base without atoms
    (a continuous reward distribution), an upper bound otherwise (Beirami et al. 2024)."""
    check_int("n", n)
    # KL_bound = log n − (n − 1)/n
    return math.log(n) - (n - 1) / n


# --8<-- [end:distribution]

NORMAL_GRID_POINTS = 200_001  # trapezoid grid on [−12, 12]: step 1.2e-4, error << 1e-6
NORMAL_GRID_HALF_WIDTH = 12.0  # the standard normal density is below 1e-31 beyond ±12


# --8<-- [start:gain]
def normal_best_of_n_mean(n: int) -> float:
    """E[max of n i.i.d. standard-normal rewards], by integrating its density on a fine grid.

    The max has density n φ(r) Φ(r)^(n−1) (φ, Φ: standard normal density and CDF), so
    E[max] = ∫ r n φ(r) Φ(r)^(n−1) dr. It is 0 for n = 1 and 1/√π for n = 2.

    | Argument    | Type  | Meaning                              |
    |-------------|-------|--------------------------------------|
    | n           | int   | N >= 1 samples                       |
    | **returns** | float | expected best reward, in units of σ  |
    """
    check_int("n", n)
    grid = torch.linspace(
        -NORMAL_GRID_HALF_WIDTH, NORMAL_GRID_HALF_WIDTH, NORMAL_GRID_POINTS, dtype=torch.float64
    )  # (M,)
    density = torch.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi)  # (M,) φ(r)
    cdf = torch.special.ndtr(grid)  # (M,) Φ(r)
    # E[max] = ∫ r · n φ(r) Φ(r)^(n−1) dr
    return float(torch.trapezoid(grid * n * density * cdf ** (n - 1), grid))


# --8<-- [end:gain]


# --8<-- [start:sft]
def filtered_sft_loss(
    logprobs: torch.Tensor, mask: torch.Tensor, keep: torch.Tensor
) -> torch.Tensor:
    """SFT on the kept responses: L = −(1/|K|) Σ_{i ∈ K} Σ_t log π_θ(y_{i,t}).

    Its gradient is that of REINFORCE with reward 1{i ∈ K}, no baseline, and the
    "seq-mean-token-sum" mean over all B responses, multiplied by B / |K| (the inverse of
    the acceptance rate). Returns 0 (zero gradient) if nothing is kept.

    | Argument    | Shape  | Meaning                                              |
    |-------------|--------|------------------------------------------------------|
    | logprobs    | (B, T) | log π_θ of the sampled tokens (with gradient)        |
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding          |
    | keep        | (B,)   | 1 for the responses selected (rejection_sample_mask) |
    | **returns** | ()     | scalar loss                                          |
    """
    check_float("logprobs", logprobs)
    check_ndim("logprobs", logprobs, 2, "(B, T)")
    mask = check_mask("mask", mask, logprobs.shape, "(B, T)")
    keep = check_mask("keep", keep, logprobs.shape[:1], "(B,)")
    # log π_θ(y_i) = Σ_t log π_θ(y_{i,t}) over the response tokens
    seq_logprobs = mask_out(logprobs, mask).sum(dim=1)  # (B,)
    # L = −(1/|K|) Σ_{i ∈ K} log π_θ(y_i), 0 when K is empty
    return -masked_mean(seq_logprobs, keep)  # ()


# --8<-- [end:sft]
