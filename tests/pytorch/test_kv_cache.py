"""The KV cache against the full recompute: GPT.forward on the whole prefix is the reference
for every logit, GPT.generate for every token, and the allocated tensors for the size formula."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.pytorch import kv_cache
from snippets.pytorch.gpt import GPT, GPTConfig, expected_num_params
from snippets.pytorch.kv_cache import (
    KVCache,
    attention_with_cache,
    forward_with_cache,
    generate_with_cache,
    kv_cache_bytes,
    kv_cache_numel,
)

SMALL = GPTConfig(vocab_size=17, block_size=16, n_layer=3, n_head=4, n_embd=32)
TINY = GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=4)
WIDE = GPTConfig(vocab_size=9, block_size=32, n_layer=4, n_head=8, n_embd=64)
TIGHT = {"rtol": 1e-12, "atol": 1e-12}


def _model(config: GPTConfig = SMALL, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    return GPT(config).double().eval()


def _tokens(B: int, T: int, seed: int = 0, config: GPTConfig = SMALL) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, config.vocab_size, (B, T), generator=gen)


@pytest.mark.parametrize("use_sdpa", [False, True])
@pytest.mark.parametrize("B", [1, 3])
def test_cached_logits_equal_full_recompute_at_every_step(use_sdpa: bool, B: int) -> None:
    model = _model(dataclasses.replace(SMALL, use_sdpa=use_sdpa))
    idx = _tokens(B, SMALL.block_size)
    cache = KVCache(SMALL, B, dtype=torch.float64)
    T0 = 4
    prefill = forward_with_cache(model, idx[:, :T0], cache, start=0)
    torch.testing.assert_close(prefill, model(idx[:, :T0])[0], **TIGHT)
    for t in range(T0, SMALL.block_size):
        step = forward_with_cache(model, idx[:, t : t + 1], cache, start=t)  # (B, 1, V)
        full = model(idx[:, : t + 1])[0][:, -1:]  # the whole prefix, recomputed
        torch.testing.assert_close(step, full, **TIGHT)
        assert cache.length == t + 1


def test_attention_with_cache_equals_the_module_rows() -> None:
    model = _model()
    attn = model.blocks[0].attn
    x = torch.randn(2, 9, SMALL.n_embd, dtype=torch.float64)
    cache = KVCache(SMALL, 2, dtype=torch.float64)
    head = attention_with_cache(attn, x[:, :6], cache, layer=0, start=0)
    cache.length = 6  # what forward_with_cache does after the last layer
    tail = attention_with_cache(attn, x[:, 6:], cache, layer=0, start=6)
    torch.testing.assert_close(torch.cat([head, tail], dim=1), attn(x), **TIGHT)


@pytest.mark.parametrize("chunks", [[7], [1] * 7, [3, 4], [2, 1, 4]])
def test_prefill_in_any_chunks_equals_token_by_token(chunks: list[int]) -> None:
    model = _model()
    idx = _tokens(2, 7, seed=1)
    one_by_one = KVCache(SMALL, 2, dtype=torch.float64)
    reference = torch.cat(
        [forward_with_cache(model, idx[:, t : t + 1], one_by_one, start=t) for t in range(7)], 1
    )
    chunked, start, logits = KVCache(SMALL, 2, dtype=torch.float64), 0, []
    for size in chunks:
        logits.append(forward_with_cache(model, idx[:, start : start + size], chunked, start))
        start += size
    torch.testing.assert_close(torch.cat(logits, dim=1), reference, **TIGHT)
    for layer in range(SMALL.n_layer):  # the stored keys and values agree too
        torch.testing.assert_close(chunked.k[layer][:, :, :7], one_by_one.k[layer][:, :, :7])
        torch.testing.assert_close(chunked.v[layer][:, :, :7], one_by_one.v[layer][:, :, :7])


@pytest.mark.parametrize(
    ("temperature", "top_k", "seed"),
    [(0.0, None, 0), (1.0, None, 1), (1.0, None, 2), (0.7, 5, 3), (2.0, 3, 4)],
)
def test_same_tokens_as_generate_greedy_and_seeded(
    temperature: float, top_k: int | None, seed: int
) -> None:
    model = _model()
    prompt = _tokens(4, 3, seed=seed)
    n = SMALL.block_size - 3 + 1  # the longest run the cache allows: T0 + n - 1 = block_size
    plain = model.generate(prompt, n, temperature, top_k, torch.Generator().manual_seed(seed))
    cached = generate_with_cache(
        model, prompt, n, temperature, top_k, torch.Generator().manual_seed(seed)
    )
    assert cached.shape == (4, 3 + n)
    assert torch.equal(cached, plain)
    # and a different seed gives different tokens: the comparison above can fail
    if temperature > 0:
        other = generate_with_cache(
            model, prompt, n, temperature, top_k, torch.Generator().manual_seed(seed + 100)
        )
        assert not torch.equal(other, plain)


def test_same_tokens_in_float32() -> None:
    torch.manual_seed(0)
    model = GPT(SMALL).eval()  # float32: logits may differ in the last bits, tokens do not
    idx = _tokens(3, SMALL.block_size)
    cache = KVCache(SMALL, 3)
    forward_with_cache(model, idx[:, :2], cache, start=0)
    gaps = []
    for t in range(2, SMALL.block_size):
        step = forward_with_cache(model, idx[:, t : t + 1], cache, start=t)
        gaps.append((step - model(idx[:, : t + 1])[0][:, -1:]).abs().max().item())
    assert max(gaps) < 1e-5  # at most rounding of differently shaped products
    prompt = _tokens(3, 2)
    for seed in range(3):
        a = model.generate(prompt, 12, generator=torch.Generator().manual_seed(seed))
        b = generate_with_cache(model, prompt, 12, generator=torch.Generator().manual_seed(seed))
        assert torch.equal(a, b)


def test_zero_new_tokens_returns_the_prompt() -> None:
    prompt = _tokens(2, 5)
    assert torch.equal(generate_with_cache(_model(), prompt, 0), prompt)


def test_positions_run_through_the_blocks_with_and_without_cache() -> None:
    # sum_{i<n} (T0 + i) positions per layer without a cache, T0 + n - 1 with one
    model, T0, n, B = _model(), 3, 10, 2
    rows = []
    hook = model.blocks[0].attn.qkv.register_forward_hook(
        lambda _m, inputs, _out: rows.append(inputs[0].shape[1])
    )
    prompt = _tokens(B, T0)
    model.generate(prompt, n, temperature=0.0)
    without = sum(rows)
    rows.clear()
    generate_with_cache(model, prompt, n, temperature=0.0)
    hook.remove()
    assert without == n * T0 + n * (n - 1) // 2 == 75
    assert sum(rows) == T0 + n - 1 == 12
    assert rows == [T0] + [1] * (n - 1)  # one prefill pass, then one position per step


@pytest.mark.parametrize(
    ("config", "B", "max_len", "dtype"),
    [
        (SMALL, 2, 16, torch.float32),
        (SMALL, 3, 5, torch.float64),
        (TINY, 1, 8, torch.float16),
        (WIDE, 4, 20, torch.bfloat16),
    ],
)
def test_size_formula_matches_the_allocated_tensors(
    config: GPTConfig, B: int, max_len: int, dtype: torch.dtype
) -> None:
    cache = KVCache(config, B, max_len=max_len, dtype=dtype)
    L, nh, hs = config.n_layer, config.n_head, config.n_embd // config.n_head
    assert len(cache.k) == len(cache.v) == L
    assert all(t.shape == (B, nh, max_len, hs) and t.dtype == dtype for t in cache.k + cache.v)
    assert cache.numel() == kv_cache_numel(config, B, max_len) == 2 * L * B * nh * max_len * hs
    assert kv_cache_numel(config, B, max_len) == 2 * L * B * max_len * config.n_embd
    assert cache.nbytes() == kv_cache_bytes(config, B, max_len, dtype)
    assert cache.nbytes() == cache.numel() * torch.empty((), dtype=dtype).element_size()


def test_gpt2_small_cache_size() -> None:
    # GPT-2 small (nanoGPT model.py: n_layer=12, n_head=12, n_embd=768, block_size=1024)
    gpt2 = GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768)
    mib = 2**20
    assert kv_cache_bytes(gpt2, 1, 1, torch.float16) == 36_864  # 36 KiB per token
    assert kv_cache_bytes(gpt2, 1, 1024, torch.float32) == 72 * mib
    assert kv_cache_bytes(gpt2, 1, 1024, torch.float16) == 36 * mib
    # the page: B = 8 needs 576 MiB, more than the 475 MiB of float32 weights; B = 7 (504 MiB)
    # already does, B = 6 (432 MiB) does not
    weights = expected_num_params(gpt2) * 4
    assert round(weights / mib) == 475
    by_batch = {B: kv_cache_bytes(gpt2, B, 1024, torch.float32) for B in (6, 7, 8)}
    assert by_batch == {6: 432 * mib, 7: 504 * mib, 8: 576 * mib}
    assert by_batch[8] > by_batch[7] > weights > by_batch[6]


def test_learned_positions_make_every_key_change_when_the_window_slides() -> None:
    model = _model()
    idx = _tokens(1, 6)
    block = model.blocks[0]
    d = SMALL.n_embd

    def keys(tokens: torch.Tensor, first: int) -> torch.Tensor:
        pos = torch.arange(first, first + tokens.size(1))
        x = model.tok_emb(tokens) + model.pos_emb(pos)
        return block.attn.qkv(block.ln1(x)).split(d, dim=2)[1]  # (B, T, d)

    # tokens 1..5 at positions 1..5 (cached) vs at positions 0..4 (after a one-token slide)
    moved = (keys(idx[:, 1:], 1) - keys(idx[:, 1:], 0)).abs().amax(dim=-1)  # (B, T)
    assert (moved > 1e-3).all()


def test_is_causal_sdpa_is_wrong_for_a_decode_step() -> None:
    # PyTorch's is_causal mask is tril of an (L, S) matrix: aligned top-left, so a single new
    # query sees key 0 only. The explicit mask rows start .. S-1 are what a decode step needs.
    gen = torch.Generator().manual_seed(0)
    q = torch.randn(1, 1, 1, 4, generator=gen, dtype=torch.float64)  # (B, nh, 1, hs)
    k = torch.randn(1, 1, 5, 4, generator=gen, dtype=torch.float64)  # (B, nh, S, hs)
    v = torch.randn(1, 1, 5, 4, generator=gen, dtype=torch.float64)
    wrong = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    right = F.scaled_dot_product_attention(q, k, v)  # the last position may see everything
    torch.testing.assert_close(wrong, v[:, :, :1], **TIGHT)
    assert not torch.allclose(wrong, right)


@pytest.mark.parametrize(("n_layer", "harmless"), [(1, True), (2, False)])
def test_a_missing_prefill_mask_shows_from_the_second_layer(n_layer: int, harmless: bool) -> None:
    config = dataclasses.replace(SMALL, n_layer=n_layer)
    good = _model(config)
    broken = _model(config)
    for block in broken.blocks:
        block.attn.causal_mask.fill_(True)  # "forgot the mask": every position sees every key
    idx = _tokens(2, 8)
    reference = torch.cat([good(idx[:, : t + 1])[0][:, -1:] for t in range(4, 8)], dim=1)
    cache = KVCache(config, 2, dtype=torch.float64)
    logits = [forward_with_cache(broken, idx[:, :5], cache, start=0)[:, -1:]]
    logits += [forward_with_cache(broken, idx[:, t : t + 1], cache, start=t) for t in range(5, 8)]
    # the last prompt position sees all keys anyway; the earlier ones saw the future, which
    # corrupts their hidden states and so the keys and values of every later layer
    assert torch.allclose(torch.cat(logits, dim=1), reference, **TIGHT) == harmless


def test_positions_restarting_at_zero_break_the_equality() -> None:
    class RestartingPositions(nn.Module):  # the bug: arange(T) instead of arange(start, start+T)
        def __init__(self, table: nn.Embedding) -> None:
            super().__init__()
            self.table = table

        def forward(self, pos: torch.Tensor) -> torch.Tensor:
            return self.table(torch.arange(pos.numel()))

    model = _model()
    idx = _tokens(1, 6)
    full = model(idx)[0][:, -1:]
    model.pos_emb = RestartingPositions(model.pos_emb)
    cache = KVCache(SMALL, 1, dtype=torch.float64)
    forward_with_cache(model, idx[:, :5], cache, start=0)  # prefill: arange(0, 5) either way
    step = forward_with_cache(model, idx[:, 5:], cache, start=5)
    assert not torch.allclose(step, full)


def test_assigning_into_a_buffer_of_another_dtype_casts_silently() -> None:
    buffer = torch.zeros(3, dtype=torch.float16)
    value = torch.tensor([1.0001, 2.0, 3.0], dtype=torch.float64)
    buffer[:] = value  # no error: this is why forward_with_cache checks the dtype itself
    assert buffer.dtype == torch.float16 and buffer[0].item() == 1.0


def test_errors_name_the_argument() -> None:
    model = _model()
    cache = KVCache(SMALL, 2, dtype=torch.float64)
    ok = _tokens(2, 3)
    with pytest.raises(ValueError, match="idx"):
        forward_with_cache(model, torch.zeros(3, dtype=torch.long), cache, 0)  # (T,) not (B, T)
    with pytest.raises(ValueError, match="idx"):
        forward_with_cache(model, torch.zeros(2, 3), cache, 0)  # float ids
    with pytest.raises(ValueError, match="idx"):
        forward_with_cache(model, torch.zeros(2, 0, dtype=torch.long), cache, 0)
    with pytest.raises(ValueError, match="batch_size"):
        forward_with_cache(model, _tokens(3, 3), cache, 0)
    with pytest.raises(ValueError, match="start"):
        forward_with_cache(model, ok, cache, 1)  # the cache is empty: start must be 0
    with pytest.raises(ValueError, match="dtype"):
        forward_with_cache(model, ok, KVCache(SMALL, 2, dtype=torch.float32), 0)
    with pytest.raises(ValueError, match="n_layer"):
        other = dataclasses.replace(SMALL, n_layer=2)
        forward_with_cache(model, ok, KVCache(other, 2, dtype=torch.float64), 0)
    with pytest.raises(ValueError, match="dtype"):
        KVCache(SMALL, 2, dtype=torch.long)
    with pytest.raises(ValueError, match="batch_size"):
        KVCache(SMALL, 0)
    with pytest.raises(ValueError, match="dtype"):
        kv_cache_bytes(SMALL, 1, 4, torch.int32)
    with pytest.raises(ValueError, match="seq_len"):
        kv_cache_numel(SMALL, 1, -1)


def test_errors_past_block_size() -> None:
    model = _model()
    with pytest.raises(ValueError, match="max_len"):
        KVCache(SMALL, 1, max_len=SMALL.block_size + 1)
    cache = KVCache(SMALL, 1, max_len=6, dtype=torch.float64)
    forward_with_cache(model, _tokens(1, 6), cache, 0)  # fills it exactly
    with pytest.raises(ValueError, match="max_len"):
        forward_with_cache(model, _tokens(1, 1), cache, 6)
    prompt = _tokens(1, 4)
    generate_with_cache(model, prompt, SMALL.block_size - 3)  # T0 + n - 1 = block_size: fine
    with pytest.raises(ValueError, match="block_size"):
        generate_with_cache(model, prompt, SMALL.block_size - 2)


def test_generate_rejects_bad_arguments_like_generate() -> None:
    model = _model()
    prompt = _tokens(1, 2)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate_with_cache(model, prompt, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate_with_cache(model, prompt, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="top_k"):
        generate_with_cache(model, prompt, 3, top_k=0)
    with pytest.raises(ValueError, match="idx"):
        generate_with_cache(model, torch.zeros(1, 0, dtype=torch.long), 3)


def test_dropout_in_train_mode_is_refused() -> None:
    model = GPT(dataclasses.replace(SMALL, dropout=0.1)).double()  # train() mode by default
    with pytest.raises(ValueError, match="eval"):
        generate_with_cache(model, _tokens(1, 2), 3)
    model.eval()
    assert generate_with_cache(model, _tokens(1, 2), 3).shape == (1, 5)


def test_demo_prints_same_tokens_and_the_counts(capsys: pytest.CaptureFixture[str]) -> None:
    from snippets.pytorch.kv_cache import kv_cache_demo

    result = kv_cache_demo()
    out = capsys.readouterr().out
    assert result["same_tokens"] == 1.0 and "same tokens with and without the cache: True" in out
    # T0 = 4, n = 12: Σ_{i<12} (4 + i) = 48 + 66 = 114 against 4 + 12 - 1 = 15
    assert "114 without, 15 with the cache" in out
    # 2 (K, V) · 2 layers · 3 rows · 15 positions · 32 numbers · 4 bytes
    assert f"3 sequences of 15 positions in float32: {2 * 2 * 3 * 15 * 32 * 4:,} bytes" in out


def test_attention_with_cache_rejects_bad_arguments() -> None:
    model = _model()
    attn = model.blocks[0].attn
    x = torch.randn(2, 3, SMALL.n_embd, dtype=torch.float64)  # (B, T, d)
    cache = KVCache(SMALL, 2, max_len=8, dtype=torch.float64)
    cases = [
        ({"start": 5}, r"start must equal cache.length=0"),  # empty cache: 5 zero slots
        ({"layer": -1}, r"layer must be an int >= 0"),
        ({"layer": SMALL.n_layer}, r"layer must be in \[0, 3\)"),
        ({"layer": 1.0}, r"layer must be an int"),
        ({"x": x[..., :-1]}, r"x must have shape \(B, T, d\) with B = cache batch_size = 2"),
        ({"x": x[:1]}, r"x must have shape \(B, T, d\)"),
        ({"x": x[0]}, r"x must have shape \(B, T, d\), got shape \(3, 32\)"),
        ({"x": x[:, :0]}, r"x must hold at least one new position"),
        ({"x": x.float()}, r"x must have the cache dtype torch.float64"),
        ({"x": torch.zeros(2, 3, SMALL.n_embd, dtype=torch.long)}, r"x must be a floating"),
        (
            {"x": torch.randn(2, 9, SMALL.n_embd, dtype=torch.float64)},
            r"start \+ T = 9 > cache max_len=8",
        ),
        ({"start": True}, r"start must be an int"),
    ]
    for kwargs, message in cases:
        args = {"attn": attn, "x": x, "cache": cache, "layer": 0, "start": 0, **kwargs}
        with pytest.raises(ValueError, match=message):
            attention_with_cache(**args)
    assert cache.length == 0 and all(t.abs().sum() == 0 for t in cache.k + cache.v)  # untouched
    with pytest.raises(ValueError, match=r"cache was built for \(n_head, head_size\)"):
        other = dataclasses.replace(SMALL, n_head=2)
        attention_with_cache(attn, x, KVCache(other, 2, dtype=torch.float64), 0, 0)
    with pytest.raises(ValueError, match=r"attn weights are torch.float32"):
        attention_with_cache(GPT(SMALL).blocks[0].attn, x, cache, 0, 0)


def test_every_layer_of_a_step_gets_the_same_start(monkeypatch: pytest.MonkeyPatch) -> None:
    """forward_with_cache advances cache.length after the last layer only, so the check
    start == cache.length holds at every layer; a second call at the old start fails."""
    model, cache = _model(), KVCache(SMALL, 2, dtype=torch.float64)
    seen = []

    def spy(
        attn: nn.Module, x: torch.Tensor, cache_: KVCache, layer: int, start: int
    ) -> torch.Tensor:
        seen.append((layer, start, cache_.length))
        return attention_with_cache(attn, x, cache_, layer, start)

    monkeypatch.setattr(kv_cache, "attention_with_cache", spy)
    forward_with_cache(model, _tokens(2, 3), cache, start=0)
    forward_with_cache(model, _tokens(2, 1), cache, start=3)
    assert seen == [(layer, 0, 0) for layer in range(3)] + [(layer, 3, 3) for layer in range(3)]
    assert cache.length == 4
    x = torch.zeros(2, 1, SMALL.n_embd, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"start must equal cache.length=4"):
        attention_with_cache(model.blocks[0].attn, x, cache, 0, 3)  # would overwrite position 3


def test_update_rejects_bad_arguments() -> None:
    cache = KVCache(SMALL, 2, max_len=8, dtype=torch.float64)
    k = torch.randn(2, SMALL.n_head, 3, SMALL.n_embd // SMALL.n_head, dtype=torch.float64)
    cases = [
        ({"start": 5}, r"start must equal cache.length=0"),
        ({"layer": -1}, r"layer must be an int >= 0"),
        ({"layer": 3}, r"layer must be in \[0, 3\)"),
        ({"k_new": k[:, :, :, :-1]}, r"k_new must have shape \(B, nh, T, hs\) = \(2, 4, 3, 8\)"),
        ({"k_new": k[:1]}, r"k_new must have shape \(B, nh, T, hs\) = \(2, 4, 3, 8\)"),
        ({"k_new": k[0]}, r"k_new must have shape \(B, nh, T, hs\), got shape \(4, 3, 8\)"),
        ({"k_new": k[:, :, :0], "v_new": k[:, :, :0]}, r"k_new must hold at least one"),
        ({"v_new": k[:, :, :2]}, r"v_new must have the same shape as k_new"),
        ({"k_new": k.float(), "v_new": k.float()}, r"k_new must have the cache dtype"),
        ({"v_new": k.half()}, r"v_new must have the cache dtype"),
        ({"k_new": torch.randn(2, 4, 9, 8, dtype=torch.float64)}, r"v_new must have the same"),
    ]
    for kwargs, message in cases:
        args = {"layer": 0, "start": 0, "k_new": k, "v_new": k, **kwargs}
        with pytest.raises(ValueError, match=message):
            cache.update(**args)
    big = torch.randn(2, 4, 9, 8, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"start \+ T = 9 > cache max_len=8"):
        cache.update(0, 0, big, big)
    assert cache.length == 0 and all(t.abs().sum() == 0 for t in cache.k + cache.v)  # untouched


def test_the_module_applies_dropout_the_cached_attention_leaves_out() -> None:
    torch.manual_seed(0)
    model = GPT(dataclasses.replace(SMALL, dropout=0.5)).double()  # train() mode
    attn = model.blocks[0].attn
    x = torch.randn(2, 5, SMALL.n_embd, dtype=torch.float64)
    cached = attention_with_cache(attn, x, KVCache(SMALL, 2, dtype=torch.float64), 0, 0)
    assert not torch.allclose(attn(x), cached)  # train(): the module drops weights and outputs
    attn.eval()
    torch.testing.assert_close(attn(x), cached, **TIGHT)  # eval(): the same function
