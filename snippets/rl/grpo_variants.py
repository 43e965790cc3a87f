"""What GRPO's successors add to it: GSPO's sequence ratio, DAPO's overlong penalty and filter.

Half of the successors' changes are already options of ``grpo_loss`` and ``grpo_advantages``:
DAPO's clip-higher (``clip_eps_high=0.28``) and token-level loss (``aggregation="token-mean"``),
Dr. GRPO's constant normaliser (``aggregation="seq-mean-token-sum-norm"``) and its unscaled
advantage (``scale_by_std=False``). This module holds the rest:

* GSPO (Zheng et al., arXiv 2507.18071): one importance ratio per response,
  s_i = exp(mean_t log(π_θ / π_old)), clipped and averaged per response:

      L = −(1/G) Σ_i min(s_i A_i, clip(s_i, 1 − ε_low, 1 + ε_high) A_i)

* DAPO (Yu et al., arXiv 2503.14476): the soft overlong punishment added to the reward of
  responses that run into the last ``cache_len`` tokens of the budget (eq. 13 of the paper),
  and the dynamic-sampling filter that keeps only groups whose rewards are not all equal.

Conventions, and where the libraries differ:

* The mean log-ratio is clamped to [−20, 20] before the exp, as ``clipped_surrogate`` does for
  PPO and GRPO. verl ``compute_policy_loss_gspo`` clamps its log-ratio at 10 from above only;
  TRL (``importance_sampling_level="sequence"`` in ``grpo_trainer.py``) does not clamp.
* verl writes GSPO token by token with a stop-gradient (sg), the paper's "GSPO-token":
  log s_{i,t} = sg[log s_i] + log π_θ(y_{i,t}) − sg[log π_θ(y_{i,t})], then aggregates with
  seq-mean-token-mean. Every token's value is s_i and its gradient s_i ∇ log π_θ(y_{i,t}),
  weighted 1 / (G |y_i|): exactly what ∇ s_i = s_i (1/|y_i|) Σ_t ∇ log π_θ(y_{i,t}) gives
  here, so the two agree in value and gradient (``tests/rl/test_grpo_variants.py``). TRL
  applies the sequence ratio to every token and then its ``loss_type``: only ``"grpo"``
  (seq-mean-token-mean) gives the paper's 1/G mean; token-level types weight by length.
* Default clip range ε_low = 3e-4, ε_high = 4e-4: the GSPO paper's §5.1 values, as quoted in
  verl ``recipe/gspo/test_gspo_3b_math.sh`` and TRL ``docs/source/paper_index.md``. They are
  tiny because s_i is a geometric mean of token ratios and stays close to 1.
* Overlong penalty: TRL ``get_soft_overlong_punishment`` (``trl/rewards/other_rewards.py``)
  is the paper's piecewise form, −1 beyond the budget; verl ``reward_manager/dapo.py`` writes
  min(−(|y| − (L_max − L_cache)) / L_cache · factor, 0), which agrees up to the budget and has
  no floor (verl never generates past it). Ours is the paper's form times ``factor``.
* Dynamic sampling: verl's DAPO trainer keeps a group when ``np.std`` of its metric is > 0
  (the recipe filters on accuracy, ``filter_groups.metric=acc``). We compare max and min,
  which is exact: a float std of equal values can come out as 1e-8 instead of 0.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_finite,
    check_float,
    check_int,
    check_ndim,
    check_positive,
    check_shape,
)
from snippets.rl._args import check_rewards_group
from snippets.rl.aggregation import mask_out, masked_mean
from snippets.rl.ppo import LOG_RATIO_CLAMP, _check_policy_inputs, clipped_surrogate, policy_stats

__all__ = [
    "dapo_overlong_penalty",
    "gspo_loss",
    "gspo_sequence_ratio",
    "mixed_group_mask",
]


# --8<-- [start:ratio]
def _sequence_log_ratio(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of the token log-ratios over each row's valid tokens (0 for an empty row)."""
    lengths = mask.sum(dim=1).clamp(min=1).to(log_ratio.dtype)  # (B,) |y_i|
    # log s_i = (1/|y_i|) Σ_t log(π_θ(y_{i,t}) / π_old(y_{i,t}))
    return mask_out(log_ratio, mask).sum(dim=1) / lengths  # (B,)


def gspo_sequence_ratio(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """GSPO's length-normalised sequence ratio s_i = (π_θ(y_i) / π_old(y_i))^(1/|y_i|).

    It is the geometric mean of the token ratios of response i. A row with no valid token
    gets s = 1. Gradient flows through ``logprobs`` only.

    | Argument     | Shape  | Meaning                                        |
    |--------------|--------|------------------------------------------------|
    | logprobs     | (B, T) | log π_θ of the sampled tokens (with gradient)  |
    | old_logprobs | (B, T) | log π_old at sampling time (constant)          |
    | mask         | (B, T) | 1 on response tokens, 0 on prompt / padding    |
    | **returns**  | (B,)   | s_i, one ratio per response                    |
    """
    logprobs, old_logprobs, mask = _check_policy_inputs(logprobs, old_logprobs, mask)
    seq_log_ratio = _sequence_log_ratio(logprobs - old_logprobs, mask)  # (B,)
    # s_i = exp(log s_i), log s_i clamped to [−20, 20] as for the token ratio
    return torch.exp(seq_log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # (B,)


# --8<-- [end:ratio]


# --8<-- [start:gspo]
def gspo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 3e-4,
    clip_eps_high: float | None = 4e-4,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GSPO loss: PPO's clipped surrogate on one sequence ratio per response, mean over responses.

    ``old_logprobs`` and ``advantages`` are constants (detached inside); anything at
    mask == 0 is ignored and rows with no valid token are left out of the mean. Stats:
    ``clip_frac`` is the share of valid tokens whose response is clipped (verl's
    ``pg_clipfrac``), ``approx_kl`` the token-level k3 estimate of KL(π_old ‖ π_θ) as in
    ``ppo_policy_loss``, ``ratio_mean`` and ``ratio_max`` describe s_i over responses.

    | Argument      | Shape    | Meaning                                            |
    |---------------|----------|----------------------------------------------------|
    | logprobs      | (B, T)   | log π_θ of the sampled tokens (with gradient)      |
    | old_logprobs  | (B, T)   | log π_old at sampling time (constant)              |
    | advantages    | (B,)     | one advantage per response (``grpo_advantages``)   |
    | mask          | (B, T)   | 1 on response tokens, 0 on prompt / padding        |
    | clip_eps      | float    | ε_low > 0: floor 1 − ε_low (GSPO §5.1: 3e-4)       |
    | clip_eps_high | float    | ε_high > 0 or None (= ε_low) (GSPO §5.1: 4e-4)     |
    | **returns**   | (), dict | scalar loss and stats                              |
    """
    logprobs, old_logprobs, mask = _check_policy_inputs(logprobs, old_logprobs, mask)
    check_float("advantages", advantages)
    check_shape("advantages", advantages, (mask.shape[0],), "(B,)")
    advantages = advantages.detach()  # (B,)
    check_finite("advantages", advantages)
    clip_low = check_positive("clip_eps", clip_eps)
    clip_high = (
        clip_low if clip_eps_high is None else check_positive("clip_eps_high", clip_eps_high)
    )
    # log r_{i,t} = log π_θ(y_{i,t}) − log π_old(y_{i,t})
    log_ratio = logprobs - old_logprobs  # (B, T)
    seq_log_ratio = _sequence_log_ratio(log_ratio, mask)  # (B,) log s_i
    # ℓ_i = max(−A_i s_i, −A_i clip(s_i, 1 − ε_low, 1 + ε_high)): the token surrogate on (B, 1)
    per_seq, seq_ratio, is_clipped = clipped_surrogate(
        seq_log_ratio[:, None], advantages[:, None], clip_low, clip_high
    )  # (B, 1) each
    has_tokens = mask.any(dim=1)  # (B,) rows that are responses
    # L = (1/G) Σ_i ℓ_i over the responses with at least one token
    loss = masked_mean(per_seq[:, 0], has_tokens)  # ()
    with torch.no_grad():
        token_ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # (B, T)
        stats = policy_stats(log_ratio, token_ratio, is_clipped & mask, mask)
        seq_stats = policy_stats(seq_log_ratio[:, None], seq_ratio, is_clipped, has_tokens[:, None])
    stats["ratio_mean"] = seq_stats["ratio_mean"]
    stats["ratio_max"] = seq_stats["ratio_max"]
    return loss, stats


# --8<-- [end:gspo]


# --8<-- [start:overlong]
def dapo_overlong_penalty(
    lengths: torch.Tensor, max_len: int, cache_len: int, factor: float = 1.0
) -> torch.Tensor:
    """DAPO's soft overlong punishment, to be added to each response's reward.

    0 up to L_max − L_cache tokens, then falling linearly to −factor at L_max, and −factor
    beyond (DAPO eq. 13 with factor = 1; verl's ``overlong_penalty_factor``).

    | Argument    | Shape | Meaning                                                  |
    |-------------|-------|----------------------------------------------------------|
    | lengths     | (B,)  | number of response tokens (int or float, >= 0)           |
    | max_len     | int   | L_max >= 1, the generation budget                        |
    | cache_len   | int   | L_cache in [1, L_max], the soft zone before the budget   |
    | factor      | float | > 0, the penalty at the budget (verl penalty_factor 1.0) |
    | **returns** | (B,)  | penalty in [-factor, 0]; default float dtype for ints   |
    """
    check_ndim("lengths", lengths, 1, "(B,)")
    if lengths.dtype == torch.bool or lengths.is_complex():
        raise ValueError(f"lengths must be an int or float tensor, got dtype {lengths.dtype}")
    lengths = lengths.detach()  # (B,)
    if not lengths.is_floating_point():
        lengths = lengths.to(torch.get_default_dtype())  # (B,)
    check_finite("lengths", lengths)
    if (lengths < 0).any():
        raise ValueError("lengths must be >= 0 (token counts)")
    check_int("max_len", max_len)
    check_int("cache_len", cache_len)
    if cache_len > max_len:
        raise ValueError(f"cache_len must be <= max_len = {max_len}, got {cache_len}")
    factor = check_positive("factor", factor)
    # how far into the soft zone: (|y| − (L_max − L_cache)) / L_cache, 0 before it, 1 at L_max
    depth = (lengths - (max_len - cache_len)) / cache_len  # (B,)
    # R_length = −factor · clip(depth, 0, 1), written 0 − (...) so that no −0.0 is printed
    return 0.0 - factor * depth.clamp(0.0, 1.0)  # (B,)


# --8<-- [end:overlong]


# --8<-- [start:mixed]
def mixed_group_mask(rewards: torch.Tensor) -> torch.Tensor:
    """Which groups carry a learning signal: those whose rewards are not all equal.

    DAPO's dynamic sampling keeps only these groups and samples more prompts until the batch
    is full; a group of equal rewards has r_i − mean = 0 for every member, so no gradient.

    | Argument    | Shape  | Meaning                                          |
    |-------------|--------|--------------------------------------------------|
    | rewards     | (P, G) | one scalar reward per response, G ≥ 2            |
    | **returns** | (P,)   | bool, True where max reward > min reward         |
    """
    check_rewards_group("rewards", rewards)
    rewards = rewards.detach()  # (P, G)
    # 0 < #correct < G for 0/1 rewards; in general max_i r_i > min_i r_i (exact, unlike std > 0)
    return rewards.amax(dim=1) > rewards.amin(dim=1)  # (P,)


# --8<-- [end:mixed]
