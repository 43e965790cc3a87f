"""RL wiring on the GPT: masked log-probs = −CE, stop-gradient, clipping, freezing, autocast."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.pytorch.rl_patterns import (
    freeze,
    frozen_copy,
    global_grad_norm,
    policy_ratio,
    response_logprobs,
    rl_patterns,
)

CONFIG = GPTConfig(vocab_size=13, block_size=10, n_layer=1, n_head=2, n_embd=16)


def _policy() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG)


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, CONFIG.vocab_size, (3, 8), generator=gen)
    mask = torch.zeros(3, 8, dtype=torch.long)
    mask[0, 3:] = 1  # prompt of 3, full response
    mask[1, 2:5] = 1  # response then padding
    mask[2, 6:7] = 1  # a one-token response
    return ids, mask


def test_masked_logprobs_equal_minus_cross_entropy_with_ignore_index() -> None:
    model, (ids, mask) = _policy(), _batch()
    logp = response_logprobs(model, ids, mask)
    logits, _ = model(ids)
    targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    ce = F.cross_entropy(
        logits[:, :-1].reshape(-1, CONFIG.vocab_size), targets.reshape(-1), reduction="none"
    ).view(3, 7)
    torch.testing.assert_close(logp, -ce)
    assert (logp[mask[:, 1:] == 0] == 0).all() and (logp[mask[:, 1:] == 1] < 0).all()
    # and the mean over valid tokens is F.cross_entropy's own ignore_index mean
    mean_ce = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100)
    torch.testing.assert_close(-logp.sum() / mask[:, 1:].sum(), mean_ce)


def test_padding_tokens_do_not_change_the_response_logprobs() -> None:
    model, (ids, mask) = _policy(), _batch()
    other = ids.clone()
    other[1, 5:] = (other[1, 5:] + 1) % CONFIG.vocab_size  # change the padding after row 1
    torch.testing.assert_close(
        response_logprobs(model, ids, mask), response_logprobs(model, other, mask)
    )


def test_stop_gradient_ratio_is_one_with_the_logprob_gradient() -> None:
    model, (ids, mask) = _policy(), _batch()
    logp = response_logprobs(model, ids, mask)
    ratio = policy_ratio(logp, logp)
    assert torch.equal(ratio, torch.ones_like(ratio))
    params = [p for p in model.parameters()]
    g_ratio = torch.autograd.grad(ratio.sum(), params, retain_graph=True, allow_unused=True)
    g_logp = torch.autograd.grad(logp.sum(), params, retain_graph=True, allow_unused=True)
    for a, b in zip(g_ratio, g_logp, strict=True):
        if b is not None:
            torch.testing.assert_close(a, b)
    # without the detach the ratio is a constant: the gradient is zero everywhere
    forgot = torch.exp(logp - logp)
    grads = torch.autograd.grad(forgot.sum(), params, allow_unused=True)
    assert all(g is None or (g == 0).all() for g in grads)


def test_clipping_measures_and_bounds_the_global_norm() -> None:
    model, (ids, mask) = _policy(), _batch()
    (-response_logprobs(model, ids, mask).sum()).backward()
    norm = global_grad_norm(model.parameters())
    reported = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=norm / 4).item()
    assert reported == pytest.approx(norm, rel=1e-5)
    assert global_grad_norm(model.parameters()) == pytest.approx(norm / 4, rel=1e-4)


def test_frozen_params_and_reference_do_not_move() -> None:
    model, (ids, mask) = _policy(), _batch()
    reference = frozen_copy(model)
    assert not reference.training and not any(p.requires_grad for p in reference.parameters())
    frozen = freeze(model.blocks[0].mlp)
    assert frozen == sum(p.numel() for p in model.blocks[0].mlp.parameters())
    before = {n: p.clone() for n, p in model.named_parameters()}
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(trainable, lr=0.5)
    (-response_logprobs(model, ids, mask).sum()).backward()
    optimizer.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(before[name], p)
        assert changed == (not name.startswith("blocks.0.mlp.")), name
    for (name, p), (_, q) in zip(reference.named_parameters(), before.items(), strict=True):
        assert torch.equal(p, q), name


def test_freezing_the_embedding_also_freezes_the_tied_head() -> None:
    model = _policy()
    freeze(model.tok_emb)
    assert not model.lm_head.weight.requires_grad


def test_bf16_autocast_on_cpu() -> None:
    model, (ids, _) = _policy(), _batch()
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        out = a @ b
        logits, _ = model(ids)
    assert out.dtype == torch.bfloat16 and logits.dtype == torch.bfloat16
    assert (a @ b).dtype == torch.float32  # outside the context: float32 again
    assert model.lm_head.weight.dtype == torch.float32  # weights are never cast in place
    torch.testing.assert_close(out.float(), a @ b, atol=0.1, rtol=0.02)


def test_rl_patterns_demo_numbers() -> None:
    out = rl_patterns()
    assert out["ce_gap"] < 1e-5 and out["kl_before"] == 0.0 and out["kl_after"] > 0
    assert out["ratio_all_one"] and out["frozen_unchanged"] and out["reference_unchanged"]
    assert out["policy_moved"] and out["norm_before"] > 0.5
    assert out["norm_after"] == pytest.approx(0.5, rel=1e-4)
    assert out["autocast_dtype"] == torch.bfloat16


def test_bad_arguments_name_themselves() -> None:
    model, (ids, mask) = _policy(), _batch()
    with pytest.raises(ValueError, match="response_mask"):
        response_logprobs(model, ids, mask[:, :-1])
    with pytest.raises(ValueError, match="input_ids"):
        response_logprobs(model, ids[0], mask[0])
    with pytest.raises(ValueError, match="old_logprobs"):
        policy_ratio(torch.zeros(2, 3), torch.zeros(3, 2))
