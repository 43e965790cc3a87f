"""Claims of docs/pytorch/gpt.md and gpt-training.md not already checked in test_gpt.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from snippets.pytorch.gpt import (
    GPT,
    Block,
    CausalSelfAttention,
    GPTConfig,
    expected_num_params,
    sample_next_token,
)

GPT2_SMALL = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)


def test_formula_gives_gpt2_small_count() -> None:
    # Hugging Face's GPT2LMHeadModel("gpt2") reports 124,439,808 parameters (tied head)
    # and 7,087,872 per block; the closed form must give both without building the model.
    assert expected_num_params(GPT2_SMALL) == 124_439_808
    d = GPT2_SMALL.n_embd
    assert 12 * d * d + 13 * d == 7_087_872


def test_block_count_matches_one_built_block() -> None:
    config = GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=3, n_embd=24)
    d = config.n_embd
    assert sum(p.numel() for p in Block(config).parameters()) == 12 * d * d + 13 * d


@pytest.mark.parametrize("d_k", [4, 16, 64])
def test_unscaled_scores_have_variance_d_k_and_scaled_ones_variance_one(d_k: int) -> None:
    gen = torch.Generator().manual_seed(d_k)
    q = torch.randn(200_000, d_k, generator=gen, dtype=torch.float64)
    k = torch.randn(200_000, d_k, generator=gen, dtype=torch.float64)
    scores = (q * k).sum(-1)
    assert scores.var().item() == pytest.approx(d_k, rel=0.03)
    assert (scores / math.sqrt(d_k)).var().item() == pytest.approx(1.0, rel=0.03)


@pytest.mark.parametrize(("vocab", "seed"), [(11, 0), (65, 1), (257, 2)])
def test_fresh_model_loss_is_close_to_log_vocab(vocab: int, seed: int) -> None:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=8, n_layer=2, n_head=2, n_embd=16))
    idx = torch.randint(0, vocab, (8, 8))
    _, loss = model(idx, idx.roll(-1, 1))
    assert abs(loss.item() - math.log(vocab)) < 0.05


def test_block_with_zeroed_branch_outputs_is_the_identity() -> None:
    # pre-LN: each branch only adds to the residual stream, so zero branches pass x through
    torch.manual_seed(0)
    block = Block(GPTConfig(vocab_size=5, block_size=6, n_layer=1, n_head=2, n_embd=8))
    with torch.no_grad():
        for linear in (block.attn.proj, block.mlp.proj):
            linear.weight.zero_()
            linear.bias.zero_()
    x = torch.randn(2, 6, 8)
    assert torch.equal(block(x), x)


def test_gpt2_small_shares_tied_table_blocks_and_token_table() -> None:
    # gpt.md: tying saves V·d = 31% of GPT-2 small; the blocks hold ~12·L·d² = 85M of 124M,
    # and the token table 39M
    V, d, L = GPT2_SMALL.vocab_size, GPT2_SMALL.n_embd, GPT2_SMALL.n_layer
    total = expected_num_params(GPT2_SMALL)
    assert round(100 * V * d / total) == 31
    blocks = L * (12 * d * d + 13 * d)
    assert round(blocks / 1e6) == 85 and round(12 * L * d * d / 1e6) == 85
    assert round(V * d / 1e6) == 39


def _logits_move_before(model: GPT, t: int) -> bool:
    """Does changing token t change any logit at a position < t?"""
    idx = torch.randint(
        0, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0)
    )
    changed = idx.clone()
    changed[:, t] = (changed[:, t] + 1) % model.config.vocab_size
    return not torch.equal(model(idx)[0][:, :t], model(changed)[0][:, :t])


@pytest.mark.parametrize("diagonal_one", [False, True])
def test_a_mask_one_diagonal_too_high_or_triu_leaks_the_next_token(diagonal_one: bool) -> None:
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8)).eval()
    assert not _logits_move_before(model, 3)  # tril: causal
    ones = torch.ones(6, 6, dtype=torch.bool)
    leaky = torch.tril(ones, diagonal=1) if diagonal_one else torch.triu(ones)
    model.blocks[0].attn.causal_mask = leaky.view(1, 1, 6, 6)
    # position 2, which must predict token 3, now sees it
    assert _logits_move_before(model, 3)


def test_sdpa_and_explicit_attention_agree_when_dropout_is_off() -> None:
    config = GPTConfig(vocab_size=7, block_size=6, n_layer=1, n_head=2, n_embd=8, dropout=0.5)
    torch.manual_seed(0)
    attn = CausalSelfAttention(config).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    attn.eval()  # dropout off
    explicit = attn(x)
    attn.use_sdpa = True
    torch.testing.assert_close(explicit, attn(x), rtol=1e-12, atol=1e-12)
    attn.train()  # dropout on: every call draws a new random mask, even on the same path
    for use_sdpa in (False, True):
        attn.use_sdpa = use_sdpa
        assert not torch.allclose(attn(x), attn(x))


def test_view_after_transpose_fails_because_of_strides_not_shape() -> None:
    B, nh, T, hs = 2, 3, 4, 5
    y = torch.randn(B, nh, T, hs).transpose(1, 2)  # (B, T, nh, hs): nh and hs adjacent in shape
    assert y.stride() == (nh * T * hs, hs, T * hs, 1)  # but one step in nh jumps T·hs in memory
    assert not y.is_contiguous()
    with pytest.raises(RuntimeError, match="view size is not compatible"):
        y.view(B, T, nh * hs)
    assert y.contiguous().view(B, T, nh * hs).shape == (B, T, nh * hs)


def test_causal_mask_breaks_the_permutation_symmetry_of_attention() -> None:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 1, 5, 4, generator=gen, dtype=torch.float64) for _ in range(3))
    perm = torch.tensor([3, 0, 4, 1, 2])
    unmasked = F.scaled_dot_product_attention(q, k, v)
    permuted = F.scaled_dot_product_attention(q[:, :, perm], k[:, :, perm], v[:, :, perm])
    torch.testing.assert_close(permuted, unmasked[:, :, perm])  # equivariant: order is invisible
    causal = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    permuted = F.scaled_dot_product_attention(
        q[:, :, perm], k[:, :, perm], v[:, :, perm], is_causal=True
    )
    assert not torch.allclose(permuted, causal[:, :, perm])
    # without any position signal, uniform causal attention to a marker on the first token
    # returns 1 / (i + 1) at position i: the position can be read off
    zeros = torch.zeros(1, 1, 5, 4, dtype=torch.float64)
    marker = torch.zeros(1, 1, 5, 1, dtype=torch.float64)
    marker[0, 0, 0] = 1.0
    out = F.scaled_dot_product_attention(zeros, zeros, marker, is_causal=True)
    torch.testing.assert_close(out.flatten(), 1 / torch.arange(1, 6, dtype=torch.float64))


def test_top_k_one_keeps_ties_and_samples_among_them() -> None:
    logits = torch.tensor([[2.0, 2.0, 0.0]]).repeat(2000, 1)
    ids = sample_next_token(logits, top_k=1, generator=torch.Generator().manual_seed(0))
    counts = torch.bincount(ids.flatten(), minlength=3)
    assert counts[2] == 0 and counts[0] > 800 and counts[1] > 800
    assert (sample_next_token(logits, temperature=0.0) == 0).all()  # argmax: the first index


def test_cross_entropy_ignores_minus_100_by_default_and_needs_ignore_index_for_minus_1() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(4, 5, generator=gen)
    targets = torch.tensor([1, -100, 3, -100])
    torch.testing.assert_close(
        F.cross_entropy(logits, targets), F.cross_entropy(logits[[0, 2]], targets[[0, 2]])
    )
    with pytest.raises(IndexError, match="out of bounds"):
        F.cross_entropy(logits, torch.tensor([1, -1, 3, -1]))
    torch.testing.assert_close(
        F.cross_entropy(logits, torch.tensor([1, -1, 3, -1]), ignore_index=-1),
        F.cross_entropy(logits, targets),
    )


def test_initialisation_stds() -> None:
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=512, block_size=256, n_layer=4, n_head=4, n_embd=128)
    model = GPT(config)
    for weight in (model.tok_emb.weight, model.pos_emb.weight, model.blocks[0].attn.qkv.weight):
        assert weight.std().item() == pytest.approx(0.02, rel=0.05)
    residual = 0.02 / math.sqrt(2 * config.n_layer)
    for proj in (model.blocks[1].attn.proj, model.blocks[2].mlp.proj):
        assert proj.weight.std().item() == pytest.approx(residual, rel=0.05)
        assert torch.equal(proj.bias, torch.zeros_like(proj.bias))
