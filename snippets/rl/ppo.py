"""PPO's clipped policy loss and clipped value loss (Schulman et al., arXiv 1707.06347).

With the probability ratio r_t = π_θ(y_t) / π_old(y_t) the policy loss per token is

    ℓ_t = max(−A_t r_t, −A_t clip(r_t, 1 − ε_low, 1 + ε_high))

i.e. the pessimistic (larger) of the unclipped and clipped losses: once r_t has moved past
1 ± ε in the direction A_t rewards, the token's gradient is 0.

Conventions, and where the libraries disagree:

* The log-ratio is clamped to [−20, 20] before the exp, as verl
  ``compute_policy_loss_vanilla`` does, so a stale or garbage log-prob cannot overflow
  (TRL, CleanRL and older OpenRLHF exponentiate the raw log-ratio).
* ``clip_eps_high`` gives an asymmetric range (DAPO's "clip-higher", arXiv 2503.14476,
  recommends ε_high = 0.28); verl calls the two bounds clip_ratio_low / clip_ratio_high.
* Dual-clip (Ye et al., "Mastering Complex Control in MOBA Games with Deep Reinforcement
  Learning", arXiv 1912.09729; verl ``clip_ratio_c``) caps the loss of tokens with A < 0 at
  −c·A with c > 1, so a huge ratio on a bad token cannot dominate the batch. It never
  touches A ≥ 0. verl applies it by default (c = 3); here it is off unless asked for.
* Value loss: ½·max((V − R)², (V_clip − R)²) with V_clip = V_old + clip(V − V_old, ±ε), the
  ½ and the max as in CleanRL ``ppo.py``, verl ``compute_value_loss`` and OpenRLHF ``ValueLoss``.
* Logged KL: ``approx_kl`` is the k3 estimate of KL(π_old ‖ π_θ), mean of (r − 1) − log r
  over valid tokens (CleanRL ``approx_kl``); verl's ``ppo_kl`` is the k1 estimate −log r.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_choice,
    check_finite,
    check_float,
    check_greater,
    check_mask,
    check_ndim,
    check_positive,
    check_same_shape,
)
from snippets.rl.aggregation import AGGREGATIONS, aggregate, mask_out, masked_mean
from snippets.rl.policy_gradient import expand_advantages

__all__ = [
    "LOG_RATIO_CLAMP",
    "clipped_surrogate",
    "policy_stats",
    "ppo_policy_loss",
    "ppo_value_loss",
]

LOG_RATIO_CLAMP = 20.0  # verl core_algos: clamp log π_θ − log π_old to [−20, 20] before exp


# --8<-- [start:surrogate]
def clipped_surrogate(
    log_ratio: torch.Tensor,
    advantages: torch.Tensor,
    clip_low: float,
    clip_high: float,
    dual_clip: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-token PPO loss from an (unclamped) log-ratio; shared by PPO and GRPO.

    | Argument    | Shape  | Meaning                                                  |
    |-------------|--------|----------------------------------------------------------|
    | log_ratio   | (B, T) | log π_θ − log π_old (with gradient), 0 at padding        |
    | advantages  | (B, T) | A_t (constants), 0 at padding                            |
    | clip_low    | float  | ε_low: ratio floor 1 − ε_low                             |
    | clip_high   | float  | ε_high: ratio ceiling 1 + ε_high                         |
    | dual_clip   | float  | c > 1 or None: cap the loss of A < 0 tokens at −c·A      |
    | **returns** | (B, T) ×3 | loss ℓ_t, ratio r_t, and where the clip is active     |
    """
    # verl core_algos.compute_policy_loss_vanilla: clamp the log-ratio before exp
    log_ratio = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B, T)
    # r_t = π_θ(y_t) / π_old(y_t)
    ratio = torch.exp(log_ratio)  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T)
    # ℓ_t = max(−A r, −A clip(r, 1 − ε_low, 1 + ε_high))
    loss = torch.maximum(unclipped, clipped)  # (B, T)
    is_clipped = clipped > unclipped  # (B, T) the flat branch won: zero gradient
    if dual_clip is not None:
        # verl clip_ratio_c: for A < 0, ℓ_t = min(ℓ_t, −c A)
        cap = -advantages * dual_clip  # (B, T)
        capped = (advantages < 0) & (cap < loss)  # (B, T)
        loss = torch.where(capped, cap, loss)  # (B, T)
        is_clipped = is_clipped | capped  # (B, T)
    return loss, ratio, is_clipped


# --8<-- [end:surrogate]


def _check_policy_inputs(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_float("logprobs", logprobs)
    check_ndim("logprobs", logprobs, 2, "(B, T)")
    check_float("old_logprobs", old_logprobs)
    check_same_shape("old_logprobs", old_logprobs, "logprobs", logprobs)
    mask = check_mask("mask", mask, logprobs.shape, "(B, T)")
    old_logprobs = mask_out(old_logprobs.detach(), mask)  # (B, T)
    check_finite("old_logprobs", old_logprobs)
    return mask_out(logprobs, mask), old_logprobs, mask


# --8<-- [start:policy]
def ppo_policy_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    clip_eps_high: float | None = None,
    dual_clip: float | None = None,
    aggregation: str = "token-mean",
    max_len: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """PPO clipped policy loss, aggregated, with the statistics worth logging.

    ``old_logprobs`` and ``advantages`` are constants (detached inside); anything at
    mask == 0 is ignored. Stats (python floats over valid tokens): ``clip_frac`` (share of
    tokens whose gradient the clip zeroes, dual-clip included), ``approx_kl`` (k3 estimate
    of KL(π_old ‖ π_θ)), ``ratio_mean`` and ``ratio_max``.

    | Argument      | Shape          | Meaning                                         |
    |---------------|----------------|-------------------------------------------------|
    | logprobs      | (B, T)         | log π_θ of the sampled tokens (with gradient)   |
    | old_logprobs  | (B, T)         | log π_old at rollout time (constant)            |
    | advantages    | (B,) or (B, T) | advantage estimates (constant)                  |
    | mask          | (B, T)         | 1 on response tokens, 0 on prompt / padding     |
    | clip_eps      | float          | ε (> 0): lower bound 1 − ε, upper 1 + ε         |
    | clip_eps_high | float          | optional separate upper ε (DAPO clip-higher)    |
    | dual_clip     | float          | optional c > 1 capping the loss when A < 0      |
    | aggregation   | str            | loss aggregation mode (default token-mean)      |
    | max_len       | int            | constant of seq-mean-token-sum-norm (default T) |
    | **returns**   | (), dict       | scalar loss and stats                           |
    """
    logprobs, old_logprobs, mask = _check_policy_inputs(logprobs, old_logprobs, mask)
    advantages = expand_advantages(advantages, mask)  # (B, T)
    clip_low = check_positive("clip_eps", clip_eps)
    clip_high = (
        clip_low if clip_eps_high is None else check_positive("clip_eps_high", clip_eps_high)
    )
    if dual_clip is not None:
        dual_clip = check_greater("dual_clip", dual_clip, 1.0)
    check_choice("aggregation", aggregation, AGGREGATIONS)
    # log r_t = log π_θ(y_t) − log π_old(y_t)
    log_ratio = logprobs - old_logprobs  # (B, T)
    per_token, ratio, is_clipped = clipped_surrogate(
        log_ratio, advantages, clip_low, clip_high, dual_clip
    )
    loss = aggregate(per_token, mask, aggregation, max_len)  # ()
    return loss, policy_stats(log_ratio, ratio, is_clipped, mask)


# --8<-- [end:policy]


def policy_stats(
    log_ratio: torch.Tensor, ratio: torch.Tensor, is_clipped: torch.Tensor, mask: torch.Tensor
) -> dict[str, float]:
    """What to log for a clipped policy loss (python floats over the valid tokens).

    | Argument    | Shape  | Meaning                                         |
    |-------------|--------|-------------------------------------------------|
    | log_ratio   | (B, T) | log π_θ − log π_old                             |
    | ratio       | (B, T) | exp of the clamped log-ratio                    |
    | is_clipped  | (B, T) | where the clip zeroes the gradient              |
    | mask        | (B, T) | bool mask of valid tokens                       |
    | **returns** | dict   | clip_frac, approx_kl (k3), ratio_mean, ratio_max |
    """
    with torch.no_grad():
        log_r = log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B, T)
        # k3 of KL(π_old ‖ π_θ) under samples from π_old: (r − 1) − log r   (CleanRL approx_kl)
        k3 = ratio - 1.0 - log_r  # (B, T)
        valid_ratio = ratio[mask]  # (N,)
        return {
            "clip_frac": float(masked_mean(is_clipped.to(ratio.dtype), mask)),
            "approx_kl": float(masked_mean(k3, mask)),
            "ratio_mean": float(masked_mean(ratio, mask)),
            "ratio_max": float(valid_ratio.max()) if valid_ratio.numel() else 0.0,
        }


# --8<-- [start:value]
def ppo_value_loss(
    values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float | None = None,
    aggregation: str = "token-mean",
    max_len: int | None = None,
) -> torch.Tensor:
    """Critic loss ½ (V − R)², or ½ max((V − R)², (V_clip − R)²) when ``clip_eps`` is set.

    V_clip = V_old + clip(V − V_old, −ε, ε) keeps the new value near the rollout value; the
    max makes the clip pessimistic, as in the policy loss. ``old_values`` and ``returns``
    are constants (detached inside); anything at mask == 0 is ignored.

    | Argument    | Shape  | Meaning                                               |
    |-------------|--------|-------------------------------------------------------|
    | values      | (B, T) | V_φ(s_t) from the current critic (with gradient)      |
    | old_values  | (B, T) | V(s_t) at rollout time (constant)                     |
    | returns     | (B, T) | targets R_t, e.g. GAE advantages + old values         |
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding           |
    | clip_eps    | float  | optional ε > 0 of the value clip (in value units)     |
    | aggregation | str    | loss aggregation mode (default token-mean)            |
    | max_len     | int    | constant of seq-mean-token-sum-norm (default: T)      |
    | **returns** | ()     | scalar loss                                           |
    """
    check_float("values", values)
    check_ndim("values", values, 2, "(B, T)")
    check_float("old_values", old_values)
    check_same_shape("old_values", old_values, "values", values)
    check_float("returns", returns)
    check_same_shape("returns", returns, "values", values)
    mask = check_mask("mask", mask, values.shape, "(B, T)")
    check_choice("aggregation", aggregation, AGGREGATIONS)
    values = mask_out(values, mask)  # (B, T)
    old_values = mask_out(old_values.detach(), mask)  # (B, T)
    returns = mask_out(returns.detach(), mask)  # (B, T)
    check_finite("old_values", old_values)
    check_finite("returns", returns)
    # (V − R)²
    per_token = (values - returns).square()  # (B, T)
    if clip_eps is not None:
        eps = check_positive("clip_eps", clip_eps)
        # V_clip = V_old + clip(V − V_old, −ε, ε)
        clipped_values = old_values + (values - old_values).clamp(-eps, eps)  # (B, T)
        # max((V − R)², (V_clip − R)²)
        per_token = torch.maximum(per_token, (clipped_values - returns).square())  # (B, T)
    # L_V = ½ · aggregate(...)
    return 0.5 * aggregate(per_token, mask, aggregation, max_len)  # ()


# --8<-- [end:value]
