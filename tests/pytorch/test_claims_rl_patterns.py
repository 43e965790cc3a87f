"""Claims of docs/pytorch/rl-patterns.md that tests/pytorch/test_rl_patterns.py does not check."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.pytorch.rl_patterns import frozen_copy, response_logprobs

CONFIG = GPTConfig(vocab_size=13, block_size=10, n_layer=1, n_head=2, n_embd=16)


def _policy() -> GPT:
    torch.manual_seed(0)
    return GPT(CONFIG)


def test_frozen_copy_keeps_its_own_tying_and_shares_no_storage() -> None:
    policy = _policy()
    reference = frozen_copy(policy)
    assert reference.lm_head.weight is reference.tok_emb.weight
    ours = {p.data_ptr() for p in policy.parameters()}
    assert not ours & {p.data_ptr() for p in reference.parameters()}


def test_an_alias_is_not_a_reference() -> None:
    policy = _policy()
    alias, reference = policy, frozen_copy(policy)
    with torch.no_grad():
        policy.tok_emb.weight.add_(1.0)
    assert torch.equal(alias.tok_emb.weight, policy.tok_emb.weight)
    assert not torch.equal(reference.tok_emb.weight, policy.tok_emb.weight)


def test_scoring_under_no_grad_builds_no_graph() -> None:
    policy = _policy()
    ids = torch.randint(0, CONFIG.vocab_size, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    with torch.no_grad():
        scored = response_logprobs(policy, ids, mask)
    assert not scored.requires_grad and scored.grad_fn is None
    assert response_logprobs(policy, ids, mask).grad_fn is not None


def test_logprobs_are_float32_under_bf16_autocast() -> None:
    policy = _policy()
    ids = torch.randint(0, CONFIG.vocab_size, (2, 6))
    mask = torch.ones(2, 6, dtype=torch.bool)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        logits, _ = policy(ids)
        logp = response_logprobs(policy, ids, mask)
    assert logits.dtype == torch.bfloat16 and logp.dtype == torch.float32


def test_clipping_scales_every_gradient_by_one_factor() -> None:
    gen = torch.Generator().manual_seed(0)
    params = [nn.Parameter(torch.zeros(n)) for n in (3, 5, 2)]
    for p in params:
        p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float32) * 10
    before = torch.cat([p.grad.clone() for p in params])
    norm = nn.utils.clip_grad_norm_(params, max_norm=1.0)
    after = torch.cat([p.grad for p in params])
    torch.testing.assert_close(norm, before.norm())
    torch.testing.assert_close(after, before / before.norm(), rtol=1e-5, atol=1e-6)


def test_multiplying_by_a_mask_keeps_nan_but_where_drops_it() -> None:
    x = torch.tensor([1.0, float("nan")])
    mask = torch.tensor([True, False])
    assert torch.isnan((x * mask).sum())
    assert torch.where(mask, x, torch.zeros_like(x)).sum().item() == 1.0


def test_frozen_param_with_stale_zero_grad_still_moves_under_adamw() -> None:
    # requires_grad_(False) alone does not take a parameter out of an existing optimizer:
    # a zero (not None) .grad lets AdamW apply momentum and weight decay to it
    for set_to_none, should_move in [(False, True), (True, False)]:
        p = nn.Parameter(torch.ones(2))
        optimizer = torch.optim.AdamW([p], lr=0.1, weight_decay=0.1)
        p.grad = torch.ones(2)
        optimizer.step()
        p.requires_grad_(False)
        optimizer.zero_grad(set_to_none=set_to_none)
        before = p.detach().clone()
        optimizer.step()
        assert (not torch.equal(before, p.detach())) == should_move


def test_bf16_rounds_log_probs_by_up_to_2_to_the_minus_7() -> None:
    logp = torch.linspace(-4.0, -2.0, 10_001, dtype=torch.float64)
    error = (logp.to(torch.bfloat16).double() - logp).abs()
    assert error.max().item() <= 2.0**-7
    assert error.max().item() > 0.9 * 2.0**-7  # the bound is reached
    # two such roundings in a log-ratio: exp(2 · 2^-7) − 1 ≈ 1.6%
    assert 0.015 < torch.expm1(torch.tensor(2 * 2.0**-7)).item() < 0.016


def test_clipping_divides_by_the_norm_plus_1e_minus_6() -> None:
    p = nn.Parameter(torch.zeros(1, dtype=torch.float64))
    p.grad = torch.tensor([2.0], dtype=torch.float64)
    nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert p.grad.item() == pytest.approx(2.0 / (2.0 + 1e-6), rel=1e-12)


def test_an_undetached_baseline_is_pushed_up_by_the_policy_loss() -> None:
    # −(R − V) log π: dL/dV = log π < 0, so a descent step raises V (lowers the advantage)
    logp = torch.tensor([-0.1, -3.0], dtype=torch.float64)  # a likely and an unlikely token
    returns = torch.tensor([1.0, 1.0], dtype=torch.float64)
    values = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    (-((returns - values) * logp).mean()).backward()
    step = -values.grad  # the direction gradient descent moves V
    assert (step > 0).all() and step[1] > step[0]


def test_frozen_layer_above_a_trainable_one_still_passes_the_gradient() -> None:
    torch.manual_seed(0)
    bottom, top = nn.Linear(3, 3), nn.Linear(3, 1)
    top.requires_grad_(False)
    top(bottom(torch.randn(4, 3))).sum().backward()
    assert top.weight.grad is None and bottom.weight.grad is not None
