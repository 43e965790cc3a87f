"""Per-token KL estimators k1, k2, k3 and the exact full-vocabulary KL they approximate.

We want KL(π_θ ‖ π_ref) = E_{x~π_θ}[log π_θ(x) − log π_ref(x)] but only see the log-probs of
the sampled token x. With r = π_ref(x) / π_θ(x) and x ~ π_θ, Schulman's note "Approximating KL
Divergence" (joschu.net/blog/kl-approx.html, 2020) gives three single-sample estimators:

    k1 = −log r                 unbiased, high variance, can be negative
    k2 = ½ (log r)²             biased (low bias when π_θ ≈ π_ref), always ≥ 0
    k3 = (r − 1) − log r        unbiased, always ≥ 0, lower variance than k1

Where libraries use them: verl ``kl_penalty`` offers all three ("kl"/"k1", "mse"/"k2",
"low_var_kl"/"k3"); TRL's GRPO trainer adds β·k3 to the loss; OpenRLHF ``compute_approx_kl``
puts k1 into the reward by default. Being unbiased for the *value* of the KL does not make an
estimator's *gradient* unbiased: used as a loss on fixed samples of one token (state held
fixed, drawn from π_θ), E[∇k1] = 0 and E[∇k3] = ∇KL(π_ref ‖ π_θ) (the other direction); only
E[∇k2] = ∇KL(π_θ ‖ π_ref). Summed over the tokens of a response, none of them gives the
gradient of the sequence KL; k1 summed and used as a reward (policy gradient) does.
``tests/rl/test_kl.py`` checks all of this by enumeration.

Every function is elementwise over (B, T) and has no mask: padded positions are ignored by
whoever aggregates (``snippets.rl.aggregation``). ``ref_logprobs`` is a constant (detached).
"""

from __future__ import annotations

import torch

from snippets._checks import check_float, check_ndim, check_positive, check_same_shape

__all__ = ["exact_kl", "kl_k1", "kl_k2", "kl_k3"]


def _check_logprob_pair(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> None:
    check_float("logprobs", logprobs)
    check_ndim("logprobs", logprobs, 2, "(B, T)")
    check_float("ref_logprobs", ref_logprobs)
    check_same_shape("ref_logprobs", ref_logprobs, "logprobs", logprobs)


# --8<-- [start:k1]
def kl_k1(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k1 = log π_θ(x) − log π_ref(x): the plain log-ratio, unbiased for KL(π_θ ‖ π_ref).

    | Argument     | Shape  | Meaning                                                |
    |--------------|--------|--------------------------------------------------------|
    | logprobs     | (B, T) | log π_θ of the sampled tokens (x ~ π_θ)                |
    | ref_logprobs | (B, T) | log π_ref of the same tokens (a constant: detached)    |
    | **returns**  | (B, T) | k1 per token; negative wherever π_ref(x) > π_θ(x)      |
    """
    _check_logprob_pair(logprobs, ref_logprobs)
    # k1 = −log r = log π_θ(x) − log π_ref(x)
    return logprobs - ref_logprobs.detach()  # (B, T)


# --8<-- [end:k1]


# --8<-- [start:k2]
def kl_k2(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log π_θ(x) − log π_ref(x))²: non-negative but biased for the KL.

    Its expectation is not KL(π_θ ‖ π_ref) in general (it is a second-order approximation),
    yet as a loss on fixed on-policy samples of one token (state held fixed) its expected
    gradient is exactly ∇KL(π_θ ‖ π_ref).

    | Argument     | Shape  | Meaning                                                |
    |--------------|--------|--------------------------------------------------------|
    | logprobs     | (B, T) | log π_θ of the sampled tokens (x ~ π_θ)                |
    | ref_logprobs | (B, T) | log π_ref of the same tokens (a constant: detached)    |
    | **returns**  | (B, T) | k2 per token, ≥ 0                                      |
    """
    _check_logprob_pair(logprobs, ref_logprobs)
    log_ratio = logprobs - ref_logprobs.detach()  # (B, T)
    # k2 = ½ (log r)²
    return 0.5 * log_ratio.square()  # (B, T)


# --8<-- [end:k2]


# --8<-- [start:k3]
def kl_k3(
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    max_log_ratio: float | None = None,
) -> torch.Tensor:
    """k3 = exp(ref − logp) − (ref − logp) − 1: unbiased for KL(π_θ ‖ π_ref) and ≥ 0.

    This is the "unbiased estimator" of the DeepSeekMath GRPO objective (arXiv 2402.03300)
    and TRL's GRPO KL term. ``max_log_ratio`` (e.g. 20, as verl ``kl_penalty`` does for
    "low_var_kl") clamps ref − logp before the exp so that a huge gap cannot overflow;
    the default ``None`` keeps the plain formula.

    | Argument      | Shape  | Meaning                                               |
    |---------------|--------|-------------------------------------------------------|
    | logprobs      | (B, T) | log π_θ of the sampled tokens (x ~ π_θ)               |
    | ref_logprobs  | (B, T) | log π_ref of the same tokens (a constant: detached)   |
    | max_log_ratio | scalar | optional bound on abs(ref − logp) before the exp      |
    | **returns**   | (B, T) | k3 per token, ≥ 0 (0 exactly where logp == ref)       |
    """
    _check_logprob_pair(logprobs, ref_logprobs)
    # log r = log π_ref(x) − log π_θ(x)
    log_r = ref_logprobs.detach() - logprobs  # (B, T)
    if max_log_ratio is not None:
        bound = check_positive("max_log_ratio", max_log_ratio)
        # verl core_algos.kl_penalty("low_var_kl"): clamp before exp for stability
        log_r = log_r.clamp(-bound, bound)  # (B, T)
    # k3 = (r − 1) − log r
    return torch.exp(log_r) - 1.0 - log_r  # (B, T)


# --8<-- [end:k3]


# --8<-- [start:exact]
def exact_kl(logits: torch.Tensor, ref_logits: torch.Tensor) -> torch.Tensor:
    """Exact KL(π_θ ‖ π_ref) = Σ_v π_θ(v) (log π_θ(v) − log π_ref(v)) at every position.

    Needs both full distributions (B, T, V), which is why training code estimates it with
    k1/k3 from the sampled token instead. A vocabulary entry with π_θ(v) = 0 (logit −inf)
    contributes 0, following the convention 0·log 0 = 0.

    | Argument    | Shape     | Meaning                                           |
    |-------------|-----------|---------------------------------------------------|
    | logits      | (B, T, V) | policy logits                                     |
    | ref_logits  | (B, T, V) | reference logits (a constant: detached)           |
    | **returns** | (B, T)    | KL(π_θ ‖ π_ref) per position, ≥ 0                 |
    """
    check_float("logits", logits)
    check_ndim("logits", logits, 3, "(B, T, V)")
    check_float("ref_logits", ref_logits)
    check_same_shape("ref_logits", ref_logits, "logits", logits)
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    ref_logp = torch.log_softmax(ref_logits.detach(), dim=-1)  # (B, T, V)
    p = logp.exp()  # (B, T, V)
    # 0 · log 0 = 0: select before subtracting so −inf − (−inf) never reaches the sum
    log_ratio = torch.where(p > 0, logp - ref_logp, torch.zeros_like(logp))  # (B, T, V)
    # KL(π ‖ π_ref) = Σ_v π(v) log(π(v) / π_ref(v))
    return (p * log_ratio).sum(dim=-1)  # (B, T)


# --8<-- [end:exact]
