"""Claims of docs/pytorch/rl-patterns.md that tests/pytorch/test_rl_patterns.py does not check."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.pytorch.rl_patterns import frozen_copy, response_logprobs
from snippets.rl.logprobs import token_logprobs

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

    # the value is not the gradient: a NaN logit row at a masked position
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(1, 3, 5, generator=gen)
    logits[0, 2] = float("nan")
    logits.requires_grad_(True)
    tokens = torch.tensor([[1, 2, 3]])
    scored = torch.tensor([[True, True, False]])

    def masked_sum(z: torch.Tensor) -> torch.Tensor:
        logp = token_logprobs(z, tokens)
        return torch.where(scored, logp, torch.zeros_like(logp)).sum()

    after = masked_sum(logits)  # where only AFTER the log-softmax
    (grad_after,) = torch.autograd.grad(after, logits)
    assert torch.isfinite(after)
    assert torch.isnan(grad_after[0, 2]).all() and torch.isfinite(grad_after[0, :2]).all()

    before = masked_sum(torch.where(scored.unsqueeze(-1), logits, 0.0))  # logits masked first
    (grad_before,) = torch.autograd.grad(before, logits)
    assert before.item() == after.item()
    assert torch.isfinite(grad_before).all() and (grad_before[0, 2] == 0).all()
    torch.testing.assert_close(grad_before[0, :2], grad_after[0, :2])


class _LogitTable(nn.Module):
    """Stands in for a causal LM: position t's logits are row t of a table, whatever the ids."""

    def __init__(self, length: int, vocab: int) -> None:
        super().__init__()
        self.table = nn.Parameter(
            torch.randn(length, vocab, generator=torch.Generator().manual_seed(0))
        )

    def forward(self, ids: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.table[: ids.shape[1]].expand(ids.shape[0], -1, -1), None  # (B, L, V)


def test_response_logprobs_keeps_the_gradient_finite_with_nan_padding_logits() -> None:
    model = _LogitTable(length=6, vocab=5)
    with torch.no_grad():
        model.table[4] = float("nan")  # position 4 scores token 5, padding in both rows
    ids = torch.zeros(2, 6, dtype=torch.long)
    mask = torch.tensor([[0, 0, 1, 1, 0, 0], [0, 1, 1, 1, 1, 0]]).bool()
    logp = response_logprobs(model, ids, mask)
    assert torch.isfinite(logp).all()
    logp.sum().backward()
    assert torch.isfinite(model.table.grad).all() and (model.table.grad[4] == 0).all()


def test_an_overflowing_padding_logit_poisons_the_head_unless_masked_first() -> None:
    # finite weights and hidden states, but the head overflows to ±inf at a padded position
    torch.manual_seed(0)
    head = nn.Linear(4, 5, bias=False)
    with torch.no_grad():
        head.weight.mul_(100)
    tokens = torch.tensor([[1, 2, 3]])
    scored = torch.tensor([[True, True, False]])
    for mask_first in (False, True):
        head.zero_grad()
        hidden = torch.randn(1, 3, 4, generator=torch.Generator().manual_seed(0))
        hidden[0, 2] = 1e37
        hidden.requires_grad_(True)
        logits = head(hidden)  # (1, 3, 5)
        assert torch.isinf(logits[0, 2]).any() and torch.isfinite(logits[0, :2]).all()
        if mask_first:
            logits = torch.where(scored.unsqueeze(-1), logits, 0.0)
        logp = token_logprobs(logits, tokens)
        value = torch.where(scored, logp, torch.zeros_like(logp)).sum()
        value.backward()
        assert torch.isfinite(value)  # the value is clean either way
        clean = torch.isfinite(head.weight.grad).all() and torch.isfinite(hidden.grad).all()
        assert bool(clean) == mask_first


def test_a_nan_hidden_state_reaches_the_head_gradient_whatever_the_mask() -> None:
    # dW = sum_t g_t h_t^T: a zero upstream gradient times a NaN hidden state is still NaN
    torch.manual_seed(0)
    head = nn.Linear(4, 5, bias=False)
    hidden = torch.randn(1, 3, 4)
    hidden[0, 2] = float("nan")
    tokens = torch.tensor([[1, 2, 3]])
    scored = torch.tensor([[True, True, False]])
    logits = torch.where(scored.unsqueeze(-1), head(hidden), 0.0)  # masked before the softmax
    logp = token_logprobs(logits, tokens)
    torch.where(scored, logp, torch.zeros_like(logp)).sum().backward()
    assert torch.isnan(head.weight.grad).all()


def test_a_frozen_copy_builds_no_graph_even_outside_no_grad() -> None:
    policy = _policy()
    ids = torch.randint(0, CONFIG.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0))
    mask = torch.ones(2, 6, dtype=torch.bool)
    frozen = response_logprobs(frozen_copy(policy), ids, mask)  # no torch.no_grad() here
    assert frozen.grad_fn is None and not frozen.requires_grad
    unfrozen = copy.deepcopy(policy).eval()  # a copy that still requires grad
    assert response_logprobs(unfrozen, ids, mask).grad_fn is not None


def _bf16_head_errors(scale: float) -> dict[str, float]:
    """Max |error| of token log-probs against float64 when the LM head runs under bf16 autocast."""
    gen = torch.Generator().manual_seed(0)
    n, d, v = 256, 32, 256
    hidden = torch.randn(n, d, generator=gen)  # (N, d)
    head = torch.randn(v, d, generator=gen) * scale / d**0.5  # (V, d): logits of std ~scale
    tokens = torch.randint(0, v, (1, n), generator=gen)  # (1, N)
    exact = token_logprobs((hidden.double() @ head.double().T)[None], tokens)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        low = hidden @ head.T  # (N, V) bfloat16
    assert low.dtype == torch.bfloat16
    variants = {
        "fp32 head": token_logprobs((hidden @ head.T)[None], tokens),
        "bf16 logits, fp32 log-softmax": token_logprobs(low.float()[None], tokens),
        "all bf16": token_logprobs(low[None], tokens),
    }
    return {k: (x.double() - exact).abs().max().item() for k, x in variants.items()}


@pytest.mark.parametrize("scale", [1.0, 3.0, 10.0])
def test_casting_bf16_logits_removes_only_part_of_the_error(scale: float) -> None:
    errors = _bf16_head_errors(scale)
    assert errors["fp32 head"] < 1e-4
    # the cast helps, but the logits' own bf16 rounding stays: far above the fp32 head
    assert errors["bf16 logits, fp32 log-softmax"] < errors["all bf16"]
    assert errors["bf16 logits, fp32 log-softmax"] > 100 * errors["fp32 head"]
    assert errors["bf16 logits, fp32 log-softmax"] > 0.005


def test_bf16_error_grows_with_the_logit_scale() -> None:
    cast = [_bf16_head_errors(s)["bf16 logits, fp32 log-softmax"] for s in (1.0, 3.0, 10.0)]
    assert cast[0] < cast[1] < cast[2]


def test_bf16_has_float32_range_so_small_gradients_do_not_underflow() -> None:
    assert torch.finfo(torch.bfloat16).tiny == torch.finfo(torch.float32).tiny
    small = torch.tensor([1e-8, 1e-20])  # gradient-sized values
    assert (small.to(torch.float16) == 0).all()  # below fp16's smallest subnormal 2^-24
    assert (small.to(torch.bfloat16) != 0).all()


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
