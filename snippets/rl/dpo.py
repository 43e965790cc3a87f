"""DPO and IPO: preference optimisation without a reward model or sampling.

DPO (Rafailov et al., arXiv 2305.18290) uses the closed-form optimum of KL-regularised RLHF,
π*(y) ∝ π_ref(y) exp(r(y)/β), to write the reward as r(y) = β log(π(y)/π_ref(y)) + const and
plug it into the Bradley-Terry likelihood. With the log-ratio margin

    Δ = [log π_θ(y_c) − log π_ref(y_c)] − [log π_θ(y_r) − log π_ref(y_r)]

the loss is −log σ(βΔ) and its gradient is −β σ(−βΔ) (∇log π_θ(y_c) − ∇log π_θ(y_r)):
pairs the policy already ranks correctly (βΔ ≫ 0) get little weight.

IPO (Azar et al., arXiv 2310.12036, eq. 17) regresses Δ onto a fixed target instead:
(Δ − 1/(2β))², which does not push Δ to infinity on deterministic preferences.

Conventions (TRL ``DPOTrainer.dpo_loss``, OpenRLHF ``DPOLoss``): log-probs are summed over
response tokens; ``label_smoothing`` ε is conservative DPO (−(1−ε) log σ(βΔ) − ε log σ(−βΔ));
the implicit rewards β(log π_θ − log π_ref) are returned detached for logging. For IPO, TRL
averages log-probs over tokens (it divides by the completion length): pass the lengths to do
the same, or leave them out to use sums as the paper's formula does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snippets._checks import (
    check_finite,
    check_float,
    check_interval,
    check_ndim,
    check_positive,
    check_same_shape,
)

__all__ = ["dpo_loss", "ipo_loss"]


def _check_logps(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    check_float("policy_chosen", policy_chosen)
    check_ndim("policy_chosen", policy_chosen, 1, "(B,)")
    named = {
        "policy_rejected": policy_rejected,
        "ref_chosen": ref_chosen,
        "ref_rejected": ref_rejected,
    }
    for name, tensor in named.items():
        check_float(name, tensor)
        check_same_shape(name, tensor, "policy_chosen", policy_chosen)
    for name, tensor in {"policy_chosen": policy_chosen, **named}.items():
        check_finite(name, tensor)
    return ref_chosen.detach(), ref_rejected.detach()


def _implicit_rewards(
    beta: float,
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    # r̂(y) = β (log π_θ(y) − log π_ref(y)), detached: for logging only
    chosen = beta * (policy_chosen - ref_chosen).detach()  # (B,)
    rejected = beta * (policy_rejected - ref_rejected).detach()  # (B,)
    return chosen, rejected


# --8<-- [start:dpo]
def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    label_smoothing: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """DPO loss mean_b −log σ(β Δ_b), optionally label-smoothed (conservative DPO).

    Equals log 2 when the policy is the reference (Δ = 0). With smoothing ε the optimum is
    no longer Δ → ∞ but σ(βΔ) = 1 − ε.

    | Argument        | Shape | Meaning                                                |
    |-----------------|-------|--------------------------------------------------------|
    | policy_chosen   | (B,)  | log π_θ(y_c ∣ x), summed over response tokens          |
    | policy_rejected | (B,)  | log π_θ(y_r ∣ x)                                       |
    | ref_chosen      | (B,)  | log π_ref(y_c ∣ x) (constant: detached)                |
    | ref_rejected    | (B,)  | log π_ref(y_r ∣ x) (constant: detached)                |
    | beta            | float | β > 0, strength of the implicit KL constraint          |
    | label_smoothing | float | ε in [0, 0.5]: assumed probability a label is flipped  |
    | **returns**     | (), (B,), (B,) | loss, chosen and rejected implicit rewards    |
    """
    ref_chosen, ref_rejected = _check_logps(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected
    )
    beta = check_positive("beta", beta)
    eps = check_interval("label_smoothing", label_smoothing, 0.0, 0.5)
    # Δ = (log π_θ(y_c) − log π_ref(y_c)) − (log π_θ(y_r) − log π_ref(y_r))
    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    # L = −(1 − ε) log σ(βΔ) − ε log σ(−βΔ)   (TRL "sigmoid" loss; ε = 0 is plain DPO)
    losses = -(1.0 - eps) * F.logsigmoid(beta * delta) - eps * F.logsigmoid(-beta * delta)  # (B,)
    rewards = _implicit_rewards(beta, policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return losses.mean(), *rewards


# --8<-- [end:dpo]


# --8<-- [start:ipo]
def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float = 0.1,
    chosen_lengths: torch.Tensor | None = None,
    rejected_lengths: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """IPO loss mean_b (Δ_b − 1/(2β))², on summed or (with lengths) token-averaged log-probs.

    β plays the role of the paper's τ. With ``chosen_lengths`` / ``rejected_lengths`` (number
    of response tokens) every log-prob is divided by its length first, as TRL does.

    | Argument         | Shape | Meaning                                               |
    |------------------|-------|-------------------------------------------------------|
    | policy_chosen    | (B,)  | log π_θ(y_c ∣ x), summed over response tokens         |
    | policy_rejected  | (B,)  | log π_θ(y_r ∣ x)                                      |
    | ref_chosen       | (B,)  | log π_ref(y_c ∣ x) (constant: detached)               |
    | ref_rejected     | (B,)  | log π_ref(y_r ∣ x) (constant: detached)               |
    | beta             | float | β > 0; the target margin is 1/(2β)                    |
    | chosen_lengths   | (B,)  | optional token counts of y_c (> 0)                    |
    | rejected_lengths | (B,)  | optional token counts of y_r (> 0)                    |
    | **returns**      | (), (B,), (B,) | loss, chosen and rejected implicit rewards   |
    """
    ref_chosen, ref_rejected = _check_logps(
        policy_chosen, policy_rejected, ref_chosen, ref_rejected
    )
    beta = check_positive("beta", beta)
    if (chosen_lengths is None) != (rejected_lengths is None):
        raise ValueError("chosen_lengths and rejected_lengths must be given together or not at all")
    if chosen_lengths is not None and rejected_lengths is not None:
        for name, lengths in (
            ("chosen_lengths", chosen_lengths),
            ("rejected_lengths", rejected_lengths),
        ):
            check_same_shape(name, lengths, "policy_chosen", policy_chosen)
            if not (lengths > 0).all():
                raise ValueError(f"{name} must be > 0 (number of response tokens)")
        chosen_len = chosen_lengths.detach().to(policy_chosen.dtype)  # (B,)
        rejected_len = rejected_lengths.detach().to(policy_chosen.dtype)  # (B,)
        # TRL DPOTrainer (loss_type "ipo"): average log-probs over response tokens
        policy_chosen, ref_chosen = policy_chosen / chosen_len, ref_chosen / chosen_len
        policy_rejected, ref_rejected = policy_rejected / rejected_len, ref_rejected / rejected_len
    # Δ = (log π_θ(y_c) − log π_ref(y_c)) − (log π_θ(y_r) − log π_ref(y_r))
    delta = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)  # (B,)
    # L = (Δ − 1/(2β))²   (IPO eq. 17, β = τ)
    losses = (delta - 1.0 / (2.0 * beta)).square()  # (B,)
    rewards = _implicit_rewards(beta, policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    return losses.mean(), *rewards


# --8<-- [end:ipo]
