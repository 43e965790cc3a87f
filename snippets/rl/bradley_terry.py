"""The Bradley-Terry preference model and the reward-model loss built on it.

Bradley and Terry (1952) model the probability that a is preferred to b as

    P(a ≻ b) = σ(r(a) − r(b)) = exp r(a) / (exp r(a) + exp r(b))

so only reward *differences* are identifiable. A reward model is trained by maximum
likelihood on human comparisons, i.e. by minimising −log σ(r_chosen − r_rejected)
(InstructGPT, arXiv 2203.02155; OpenRLHF ``PairWiseLoss``). ``F.logsigmoid`` computes
log σ(x) = −softplus(−x) without overflow for any x, unlike ``torch.log(torch.sigmoid(x))``
which returns −inf once σ(x) underflows. The optional margin (as in OpenRLHF
``PairWiseLoss``) asks for r_chosen − r_rejected to exceed it before the loss flattens.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from snippets._checks import check_finite, check_float, check_ndim, check_same_shape

__all__ = ["bradley_terry_loss", "preference_probability"]


def _check_pair(name_a: str, a: torch.Tensor, name_b: str, b: torch.Tensor) -> None:
    check_float(name_a, a)
    check_ndim(name_a, a, 1, "(B,)")
    check_float(name_b, b)
    check_same_shape(name_b, b, name_a, a)
    check_finite(name_a, a)
    check_finite(name_b, b)


# --8<-- [start:probability]
def preference_probability(r_a: torch.Tensor, r_b: torch.Tensor) -> torch.Tensor:
    """P(a ≻ b) = σ(r_a − r_b) under Bradley-Terry.

    | Argument    | Shape | Meaning                          |
    |-------------|-------|----------------------------------|
    | r_a         | (B,)  | reward of the first response     |
    | r_b         | (B,)  | reward of the second response    |
    | **returns** | (B,)  | probability that a is preferred  |
    """
    _check_pair("r_a", r_a, "r_b", r_b)
    return torch.sigmoid(r_a - r_b)  # (B,)


# --8<-- [end:probability]


# --8<-- [start:loss]
def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: float | torch.Tensor | None = None,
) -> torch.Tensor:
    """Reward-model loss mean_b −log σ(r_chosen − r_rejected − margin), numerically stable.

    Both rewards come from the model being trained, so both carry gradient:
    ∂L/∂r_chosen = −σ(−(Δ − m)) / B = −∂L/∂r_rejected.

    | Argument    | Shape         | Meaning                                         |
    |-------------|---------------|-------------------------------------------------|
    | r_chosen    | (B,)          | scalar reward of each preferred response        |
    | r_rejected  | (B,)          | scalar reward of each rejected response         |
    | margin      | () or (B,)    | optional required gap m (constant)              |
    | **returns** | ()            | mean negative log-likelihood of the preferences |
    """
    _check_pair("r_chosen", r_chosen, "r_rejected", r_rejected)
    # Δ = r_c − r_r
    diff = r_chosen - r_rejected  # (B,)
    if margin is not None:
        margin = torch.as_tensor(margin, dtype=diff.dtype, device=diff.device).detach()
        if margin.ndim > 1 or (margin.ndim == 1 and margin.shape != diff.shape):
            raise ValueError(
                f"margin must be a float or have shape (B,) = ({diff.shape[0]},), "
                f"got shape {tuple(margin.shape)}"
            )
        check_finite("margin", margin)
        diff = diff - margin  # (B,)
    # L = −log σ(Δ − m), via logsigmoid (never log(sigmoid(x)))
    return -F.logsigmoid(diff).mean()  # ()


# --8<-- [end:loss]
