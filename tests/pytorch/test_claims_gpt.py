"""Claims of docs/pytorch/gpt.md that tests/pytorch/test_gpt.py does not already check."""

from __future__ import annotations

import math

import pytest
import torch

from snippets.pytorch.gpt import GPT, Block, GPTConfig, expected_num_params

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
