"""PyTorch patterns of RL post-training, shown on the minimal GPT.

Masked token log-probs of a response, a frozen reference model, the KL between the two,
stop-gradient (``detach``) in the policy ratio, gradient clipping, freezing parameters and
bf16 autocast on CPU. The log-prob and KL maths live in ``snippets.rl`` and are imported,
not repeated: this module is about wiring them to a model.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from snippets._checks import check_float, check_mask, check_ndim, check_same_shape
from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.rl.aggregation import masked_mean
from snippets.rl.kl import exact_kl, kl_k3
from snippets.rl.logprobs import shift_for_next_token, token_logprobs

__all__ = [
    "freeze",
    "frozen_copy",
    "global_grad_norm",
    "policy_ratio",
    "response_logprobs",
    "rl_patterns",
]


# --8<-- [start:reference]
def frozen_copy(model: nn.Module) -> nn.Module:
    """The reference model of RLHF: an independent copy, in eval mode, with no gradients."""
    reference = copy.deepcopy(model)  # its own tensors: training the policy leaves it alone
    reference.eval()  # dropout off: a fixed distribution
    reference.requires_grad_(False)  # no .grad, no graph through its weights
    return reference


def freeze(module: nn.Module) -> int:
    """Stop training ``module``'s parameters; return how many scalars were frozen."""
    module.requires_grad_(False)
    return sum(p.numel() for p in module.parameters())


# --8<-- [end:reference]


# --8<-- [start:logprobs]
def response_logprobs(
    model: GPT, input_ids: torch.Tensor, response_mask: torch.Tensor
) -> torch.Tensor:
    """log π(x_{t+1} | x_≤t) of every response token; 0 on prompt and padding.

    | Argument      | Shape      | Meaning                                            |
    |---------------|------------|----------------------------------------------------|
    | input_ids     | (B, L)     | prompt + response (+ padding, any valid id)        |
    | response_mask | (B, L)     | 1 on response tokens, 0 on prompt and padding      |
    | **returns**   | (B, L − 1) | aligned with ``input_ids[:, 1:]``, ``mask[:, 1:]`` |
    """
    check_ndim("input_ids", input_ids, 2, "(B, L)")
    mask = check_mask("response_mask", response_mask, input_ids.shape, "(B, L)")
    logits, _ = model(input_ids)  # (B, L, V)
    # logits[:, t] scores token t + 1
    logits, targets = shift_for_next_token(logits, input_ids)  # (B, L−1, V), (B, L−1)
    scored = mask[:, 1:]  # (B, L−1): the mask shifted like the targets
    # zero the unscored logits BEFORE the log-softmax: a NaN or inf there would give a NaN
    # gradient even though the final where hides it from the value
    safe = torch.where(scored.unsqueeze(-1), logits.float(), 0.0)  # (B, L−1, V) float32
    # log π(y_t) = z_{y_t} − logsumexp(z); a float32 log-softmax of bf16 logits under autocast
    logp = token_logprobs(safe, targets)  # (B, L−1)
    return torch.where(scored, logp, torch.zeros_like(logp))  # (B, L−1)


# --8<-- [end:logprobs]


# --8<-- [start:stop-gradient]
def policy_ratio(logprobs: torch.Tensor, old_logprobs: torch.Tensor) -> torch.Tensor:
    """r = π_θ / π_old = exp(log π_θ − sg[log π_old]); ``sg`` = stop-gradient (``detach``).

    | Argument     | Shape  | Meaning                                        |
    |--------------|--------|------------------------------------------------|
    | logprobs     | (B, T) | log π_θ of the sampled tokens (with a graph)   |
    | old_logprobs | (B, T) | log π_old of the same tokens (treated as data) |
    | **returns**  | (B, T) | the ratio per token                            |

    On-policy, the value is exactly 1 but ∇r = ∇ log π_θ: the REINFORCE gradient. Without
    the detach, ``exp(logp − logp)`` is the constant 1 and the gradient silently vanishes.
    Any equal shapes work; (B, T) is the usual one.
    """
    check_float("logprobs", logprobs)
    check_same_shape("old_logprobs", old_logprobs, "logprobs", logprobs)
    return torch.exp(logprobs - old_logprobs.detach())


# --8<-- [end:stop-gradient]


def global_grad_norm(parameters: Iterable[nn.Parameter]) -> float:
    """‖g‖ = sqrt(Σ_p ‖∇p‖²) over parameters that have a gradient (what clipping measures)."""
    squares = [p.grad.double().pow(2).sum() for p in parameters if p.grad is not None]
    return math.sqrt(sum(s.item() for s in squares))


def _demo_batch(policy: GPT, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    prompt_len, max_resp = 4, 6
    prompt = torch.randint(1, policy.config.vocab_size, (4, prompt_len), generator=gen)  # (B, P)
    policy.eval()
    ids = policy.generate(prompt, max_resp, generator=gen)  # (B, P + R) sampled responses
    lengths = torch.tensor([6, 4, 5, 2])  # (B,) responses end at different places
    pos = torch.arange(ids.shape[1])  # (L,)
    mask = (pos >= prompt_len) & (pos < prompt_len + lengths.unsqueeze(1))  # (B, L)
    ids = ids.masked_fill(pos >= prompt_len + lengths.unsqueeze(1), 0)  # (B, L) pad id 0
    return ids, mask


# --8<-- [start:demo]
def rl_patterns() -> dict[str, object]:
    """One policy-gradient-style update of a tiny GPT against a frozen reference."""
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    policy = GPT(GPTConfig(vocab_size=16, block_size=12, n_layer=2, n_head=2, n_embd=32))
    reference = frozen_copy(policy)
    ids, mask = _demo_batch(policy, gen)  # (B, L), (B, L)
    resp = mask[:, 1:]  # (B, L−1): the mask aligned with the shifted targets

    # 1. freeze the bottom block and the position table BEFORE the forward; optimise the rest
    frozen = freeze(policy.blocks[0]) + freeze(policy.pos_emb)
    trainable = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-2)
    frozen_before = policy.blocks[0].attn.qkv.weight.clone()  # (3d, d)
    head_before = policy.lm_head.weight.clone()  # (V, d), trainable (tied to tok_emb)
    print(f"frozen {frozen:,} of {policy.num_params():,} parameters")

    # 2. masked log-probs equal −cross-entropy with ignore_index on the non-response tokens
    policy.train()
    logp = response_logprobs(policy, ids, mask)  # (B, L−1), has a graph
    targets = ids[:, 1:].masked_fill(~resp, -100)  # (B, L−1)
    with torch.no_grad():
        logits_now = policy(ids)[0][:, :-1]  # (B, L−1, V)
    ce = F.cross_entropy(logits_now.transpose(1, 2), targets, reduction="none")  # (B, L−1)
    ce_gap = (logp.detach() + ce).abs().max().item()  # ce is 0 where ignored, so is logp
    print(f"response tokens per row {resp.sum(1).tolist()} | max |logp + CE| = {ce_gap:.1e}")

    # 3. the reference scores the same tokens without a graph; KL is 0 before any update
    with torch.no_grad():
        ref_logp = response_logprobs(reference, ids, mask)  # (B, L−1)
    kl_before = masked_mean(kl_k3(logp, ref_logp), resp).item()
    print(f"KL(policy ‖ ref) before the update (k3): {kl_before:.1e}")

    # 4. stop-gradient: ratio = 1 in value, ∇ratio = ∇logp
    old_logp = logp.detach()  # (B, L−1) what the sampler saw; a constant
    ratio = policy_ratio(logp, old_logp)  # (B, L−1), all ones
    advantages = torch.randn(ids.shape[0], 1, generator=gen).expand_as(logp)  # (B, L−1)
    # L = −mean_t(r_t A_t) + β · mean_t(k3_t)
    loss = -masked_mean(ratio * advantages, resp) + 0.1 * masked_mean(kl_k3(logp, ref_logp), resp)
    optimizer.zero_grad()
    loss.backward()
    print(
        "ratio values:",
        ratio[resp].unique().tolist(),
        "| frozen .grad:",
        policy.pos_emb.weight.grad,
    )

    # 5. clip: clip_grad_norm_ returns the norm BEFORE clipping
    norm_before = nn.utils.clip_grad_norm_(trainable, max_norm=0.5).item()
    norm_after = global_grad_norm(trainable)
    print(f"grad norm {norm_before:.3f} -> {norm_after:.3f} after clipping to 0.5")
    optimizer.step()

    # the policy moved; the frozen block and the reference did not
    policy.eval()
    with torch.no_grad():
        logits, ref_logits = policy(ids)[0], reference(ids)[0]  # (B, L, V) each
        kl_after = masked_mean(exact_kl(logits[:, :-1], ref_logits[:, :-1]), resp).item()
    unchanged = torch.equal(frozen_before, policy.blocks[0].attn.qkv.weight)
    ref_kept = torch.equal(head_before, reference.lm_head.weight)
    moved = not torch.equal(head_before, policy.lm_head.weight)
    print(f"exact KL after one step: {kl_after:.2e} | frozen block unchanged: {unchanged}")
    print(f"policy head moved: {moved} | reference head unchanged: {ref_kept}")

    # 6. bf16 autocast on CPU: matmuls run in bf16, weights stay float32
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low, _ = policy(ids)  # (B, L, V) bfloat16
    drift = (low.float() - logits).abs().max().item()
    print(
        f"autocast logits {low.dtype}, weights {policy.lm_head.weight.dtype}, max drift {drift:.3f}"
    )
    return {
        "ce_gap": ce_gap,
        "kl_before": kl_before,
        "kl_after": kl_after,
        "ratio_all_one": bool((ratio == 1).all()),
        "norm_before": norm_before,
        "norm_after": norm_after,
        "frozen_unchanged": unchanged,
        "reference_unchanged": ref_kept,
        "policy_moved": moved,
        "autocast_dtype": low.dtype,
    }


# --8<-- [end:demo]

if __name__ == "__main__":
    rl_patterns()
