"""Classic bugs of RL post-training code, each as a buggy and a fixed function.

Every pair takes the same inputs and differs in one or two lines. The buggy versions run
without an error, which is what makes these bugs expensive: the loss goes down, the curves look
plausible, and the model learns the wrong thing. ``tests/study/test_common_bugs.py`` shows
each buggy version giving the wrong number and each fixed version agreeing with the trusted
implementation in ``snippets.rl`` or with a hand-computed value.

All tensors are (B, T): B responses, T token positions, ``mask`` true on response tokens
(bool, or 0/1). Every function checks its inputs and raises ``ValueError`` naming the argument
and the shape it expected. Apart from the padding bug itself, every function ignores whatever
the padded positions hold (``torch.where``, never a multiplication by the mask: NaN · 0 = NaN),
and a mean over no valid token is 0, as in ``snippets.rl.aggregation.masked_mean``.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_finite,
    check_float,
    check_mask,
    check_ndim,
    check_positive,
    check_same_shape,
    check_shape,
)

__all__ = [
    "accumulated_loss_buggy",
    "accumulated_loss_fixed",
    "grpo_advantages_buggy",
    "grpo_advantages_fixed",
    "kl_k1_buggy",
    "kl_k1_fixed",
    "kl_k3_buggy",
    "kl_k3_fixed",
    "masked_loss_buggy",
    "masked_loss_fixed",
    "masked_nll_buggy",
    "masked_nll_fixed",
    "policy_loss_with_value_baseline_buggy",
    "policy_loss_with_value_baseline_fixed",
    "ppo_loss_buggy",
    "ppo_loss_fixed",
    "ppo_loss_same_forward_buggy",
    "ppo_loss_same_forward_fixed",
    "response_logprobs_buggy",
    "response_logprobs_fixed",
    "sequence_mean_loss",
    "token_mean_loss",
]


# --- argument checks (shared by each buggy / fixed pair) -------------------------------------


def _per_token(name: str, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Check a (B, T) float tensor and its mask; return the mask as bool."""
    check_float(name, x)
    check_ndim(name, x, 2, "(B, T)")
    return check_mask("mask", mask, x.shape, "(B, T)")


def _valid(mask: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    """Each tensor with its padding (mask false) replaced by 0.

    ``torch.where`` sends an exact zero gradient to the positions it drops, so NaN or inf at
    padding reaches neither the value nor the gradient of anything computed afterwards.
    """
    return [torch.where(mask, x, torch.zeros_like(x)) for x in tensors]


def _same(
    names: tuple[str, ...], tensors: tuple[torch.Tensor, ...], mask: torch.Tensor
) -> torch.Tensor:
    """Check every tensor against the first one's (B, T) shape; return the bool mask."""
    mask = _per_token(names[0], tensors[0], mask)
    for name, x in zip(names[1:], tensors[1:], strict=True):
        check_float(name, x)
        check_same_shape(name, x, names[0], tensors[0])
    return mask


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid tokens of the whole batch; 0 if there is none."""
    valid = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    return valid.sum() / mask.sum().clamp(min=1)  # ()


def _check_ids(name: str, ids: torch.Tensor, vocab: int) -> None:
    """Require integer ids in [0, V)."""
    if ids.is_floating_point() or ids.dtype == torch.bool:
        raise ValueError(f"{name} must be an integer tensor of ids, got dtype {ids.dtype}")
    if ids.numel() and (ids.min() < 0 or ids.max() >= vocab):
        raise ValueError(f"{name} must hold ids in [0, V) = [0, {vocab})")


def _check_logits_ids(logits: torch.Tensor, input_ids: torch.Tensor) -> None:
    check_float("logits", logits)
    check_ndim("logits", logits, 3, "(B, L, V)")
    check_shape("input_ids", input_ids, logits.shape[:2], "(B, L)")
    _check_ids("input_ids", input_ids, logits.shape[2])


# --8<-- [start:ppo_sign_buggy]
def ppo_loss_buggy(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "old_logprobs", "adv"), (logprobs, old_logprobs, adv), mask)
    logprobs, old_logprobs, adv = _valid(mask, logprobs, old_logprobs.detach(), adv)
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    unclipped = -adv * ratio  # (B, T) loss = −objective
    clipped = -adv * ratio.clamp(0.8, 1.2)  # (B, T)
    # BUG: the min of the *losses* is the max of the objectives: the optimistic branch wins,
    # so a token pushed past 1 + ε in the direction A rewards keeps being pushed.
    return _token_mean(torch.minimum(unclipped, clipped), mask)


# --8<-- [end:ppo_sign_buggy]


# --8<-- [start:ppo_sign_fixed]
def ppo_loss_fixed(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "old_logprobs", "adv"), (logprobs, old_logprobs, adv), mask)
    logprobs, old_logprobs, adv = _valid(mask, logprobs, old_logprobs.detach(), adv)
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T)
    unclipped = -adv * ratio  # (B, T)
    clipped = -adv * ratio.clamp(0.8, 1.2)  # (B, T)
    # FIX: min of objectives = max of losses (the pessimistic bound of the PPO paper)
    return _token_mean(torch.maximum(unclipped, clipped), mask)


# --8<-- [end:ppo_sign_fixed]


# --8<-- [start:detach_old_buggy]
def ppo_loss_same_forward_buggy(
    logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "adv"), (logprobs, adv), mask)
    logprobs, adv = _valid(mask, logprobs, adv)
    # BUG: the "old" log-probs are the current ones, still attached to the graph.
    # ratio = exp(logp − logp) is 1 with derivative 0: no gradient reaches the policy.
    old_logprobs = logprobs
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T), identically 1
    return _token_mean(-adv * ratio, mask)


# --8<-- [end:detach_old_buggy]


# --8<-- [start:detach_old_fixed]
def ppo_loss_same_forward_fixed(
    logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "adv"), (logprobs, adv), mask)
    logprobs, adv = _valid(mask, logprobs, adv)
    # FIX: π_old is a constant; at ratio 1 the gradient is the vanilla policy gradient −A ∇log π
    old_logprobs = logprobs.detach()
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T), value 1, gradient ratio · ∇log π
    return _token_mean(-adv * ratio, mask)


# --8<-- [end:detach_old_fixed]


# --8<-- [start:detach_baseline_buggy]
def policy_loss_with_value_baseline_buggy(
    logprobs: torch.Tensor, returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "returns", "values"), (logprobs, returns, values), mask)
    logprobs, returns, values = _valid(mask, logprobs, returns, values)
    # BUG: the baseline V(s_t) carries gradient, so the *policy* loss also trains the critic:
    # ∂loss/∂V = log π / N < 0, so each step raises V (shrinking A), most where log π is
    # smallest, unrelated to the return.
    adv = returns - values  # (B, T)
    return _token_mean(-adv * logprobs, mask)


# --8<-- [end:detach_baseline_buggy]


# --8<-- [start:detach_baseline_fixed]
def policy_loss_with_value_baseline_fixed(
    logprobs: torch.Tensor, returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _same(("logprobs", "returns", "values"), (logprobs, returns, values), mask)
    logprobs, returns, values = _valid(mask, logprobs, returns, values)
    # FIX: advantages are constants; the critic learns only from its own value loss
    adv = (returns - values).detach()  # (B, T)
    return _token_mean(-adv * logprobs, mask)


# --8<-- [end:detach_baseline_fixed]


def _check_nll(logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    check_float("logits", logits)
    check_ndim("logits", logits, 3, "(B, T, V)")
    check_shape("targets", targets, logits.shape[:2], "(B, T)")
    mask = check_mask("mask", mask, logits.shape[:2], "(B, T)")
    # ids must be valid where they count; padding may hold anything (e.g. -100)
    _check_ids("targets (where mask is true)", targets[mask], logits.shape[2])
    return mask


# --8<-- [start:padding_buggy]
def masked_loss_buggy(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    _per_token("per_token", per_token, mask)
    # BUG: the mean runs over every position, padding included: padded positions add their
    # (garbage) loss and the denominator counts them, so the scale depends on the padding.
    return per_token.mean()


def masked_nll_buggy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _check_nll(logits, targets, mask)
    safe_targets = torch.where(mask, targets, torch.zeros_like(targets))  # (B, T) valid ids
    # BUG: the log-softmax runs on the padded logits too. The where inside masked_loss_fixed
    # cleans the value, but backward sends a 0 into the log-softmax of a row holding NaN and
    # gets 0 · NaN = NaN back for that row's logits.
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    nll = -logp.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return masked_loss_fixed(nll, mask)


# --8<-- [end:padding_buggy]


# --8<-- [start:padding_fixed]
def masked_loss_fixed(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = _per_token("per_token", per_token, mask)
    # FIX: select the valid positions (torch.where: a NaN there cannot leak into the value)
    # and divide by their count; no valid token gives 0, like masked_mean
    valid = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    return valid.sum() / mask.sum().clamp(min=1)


def masked_nll_fixed(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    mask = _check_nll(logits, targets, mask)
    safe_targets = torch.where(mask, targets, torch.zeros_like(targets))  # (B, T) valid ids
    # FIX: replace the logits of unscored positions BEFORE the log-softmax; the backward of
    # where gives them an exact zero gradient, whatever they held
    safe_logits = torch.where(mask.unsqueeze(-1), logits, torch.zeros_like(logits))  # (B, T, V)
    logp = torch.log_softmax(safe_logits, dim=-1)  # (B, T, V)
    nll = -logp.gather(-1, safe_targets.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return masked_loss_fixed(nll, mask)


# --8<-- [end:padding_fixed]


# --8<-- [start:std_one_sample_buggy]
def grpo_advantages_buggy(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    check_float("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(P, G)")
    # BUG: with one response per prompt (G = 1), std with Bessel's correction is 0 / 0 = NaN,
    # and a single NaN advantage turns the whole batch loss, then every weight, into NaN.
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True)  # (P, 1), NaN when G = 1
    return (rewards - mean) / (std + eps)  # (P, G)


# --8<-- [end:std_one_sample_buggy]


# --8<-- [start:std_one_sample_fixed]
def grpo_advantages_fixed(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    check_float("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(P, G)")
    check_finite("rewards", rewards)
    eps = check_positive("eps", eps)
    # FIX: a group needs at least two responses; refuse G < 2 instead of training on NaN
    if rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must have shape (P, G) with G >= 2 responses per prompt, "
            f"got shape {tuple(rewards.shape)}; for G = 1 normalise over the batch instead"
        )
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True)  # (P, 1), finite for G >= 2
    # and a group of equal rewards gets exactly 0: in float32 its mean can miss the common
    # value by a rounding error, which (std + eps) ≈ eps would blow up
    same = (rewards == rewards[:, :1]).all(dim=1, keepdim=True)  # (P, 1)
    centred = (rewards - mean).masked_fill(same, 0.0)  # (P, G)
    return centred / (std + eps)  # (P, G)


# --8<-- [end:std_one_sample_fixed]


def _check_kl(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> None:
    check_float("logprobs", logprobs)
    check_float("ref_logprobs", ref_logprobs)
    check_same_shape("ref_logprobs", ref_logprobs, "logprobs", logprobs)


# --8<-- [start:kl_sign_buggy]
def kl_k1_buggy(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    _check_kl(logprobs, ref_logprobs)
    # BUG: log π_ref − log π_θ is the k1 estimate of −KL(π_θ ‖ π_ref): subtracting β times it
    # from the reward *rewards* drifting away from the reference.
    return ref_logprobs - logprobs  # (B, T)


def kl_k3_buggy(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    _check_kl(logprobs, ref_logprobs)
    # BUG: the ratio is inverted (π_θ / π_ref). Under samples from π_θ this is no longer an
    # unbiased estimate of KL(π_θ ‖ π_ref); its expectation is χ²(π_θ ‖ π_ref) − KL(π_θ ‖ π_ref).
    log_u = logprobs - ref_logprobs  # (B, T)
    return torch.exp(log_u) - 1.0 - log_u  # (B, T)


# --8<-- [end:kl_sign_buggy]


# --8<-- [start:kl_sign_fixed]
def kl_k1_fixed(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    _check_kl(logprobs, ref_logprobs)
    # FIX: k1 = log π_θ(y_t) − log π_ref(y_t), with y_t sampled from π_θ
    return logprobs - ref_logprobs  # (B, T)


def kl_k3_fixed(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    _check_kl(logprobs, ref_logprobs)
    # FIX: u = π_ref / π_θ, so E_{y~π_θ}[u − 1 − log u] = 0 + KL(π_θ ‖ π_ref)
    log_u = ref_logprobs - logprobs  # (B, T)
    return torch.exp(log_u) - 1.0 - log_u  # (B, T)


# --8<-- [end:kl_sign_fixed]


# --8<-- [start:causal_shift_buggy]
def response_logprobs_buggy(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    _check_logits_ids(logits, input_ids)  # logits (B, L, V), input_ids (B, L)
    # BUG: no shift. logits[:, t] is the prediction *after* reading token t, so this scores
    # each token with a distribution that has already seen it.
    logp = torch.log_softmax(logits, dim=-1)  # (B, L, V)
    return logp.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)  # (B, L)


# --8<-- [end:causal_shift_buggy]


# --8<-- [start:causal_shift_fixed]
def response_logprobs_fixed(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    _check_logits_ids(logits, input_ids)  # logits (B, L, V), input_ids (B, L)
    # FIX: position t predicts token t + 1: drop the last logits and the first token
    logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, L−1, V)
    targets = input_ids[:, 1:]  # (B, L−1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, L−1)


# --8<-- [end:causal_shift_fixed]


# --8<-- [start:token_vs_sequence_buggy]
def sequence_mean_loss(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = _per_token("per_token", per_token, mask)
    valid = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    lengths = mask.sum(dim=1)  # (B,)
    # Mean over each response's tokens, then over responses: a token of a response of
    # length L gets weight 1 / (B · L), so long responses count less per token.
    per_seq = valid.sum(dim=1) / lengths.clamp(min=1)  # (B,)
    return per_seq.sum() / (lengths > 0).sum().clamp(min=1)  # rows without tokens left out


# --8<-- [end:token_vs_sequence_buggy]


# --8<-- [start:token_vs_sequence_fixed]
def token_mean_loss(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = _per_token("per_token", per_token, mask)
    valid = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    # One mean over every valid token of the batch: every token weighs 1 / Σ_b L_b (DAPO).
    return valid.sum() / mask.sum().clamp(min=1)


# --8<-- [end:token_vs_sequence_fixed]


def _check_chunks(
    chunks: list[tuple[torch.Tensor, torch.Tensor]],
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Check each micro-batch (loss (b, T), mask (b, T)); return them with padding zeroed."""
    if not isinstance(chunks, list | tuple) or len(chunks) == 0:
        raise ValueError("chunks must be a non-empty list of (loss, mask) pairs of shape (b, T)")
    checked = []
    for i, chunk in enumerate(chunks):
        if not isinstance(chunk, tuple | list) or len(chunk) != 2:
            raise ValueError(f"chunks[{i}] must be a (loss, mask) pair of shape (b, T)")
        loss, mask = chunk
        mask = _per_token(f"chunks[{i}] loss", loss, mask)
        checked.append((torch.where(mask, loss, torch.zeros_like(loss)), mask))
    return checked


# --8<-- [start:accumulation_buggy]
def accumulated_loss_buggy(
    chunks: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    chunks = _check_chunks(chunks)  # padding zeroed with torch.where
    # BUG: averaging the token-means of micro-batches. Micro-batches with few valid tokens
    # get as much weight as full ones, so the result is not the token-mean of the batch.
    means = [loss.sum() / mask.sum().clamp(min=1) for loss, mask in chunks]
    return torch.stack(means).mean()


# --8<-- [end:accumulation_buggy]


# --8<-- [start:accumulation_fixed]
def accumulated_loss_fixed(
    chunks: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    chunks = _check_chunks(chunks)  # padding zeroed with torch.where
    # FIX: sum the token losses of each micro-batch and divide by the token count of the
    # whole batch (known before the first backward pass)
    total_tokens = sum(mask.sum() for _, mask in chunks).clamp(min=1)
    sums = [loss.sum() / total_tokens for loss, _ in chunks]
    return torch.stack(sums).sum()


# --8<-- [end:accumulation_fixed]
