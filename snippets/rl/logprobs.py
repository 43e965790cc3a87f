"""From logits to the log-probabilities every RL loss starts from.

A causal LM's logits at position t predict the token at t + 1, so the log-prob of a sequence
needs one shift (``shift_for_next_token``), one log-softmax-and-gather (``token_logprobs``)
and one masked sum (``sequence_logprobs``). The same numbers are −cross-entropy per token.
Conventions match TRL ``selective_log_softmax`` and verl ``logprobs_from_logits`` /
``entropy_from_logits``; ours are written for clarity, not for memory (they materialise the
(B, T, V) log-softmax's normaliser once).
"""

from __future__ import annotations

import torch

from snippets._checks import check_float, check_mask, check_ndim, check_shape

__all__ = ["entropy_from_logits", "sequence_logprobs", "shift_for_next_token", "token_logprobs"]


def _check_logits(logits: torch.Tensor) -> None:
    check_float("logits", logits)
    check_ndim("logits", logits, 3, "(B, T, V)")


def _check_tokens(tokens: torch.Tensor, logits: torch.Tensor) -> None:
    batch, steps, vocab = logits.shape
    check_shape("tokens", tokens, (batch, steps), "(B, T)")
    if tokens.is_floating_point() or tokens.dtype == torch.bool:
        raise ValueError(f"tokens must be an integer tensor of ids, got dtype {tokens.dtype}")
    if tokens.numel() and (tokens.min() < 0 or tokens.max() >= vocab):
        raise ValueError(
            f"tokens must be ids in [0, V) = [0, {vocab}), got values in "
            f"[{int(tokens.min())}, {int(tokens.max())}]"
        )


# --8<-- [start:shift]
def shift_for_next_token(
    logits: torch.Tensor, input_ids: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Align a causal LM's outputs with targets: ``logits[:, t]`` predicts ``ids[:, t + 1]``.

    The last position predicts a token we never see and the first token is never predicted,
    so both tensors lose one position. Shift a response mask the same way as the targets:
    ``mask[:, 1:]``.

    | Argument    | Shape         | Meaning                                          |
    |-------------|---------------|--------------------------------------------------|
    | logits      | (B, L, V)     | model output over the whole prompt + response    |
    | input_ids   | (B, L)        | the token ids that were fed in                   |
    | **returns** | (B, L−1, V), (B, L−1) | logits[:, :-1] and their targets ids[:, 1:] |
    """
    _check_logits(logits)
    check_shape("input_ids", input_ids, logits.shape[:2], "(B, L)")
    # position t predicts token t + 1
    return logits[:, :-1], input_ids[:, 1:]  # (B, L-1, V), (B, L-1)


# --8<-- [end:shift]


# --8<-- [start:token]
def token_logprobs(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """log π(tokens[b, t]) under ``softmax(logits[b, t])``, i.e. −cross-entropy per token.

    Pass already-shifted tensors (see ``shift_for_next_token``). Every position must hold a
    valid id; use ``sequence_logprobs`` when padding may hold ``-100`` or other garbage.

    | Argument    | Shape     | Meaning                                             |
    |-------------|-----------|-----------------------------------------------------|
    | logits      | (B, T, V) | logits whose position t scores the token tokens[:, t] |
    | tokens      | (B, T)    | integer ids in [0, V)                               |
    | **returns** | (B, T)    | log π(tokens[b, t]) ≤ 0                             |
    """
    _check_logits(logits)
    _check_tokens(tokens, logits)
    picked = logits.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)  # (B, T)
    # log softmax(z)_y = z_y − log Σ_v exp(z_v)
    return picked - torch.logsumexp(logits, dim=-1)  # (B, T)


# --8<-- [end:token]


# --8<-- [start:sequence]
def sequence_logprobs(
    logits: torch.Tensor,
    tokens: torch.Tensor,
    mask: torch.Tensor,
    average: bool = False,
) -> torch.Tensor:
    """log π(y | x) = Σ_t mask_t · log π(y_t | x, y_<t), or its per-token average.

    Positions where ``mask == 0`` are ignored whatever they hold: their ids may be ``-100``
    and their logits NaN, and neither the value nor the gradient notices. The sum is what
    DPO uses; ``average=True`` is the length-normalised variant (IPO in TRL, SimPO). A row
    with no valid token gets 0.

    | Argument    | Shape     | Meaning                                              |
    |-------------|-----------|------------------------------------------------------|
    | logits      | (B, T, V) | shifted logits (position t scores tokens[:, t])      |
    | tokens      | (B, T)    | target ids; anything at mask == 0                    |
    | mask        | (B, T)    | 1 on response tokens, 0 on prompt / padding          |
    | average     | bool      | divide by the number of valid tokens                 |
    | **returns** | (B,)      | summed (or averaged) log-prob of each response       |
    """
    _check_logits(logits)
    mask = check_mask("mask", mask, logits.shape[:2], "(B, T)")
    check_shape("tokens", tokens, logits.shape[:2], "(B, T)")
    # Replace padding before any arithmetic: torch.where also blocks NaN in the backward pass.
    safe_tokens = torch.where(mask, tokens, torch.zeros_like(tokens))  # (B, T)
    safe_logits = torch.where(mask.unsqueeze(-1), logits, torch.zeros_like(logits))  # (B, T, V)
    per_token = token_logprobs(safe_logits, safe_tokens)  # (B, T)
    per_token = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    # log π(y | x) = Σ_t log π(y_t | x, y_<t)
    total = per_token.sum(dim=-1)  # (B,)
    if not average:
        return total
    lengths = mask.sum(dim=-1).clamp(min=1).to(total.dtype)  # (B,)
    return total / lengths  # (B,)


# --8<-- [end:sequence]


# --8<-- [start:entropy]
def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy H(π) = −Σ_v π(v) log π(v) of the next-token distribution at every position.

    Computed as logsumexp(z) − Σ_v softmax(z)_v z_v (verl ``entropy_from_logits``), which
    needs no log of a probability. Logits must be finite.

    | Argument    | Shape     | Meaning                                |
    |-------------|-----------|----------------------------------------|
    | logits      | (B, T, V) | logits                                 |
    | **returns** | (B, T)    | entropy in nats, in [0, log V]         |
    """
    _check_logits(logits)
    probs = torch.softmax(logits, dim=-1)  # (B, T, V)
    # H = log Σ_v e^{z_v} − Σ_v π(v) z_v
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(dim=-1)  # (B, T)


# --8<-- [end:entropy]
