"""GRPO's loss: PPO's clipped surrogate with group advantages plus a KL penalty in the loss.

Group Relative Policy Optimization (DeepSeekMath, arXiv 2402.03300, eq. 3) drops the critic:
each response's advantage is its group-normalised reward (``grpo_advantages``), broadcast to
all its tokens. The KL to the reference policy is not folded into the reward, as PPO-RLHF
does, but added to the per-token loss with the k3 estimator:

    ℓ_t = max(−A r_t, −A clip(r_t, 1 − ε, 1 + ε)) + β · k3_t,
    L   = (1/G) Σ_i (1/|o_i|) Σ_t ℓ_{i,t}                       (seq-mean-token-mean)

Defaults and where they come from:

* ``beta = 0.04``: DeepSeekMath §4.2 ("The KL coefficient is 0.04"), also TRL's
  ``GRPOConfig.beta`` default in earlier releases; current TRL defaults to 0.0 (no
  reference model) and DAPO / Dr. GRPO drop the term. ``beta = 0`` is accepted here and
  then ``ref_logprobs`` may be ``None``.
* ``clip_eps = 0.2``: the paper gives no value; 0.2 is the PPO paper's and TRL's default.
* ``aggregation = "seq-mean-token-mean"`` is eq. 3 of the paper (TRL "grpo"); its length
  bias is why DAPO uses token-mean and Dr. GRPO seq-mean-token-sum-norm.
* The k3 log-ratio is clamped to [−20, 20] (verl ``kl_penalty``), like the policy ratio.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_choice,
    check_finite,
    check_float,
    check_positive,
    check_real,
    check_same_shape,
)
from snippets.rl.aggregation import AGGREGATIONS, aggregate, mask_out, masked_mean
from snippets.rl.kl import kl_k1, kl_k2, kl_k3
from snippets.rl.policy_gradient import expand_advantages
from snippets.rl.ppo import LOG_RATIO_CLAMP, _check_policy_inputs, clipped_surrogate, policy_stats

__all__ = ["KL_ESTIMATORS", "grpo_loss"]

KL_ESTIMATORS = ("k1", "k2", "k3")


def _kl_term(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str) -> torch.Tensor:
    if estimator == "k1":
        return kl_k1(logprobs, ref_logprobs)  # (B, T)
    if estimator == "k2":
        return kl_k2(logprobs, ref_logprobs)  # (B, T)
    return kl_k3(logprobs, ref_logprobs, max_log_ratio=LOG_RATIO_CLAMP)  # (B, T)


# --8<-- [start:grpo]
def grpo_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor | None,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    clip_eps: float = 0.2,
    beta: float = 0.04,
    aggregation: str = "seq-mean-token-mean",
    kl_estimator: str = "k3",
    clip_eps_high: float | None = None,
    max_len: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """GRPO loss = clipped surrogate with per-sequence advantages + β · KL estimate per token.

    ``old_logprobs``, ``ref_logprobs`` and ``advantages`` are constants (detached inside);
    anything at mask == 0 is ignored. Stats: those of ``ppo_policy_loss`` plus ``kl``, the
    masked mean of the chosen estimator of KL(π_θ ‖ π_ref) (0 when beta = 0).

    | Argument      | Shape          | Meaning                                          |
    |---------------|----------------|--------------------------------------------------|
    | logprobs      | (B, T)         | log π_θ of the sampled tokens (with gradient)    |
    | old_logprobs  | (B, T)         | log π_old at sampling time (constant)            |
    | ref_logprobs  | (B, T) or None | log π_ref (constant); None only when beta = 0    |
    | advantages    | (B,)           | group advantages (``grpo_advantages``, flattened) |
    | mask          | (B, T)         | 1 on response tokens, 0 on prompt / padding      |
    | clip_eps      | float          | ε > 0 of the ratio clip                          |
    | beta          | float          | KL coefficient β ≥ 0                             |
    | aggregation   | str            | loss aggregation mode                            |
    | kl_estimator  | str            | "k1", "k2" or "k3"                               |
    | clip_eps_high | float          | optional separate upper ε (DAPO clip-higher)     |
    | max_len       | int            | constant of seq-mean-token-sum-norm (default T)  |
    | **returns**   | (), dict       | scalar loss and stats                            |
    """
    logprobs, old_logprobs, mask = _check_policy_inputs(logprobs, old_logprobs, mask)
    advantages = expand_advantages(advantages, mask)  # (B,) -> (B, T), same A for every token
    clip_low = check_positive("clip_eps", clip_eps)
    clip_high = (
        clip_low if clip_eps_high is None else check_positive("clip_eps_high", clip_eps_high)
    )
    beta = check_real("beta", beta)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    check_choice("aggregation", aggregation, AGGREGATIONS)
    check_choice("kl_estimator", kl_estimator, KL_ESTIMATORS)
    # log r_t = log π_θ(y_t) − log π_old(y_t)
    log_ratio = logprobs - old_logprobs  # (B, T)
    per_token, ratio, is_clipped = clipped_surrogate(log_ratio, advantages, clip_low, clip_high)
    kl = torch.zeros_like(per_token)  # (B, T)
    if beta > 0:
        if ref_logprobs is None:
            raise ValueError("ref_logprobs of shape (B, T) is required when beta > 0")
        check_float("ref_logprobs", ref_logprobs)
        check_same_shape("ref_logprobs", ref_logprobs, "logprobs", logprobs)
        ref_logprobs = mask_out(ref_logprobs.detach(), mask)  # (B, T)
        check_finite("ref_logprobs", ref_logprobs)
        kl = _kl_term(logprobs, ref_logprobs, kl_estimator)  # (B, T)
        # ℓ_t = surrogate_t + β · KL_t   (DeepSeekMath eq. 3; TRL GRPOTrainer)
        per_token = per_token + beta * kl  # (B, T)
    loss = aggregate(per_token, mask, aggregation, max_len)  # ()
    stats = policy_stats(log_ratio, ratio, is_clipped, mask)
    stats["kl"] = float(masked_mean(kl.detach(), mask))
    return loss, stats


# --8<-- [end:grpo]
