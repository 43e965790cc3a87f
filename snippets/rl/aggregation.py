"""Turning a (B, T) per-token loss into one scalar: the four modes and their length bias.

Every mode is a weighted sum Σ_{b,t} w_{b,t} ℓ_{b,t} whose weights depend only on the mask.
With L_b the number of valid tokens of row b and N the number of rows with L_b > 0:

    mode                       weight of a valid token    used by
    token-mean                 1 / Σ_b L_b                DAPO; verl default; TRL "bnpo"/"dapo"
    seq-mean-token-mean        1 / (N · L_b)              GRPO paper (eq. 3); TRL "grpo"
    seq-mean-token-sum         1 / N                      verl; REINFORCE on sequence log-probs
    seq-mean-token-sum-norm    1 / (N · max_len)          Dr. GRPO (arXiv 2503.20783); TRL "dr_grpo"

So seq-mean-token-mean gives each token of a short answer more weight than each token of a
long one (a length bias); token-mean and both token-sum modes give every token of the batch
the same weight. Names follow verl ``core_algos.agg_loss``.

Where libraries disagree, and what we chose:

* seq-mean-token-sum-norm: TRL "dr_grpo" divides by B · max_completion_length; verl's
  ``agg_loss`` (as read at commit 012be9d) divides the batch sum by the padded length only
  (no 1 / B), so its scale grows with the batch. We follow TRL and the Dr. GRPO objective,
  a mean over sequences.
* Rows with no valid token (e.g. padding rows of a batch): verl divides 0 by 0 (NaN) in
  seq-mean-token-mean; TRL clamps the length to 1 and still counts the row in B. We make
  such rows contribute 0 *and* leave them out of N, in every seq-mean mode, so appending an
  empty row never changes the loss. If no row has a valid token the loss is 0 (and its
  gradient is 0).
"""

from __future__ import annotations

import torch

from snippets._checks import check_choice, check_float, check_mask, check_ndim

__all__ = ["AGGREGATIONS", "aggregate", "aggregation_weights", "mask_out", "masked_mean"]

AGGREGATIONS = (
    "token-mean",
    "seq-mean-token-mean",
    "seq-mean-token-sum",
    "seq-mean-token-sum-norm",
)


def mask_out(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``x`` where ``mask`` is true, 0 elsewhere, even where ``x`` is NaN or ±inf.

    Multiplying by the mask would keep NaN (NaN · 0 = NaN); ``torch.where`` selects, and
    sends a zero gradient (not NaN) to the positions it drops.

    | Argument    | Shape      | Meaning                               |
    |-------------|------------|---------------------------------------|
    | x           | any        | values, possibly garbage at padding   |
    | mask        | same as x  | bool mask, true where x counts        |
    | **returns** | same as x  | x with the padded positions set to 0  |
    """
    return torch.where(mask, x, torch.zeros_like(x))


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``x`` over the positions where ``mask`` is true (0 if there are none).

    | Argument    | Shape     | Meaning                          |
    |-------------|-----------|----------------------------------|
    | x           | any       | values                           |
    | mask        | same as x | bool mask                        |
    | **returns** | ()        | Σ mask·x / max(Σ mask, 1)        |
    """
    count = mask.sum().clamp(min=1).to(x.dtype)  # ()
    return mask_out(x, mask).sum() / count  # ()


# --8<-- [start:weights]
def aggregation_weights(
    mask: torch.Tensor,
    mode: str = "token-mean",
    max_len: int | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The weight w_{b,t} each token gets in ``aggregate``: loss = Σ_{b,t} w_{b,t} ℓ_{b,t}.

    Summing a row's weights gives that sequence's share of the loss, which is how the page
    shows the length bias of each mode.

    | Argument    | Shape  | Meaning                                                    |
    |-------------|--------|------------------------------------------------------------|
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding                |
    | mode        | str    | one of ``AGGREGATIONS``                                    |
    | max_len     | int    | constant of seq-mean-token-sum-norm (default: T)           |
    | dtype       | dtype  | floating dtype of the weights                              |
    | **returns** | (B, T) | w ≥ 0, zero at padding; Σ w = 1 for the two mean modes     |
    """
    check_ndim("mask", mask, 2, "(B, T)")
    mask = check_mask("mask", mask, mask.shape, "(B, T)")
    check_choice("mode", mode, AGGREGATIONS)
    if max_len is None:
        max_len = mask.shape[1]
    if isinstance(max_len, bool) or not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len must be a positive int (the generation budget), got {max_len}")
    valid = mask.to(dtype)  # (B, T)
    lengths = valid.sum(dim=1, keepdim=True)  # (B, 1) L_b
    n_seq = (lengths > 0).sum().clamp(min=1).to(dtype)  # () N: rows with a valid token
    if mode == "token-mean":
        # w = 1 / Σ_b L_b
        return valid / lengths.sum().clamp(min=1)  # (B, T)
    if mode == "seq-mean-token-mean":
        # w = 1 / (N · L_b)
        return valid / (n_seq * lengths.clamp(min=1))  # (B, T)
    if mode == "seq-mean-token-sum":
        # w = 1 / N
        return valid / n_seq  # (B, T)
    # seq-mean-token-sum-norm, w = 1 / (N · max_len)   (Dr. GRPO's constant normaliser)
    return valid / (n_seq * max_len)  # (B, T)


# --8<-- [end:weights]


# --8<-- [start:aggregate]
def aggregate(
    loss: torch.Tensor,
    mask: torch.Tensor,
    mode: str = "token-mean",
    max_len: int | None = None,
) -> torch.Tensor:
    """Reduce a per-token loss to a scalar with one of the four modes of ``AGGREGATIONS``.

    Whatever ``loss`` holds at mask == 0 (even NaN or inf) is ignored, in value and gradient.

    | Argument    | Shape  | Meaning                                                 |
    |-------------|--------|---------------------------------------------------------|
    | loss        | (B, T) | per-token loss ℓ_{b,t}                                  |
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding             |
    | mode        | str    | one of ``AGGREGATIONS`` (see the module docstring)      |
    | max_len     | int    | constant of seq-mean-token-sum-norm (default: T)        |
    | **returns** | ()     | Σ_{b,t} w_{b,t} ℓ_{b,t} (see ``aggregation_weights``)   |
    """
    check_float("loss", loss)
    check_ndim("loss", loss, 2, "(B, T)")
    mask = check_mask("mask", mask, loss.shape, "(B, T)")
    weights = aggregation_weights(mask, mode, max_len, dtype=loss.dtype)  # (B, T)
    # L = Σ_{b,t} w_{b,t} ℓ_{b,t}
    return (weights * mask_out(loss, mask)).sum()  # ()


# --8<-- [end:aggregate]
