"""The KL coefficient β of RLHF-PPO: fixed, or adapted towards a target KL (Ziegler et al.).

Ziegler et al. 2019 ("Fine-Tuning Language Models from Human Preferences", arXiv 1909.08593,
Section 2.2) adapt β with a log-space proportional controller. In the form every library
we read writes it (openai/lm-human-preferences ``train_policy.py``, TRL's former
``trl/trainer/utils.py``, verl ``verl/trainer/ppo/core_algos.py``, OpenRLHF
``openrlhf/trainer/ppo_utils/kl_controller.py``):

    e_k     = clip(KL_k / target − 1, −0.2, 0.2)
    β_{k+1} = β_k · (1 + e_k · n_steps / horizon)

k counts rollout batches (t is kept for tokens, as on the rest of the site).

KL above the target raises β (a stronger pull back to π_ref), KL below it lowers β. The
clip bounds the change per update to a factor of 1 ± 0.2 · n_steps / horizon.

What ``n_steps`` counts, and where we match or differ:

* ``n_steps`` is the number of **samples** (responses) behind the measured KL, not a count of
  optimiser updates: OpenAI passes ``ppo.batch_size`` (its ``horizon`` is commented "in
  episodes"), TRL ``batch_size * num_processes``, verl the batch size of the rollout. With
  OpenAI's sentiment settings (batch 512, horizon 10000) β moves by at most
  0.2 · 512 / 10000 ≈ 1.02% per rollout batch. We follow this; passing 1 per iteration
  makes the controller batch-size times slower.
* The KL's unit must match the target's. OpenAI and TRL measure the mean over responses of
  the **summed** per-token k1 (``objective/kl``, nats per response; target 6 in the OpenAI
  sentiment runs); verl averages k1 over each response's tokens first (``current_kl`` in
  ``apply_kl_penalty``, nats per token; ``target_kl: 0.1`` in ``ppo_trainer.yaml``).
  ``measured_kl`` computes either, from ``kl_k1`` and the mask.
* The libraries accept anything; we raise ``ValueError`` for a NaN/inf KL (β would become
  NaN and stay NaN), a NaN/inf log-prob at a response token in ``measured_kl`` (which would
  make that KL NaN), a non-positive target or horizon, a negative β (zero for the adaptive
  controller, whose multiplicative update can never leave 0), and n_steps ≥ 5 · horizon
  (then 1 − 0.2 · n_steps / horizon ≤ 0 and β could turn ≤ 0).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from snippets._checks import (
    check_choice,
    check_finite,
    check_float,
    check_interval,
    check_mask,
    check_ndim,
    check_positive,
    check_real,
    check_same_shape,
)
from snippets.rl.aggregation import aggregate
from snippets.rl.kl import kl_k1

__all__ = [
    "KL_UNITS",
    "MAX_PROPORTIONAL_ERROR",
    "AdaptiveKLController",
    "FixedKLController",
    "adaptive_kl_update",
    "measured_kl",
]

MAX_PROPORTIONAL_ERROR = 0.2  # Ziegler et al. 2019 §2.2; the same 0.2 in every library read
KL_UNITS = ("response", "token")  # summed over a response (OpenAI, TRL) or per token (verl)


def _check_n_steps(n_steps: float, horizon: float) -> float:
    n_steps = check_positive("n_steps", n_steps)
    if n_steps * MAX_PROPORTIONAL_ERROR >= horizon:
        raise ValueError(
            f"n_steps must be < horizon / {MAX_PROPORTIONAL_ERROR} = "
            f"{horizon / MAX_PROPORTIONAL_ERROR} so that β stays > 0, got {n_steps}"
        )
    return n_steps


# --8<-- [start:update]
def adaptive_kl_update(
    beta: float, current_kl: float, target: float, n_steps: float, horizon: float
) -> float:
    """One step of the adaptive KL controller: the new β from the KL just measured.

    | Argument    | Type  | Meaning                                                      |
    |-------------|-------|--------------------------------------------------------------|
    | beta        | float | β_k > 0, the coefficient used for the batch just scored      |
    | current_kl  | float | KL_k measured on that batch, in the same unit as ``target``  |
    | target      | float | KL_target > 0 (OpenAI sentiment runs: 6 nats per response)   |
    | n_steps     | float | samples (responses) behind ``current_kl``, > 0               |
    | horizon     | float | > 0; samples over which β can change by a factor ≈ e^{±0.2}  |
    | **returns** | float | β_{k+1} > 0                                                  |
    """
    beta = check_positive("beta", beta)
    current_kl = check_real("current_kl", current_kl)  # may be < 0: k1 is a noisy estimate
    target = check_positive("target", target)
    horizon = check_positive("horizon", horizon)
    n_steps = _check_n_steps(n_steps, horizon)
    # e_k = clip(KL_k / target − 1, −0.2, 0.2)
    error = min(max(current_kl / target - 1.0, -MAX_PROPORTIONAL_ERROR), MAX_PROPORTIONAL_ERROR)
    # β_{k+1} = β_k · (1 + e_k · n_steps / horizon)
    return beta * (1.0 + error * n_steps / horizon)


# --8<-- [end:update]


# --8<-- [start:controllers]
@dataclass
class FixedKLController:
    """β stays where it starts; ``update`` checks its inputs and returns β unchanged."""

    beta: float
    """β ≥ 0 for the whole run (TRL/verl ``kl_coef``; verl's ``ppo_trainer.yaml``: 0.001)."""

    def __post_init__(self) -> None:
        self.beta = check_interval("beta", self.beta, 0.0, math.inf)

    def update(self, current_kl: float, n_steps: float) -> float:
        check_real("current_kl", current_kl)
        check_positive("n_steps", n_steps)
        return self.beta


@dataclass
class AdaptiveKLController:
    """β moves towards the value at which the measured KL equals ``target``."""

    beta: float
    """Current β > 0; starts at ``init_kl_coef`` (OpenAI sentiment runs: 0.15)."""
    target: float
    """KL_target > 0, in the unit of the KL passed to ``update`` (see ``measured_kl``)."""
    horizon: float = 10000.0
    """> 0, in samples; 10000 in OpenAI's ``AdaptiveKLParams``, TRL and verl."""

    def __post_init__(self) -> None:
        self.beta = check_positive("beta", self.beta)
        self.target = check_positive("target", self.target)
        self.horizon = check_positive("horizon", self.horizon)

    def update(self, current_kl: float, n_steps: float) -> float:
        self.beta = adaptive_kl_update(self.beta, current_kl, self.target, n_steps, self.horizon)
        return self.beta


# --8<-- [end:controllers]


# --8<-- [start:measure]
def measured_kl(
    old_logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    unit: str = "response",
) -> float:
    """The batch KL a controller sees: k1 = log π_old − log π_ref, reduced over the batch.

    ``unit="response"``: mean over responses of Σ_t k1 (OpenAI and TRL ``objective/kl``);
    ``unit="token"``: mean over responses of the token-mean of k1 (verl ``current_kl``).
    Responses with no valid token are left out of the mean.

    | Argument     | Shape  | Meaning                                          |
    |--------------|--------|--------------------------------------------------|
    | old_logprobs | (B, T) | log π_old of the sampled tokens (rollout policy) |
    | ref_logprobs | (B, T) | log π_ref of the same tokens                     |
    | mask         | (B, T) | 1 on response tokens, 0 on prompt / padding      |
    | unit         | str    | "response" (nats per response) or "token"        |
    | **returns**  | float  | the KL to pass to ``update``                     |
    """
    check_float("old_logprobs", old_logprobs)
    check_ndim("old_logprobs", old_logprobs, 2, "(B, T)")
    check_float("ref_logprobs", ref_logprobs)
    check_same_shape("ref_logprobs", ref_logprobs, "old_logprobs", old_logprobs)
    mask = check_mask("mask", mask, old_logprobs.shape, "(B, T)")
    check_finite("old_logprobs", old_logprobs[mask])  # padding may hold anything, not tokens
    check_finite("ref_logprobs", ref_logprobs[mask])
    check_choice("unit", unit, KL_UNITS)
    mode = "seq-mean-token-sum" if unit == "response" else "seq-mean-token-mean"
    with torch.no_grad():
        # k1_t = log π_old(y_t) − log π_ref(y_t)
        k1 = kl_k1(old_logprobs.detach(), ref_logprobs)  # (B, T)
        return float(aggregate(k1, mask, mode))


# --8<-- [end:measure]
