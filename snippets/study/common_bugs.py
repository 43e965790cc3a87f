"""Seven classic bugs of RL post-training code, each as a buggy and a fixed function.

Every pair takes the same inputs and differs in one or two lines. The buggy versions run
without an error, which is what makes these bugs expensive: the loss goes down, the curves look
plausible, and the model learns the wrong thing. ``tests/study/test_common_bugs.py`` shows
each buggy version giving the wrong number and each fixed version agreeing with the trusted
implementation in ``snippets.rl`` or with a hand-computed value.

All tensors are (B, T): B responses, T token positions, ``mask`` true on response tokens.
"""

from __future__ import annotations

import torch

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


def _token_mean(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the valid tokens of the whole batch."""
    return (per_token * mask).sum() / mask.sum()  # ()


# --8<-- [start:ppo_sign_buggy]
def ppo_loss_buggy(
    logprobs: torch.Tensor, old_logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    ratio = torch.exp(logprobs - old_logprobs.detach())  # (B, T)
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
    ratio = torch.exp(logprobs - old_logprobs.detach())  # (B, T)
    unclipped = -adv * ratio  # (B, T)
    clipped = -adv * ratio.clamp(0.8, 1.2)  # (B, T)
    # FIX: min of objectives = max of losses (the pessimistic bound of the PPO paper)
    return _token_mean(torch.maximum(unclipped, clipped), mask)


# --8<-- [end:ppo_sign_fixed]


# --8<-- [start:detach_old_buggy]
def ppo_loss_same_forward_buggy(
    logprobs: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
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
    # FIX: π_old is a constant; at ratio 1 the gradient is the vanilla policy gradient −A ∇log π
    old_logprobs = logprobs.detach()
    ratio = torch.exp(logprobs - old_logprobs)  # (B, T), value 1, gradient ratio · ∇log π
    return _token_mean(-adv * ratio, mask)


# --8<-- [end:detach_old_fixed]


# --8<-- [start:detach_baseline_buggy]
def policy_loss_with_value_baseline_buggy(
    logprobs: torch.Tensor, returns: torch.Tensor, values: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
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
    # FIX: advantages are constants; the critic learns only from its own value loss
    adv = (returns - values).detach()  # (B, T)
    return _token_mean(-adv * logprobs, mask)


# --8<-- [end:detach_baseline_fixed]


# --8<-- [start:padding_buggy]
def masked_loss_buggy(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # BUG: the mean runs over every position, padding included: padded positions add their
    # (garbage) loss and the denominator counts them, so the scale depends on the padding.
    del mask
    return per_token.mean()


# --8<-- [end:padding_buggy]


# --8<-- [start:padding_fixed]
def masked_loss_fixed(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # FIX: select valid positions (torch.where also stops NaN at padding), divide by their count
    valid = torch.where(mask, per_token, torch.zeros_like(per_token))  # (B, T)
    return valid.sum() / mask.sum().clamp(min=1)


# --8<-- [end:padding_fixed]


# --8<-- [start:std_one_sample_buggy]
def grpo_advantages_buggy(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # BUG: with one response per prompt (G = 1), std with Bessel's correction is 0 / 0 = NaN,
    # and a single NaN advantage turns the whole batch loss, then every weight, into NaN.
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True)  # (P, 1), NaN when G = 1
    return (rewards - mean) / (std + eps)  # (P, G)


# --8<-- [end:std_one_sample_buggy]


# --8<-- [start:std_one_sample_fixed]
def grpo_advantages_fixed(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    # FIX: a group needs at least two responses; refuse G < 2 instead of training on NaN
    if rewards.ndim != 2 or rewards.shape[1] < 2:
        raise ValueError(
            f"rewards must have shape (P, G) with G >= 2 responses per prompt, "
            f"got shape {tuple(rewards.shape)}; for G = 1 normalise over the batch instead"
        )
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    std = rewards.std(dim=1, keepdim=True)  # (P, 1), finite for G >= 2
    return (rewards - mean) / (std + eps)  # (P, G)


# --8<-- [end:std_one_sample_fixed]


# --8<-- [start:kl_sign_buggy]
def kl_k1_buggy(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    # BUG: log π_ref − log π_θ is the k1 estimate of −KL(π_θ ‖ π_ref): subtracting β times it
    # from the reward *rewards* drifting away from the reference.
    return ref_logprobs - logprobs  # (B, T)


def kl_k3_buggy(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    # BUG: the ratio is inverted (π_θ / π_ref). Under samples from π_θ this is no longer an
    # unbiased estimate of KL(π_θ ‖ π_ref); its expectation is χ²(π_θ ‖ π_ref) − KL(π_θ ‖ π_ref).
    log_u = logprobs - ref_logprobs  # (B, T)
    return torch.exp(log_u) - 1.0 - log_u  # (B, T)


# --8<-- [end:kl_sign_buggy]


# --8<-- [start:kl_sign_fixed]
def kl_k1_fixed(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    # FIX: k1 = log π_θ(y_t) − log π_ref(y_t), with y_t sampled from π_θ
    return logprobs - ref_logprobs  # (B, T)


def kl_k3_fixed(logprobs: torch.Tensor, ref_logprobs: torch.Tensor) -> torch.Tensor:
    # FIX: u = π_ref / π_θ, so E_{y~π_θ}[u − 1 − log u] = 0 + KL(π_θ ‖ π_ref)
    log_u = ref_logprobs - logprobs  # (B, T)
    return torch.exp(log_u) - 1.0 - log_u  # (B, T)


# --8<-- [end:kl_sign_fixed]


# --8<-- [start:causal_shift_buggy]
def response_logprobs_buggy(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    # BUG: no shift. logits[:, t] is the prediction *after* reading token t, so this scores
    # each token with a distribution that has already seen it.
    logp = torch.log_softmax(logits, dim=-1)  # (B, L, V)
    return logp.gather(-1, input_ids.unsqueeze(-1)).squeeze(-1)  # (B, L)


# --8<-- [end:causal_shift_buggy]


# --8<-- [start:causal_shift_fixed]
def response_logprobs_fixed(logits: torch.Tensor, input_ids: torch.Tensor) -> torch.Tensor:
    # FIX: position t predicts token t + 1: drop the last logits and the first token
    logp = torch.log_softmax(logits[:, :-1], dim=-1)  # (B, L−1, V)
    targets = input_ids[:, 1:]  # (B, L−1)
    return logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, L−1)


# --8<-- [end:causal_shift_fixed]


# --8<-- [start:token_vs_sequence_buggy]
def sequence_mean_loss(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # Mean over each response's tokens, then over responses: a token of a response of
    # length L gets weight 1 / (B · L), so long responses count less per token.
    per_seq = (per_token * mask).sum(dim=1) / mask.sum(dim=1)  # (B,)
    return per_seq.mean()


# --8<-- [end:token_vs_sequence_buggy]


# --8<-- [start:token_vs_sequence_fixed]
def token_mean_loss(per_token: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    # One mean over every valid token of the batch: every token weighs 1 / Σ_b L_b (DAPO).
    return (per_token * mask).sum() / mask.sum()


# --8<-- [end:token_vs_sequence_fixed]


# --8<-- [start:accumulation_buggy]
def accumulated_loss_buggy(
    chunks: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    # BUG: averaging the token-means of micro-batches. Micro-batches with few valid tokens
    # get as much weight as full ones, so the result is not the token-mean of the batch.
    means = [(loss * mask).sum() / mask.sum() for loss, mask in chunks]
    return torch.stack(means).mean()


# --8<-- [end:accumulation_buggy]


# --8<-- [start:accumulation_fixed]
def accumulated_loss_fixed(
    chunks: list[tuple[torch.Tensor, torch.Tensor]],
) -> torch.Tensor:
    # FIX: sum the token losses of each micro-batch and divide by the token count of the
    # whole batch (known before the first backward pass)
    total_tokens = sum(mask.sum() for _, mask in chunks)
    sums = [(loss * mask).sum() / total_tokens for loss, mask in chunks]
    return torch.stack(sums).sum()


# --8<-- [end:accumulation_fixed]
