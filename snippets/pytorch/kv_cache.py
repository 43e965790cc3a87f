"""A KV cache for the minimal GPT: decode one new position per step instead of the whole prefix.

In a causal model the key and value of position ``j`` depend on tokens ``<= j`` only, so once
computed they never change. ``KVCache`` keeps them for every layer; ``forward_with_cache`` runs
only the new tokens through the model's own modules (read from ``snippets/pytorch/gpt.py``, not
copied), attends over cached + new keys, and stores the new keys and values;
``generate_with_cache`` samples exactly the tokens of ``GPT.generate`` for the same generator.

| Name         | Shape              | Meaning                                                   |
|--------------|--------------------|-----------------------------------------------------------|
| idx          | (B, T) long        | new tokens, at positions ``start .. start + T - 1``       |
| cache.k[l]   | (B, nh, T_max, hs) | keys of layer l; positions ``< cache.length`` are valid   |
| cache.v[l]   | (B, nh, T_max, hs) | values of layer l                                         |
| q            | (B, nh, T, hs)     | queries of the new positions only (never cached)          |
| keys, values | (B, nh, S, hs)     | cached + new keys and values, ``S = start + T``           |
| att          | (B, nh, T, S)      | weights of each new position over positions ``0 .. S-1``  |
| logits       | (B, T, V)          | next-token scores at the new positions                    |
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from snippets._checks import (
    check_float,
    check_int,
    check_ndim,
    check_same_shape,
    check_shape,
)
from snippets.pytorch.gpt import (
    GPT,
    CausalSelfAttention,
    GPTConfig,
    check_sampling,
    sample_next_token,
)

__all__ = [
    "KVCache",
    "attention_with_cache",
    "forward_with_cache",
    "generate_with_cache",
    "kv_cache_bytes",
    "kv_cache_demo",
    "kv_cache_numel",
]


def _check_float_dtype(name: str, dtype: torch.dtype) -> None:
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"{name} must be a floating-point torch.dtype, got {dtype!r}")


def _check_slot(cache: KVCache, layer: int, start: int, T: int) -> None:
    """``layer`` exists, ``start`` is the next free position, and ``T`` new positions fit.

    ``cache.length`` advances only after the last layer has written its keys (in
    ``forward_with_cache``), so every layer of one step sees ``start == cache.length``.
    """
    check_int("layer", layer, low=0)
    if layer >= cache.n_layer:
        raise ValueError(f"layer must be in [0, {cache.n_layer}) (n_layer), got {layer}")
    check_int("start", start, low=0)
    if start != cache.length:
        raise ValueError(
            f"start must equal cache.length={cache.length} (the next free position; the "
            f"length advances after the last layer), got {start}"
        )
    if start + T > cache.max_len:
        raise ValueError(f"start + T = {start + T} > cache max_len={cache.max_len}")


def _check_update(
    cache: KVCache, layer: int, start: int, k_new: torch.Tensor, v_new: torch.Tensor
) -> None:
    layout = "(B, nh, T, hs)"
    check_float("k_new", k_new)
    check_ndim("k_new", k_new, 4, layout)
    T = k_new.size(2)
    if T == 0:
        raise ValueError("k_new must hold at least one new position, got T=0")
    check_shape("k_new", k_new, (cache.batch_size, cache.n_head, T, cache.head_size), layout)
    check_same_shape("v_new", v_new, "k_new", k_new)
    for name, t in (("k_new", k_new), ("v_new", v_new)):
        if t.dtype != cache.dtype:  # an in-place write would cast silently
            raise ValueError(f"{name} must have the cache dtype {cache.dtype}, got {t.dtype}")
    _check_slot(cache, layer, start, T)


def _check_attention(
    attn: CausalSelfAttention, x: torch.Tensor, cache: KVCache, layer: int, start: int
) -> None:
    d = attn.n_head * attn.head_size
    check_float("x", x)
    check_ndim("x", x, 3, "(B, T, d)")
    B, T, d_x = x.shape
    if T == 0:
        raise ValueError("x must hold at least one new position, got T=0")
    if B != cache.batch_size or d_x != d:
        raise ValueError(
            f"x must have shape (B, T, d) with B = cache batch_size = {cache.batch_size} "
            f"and d = n_embd = {d}, got shape {tuple(x.shape)}"
        )
    if (cache.n_head, cache.head_size) != (attn.n_head, attn.head_size):
        raise ValueError(
            f"cache was built for (n_head, head_size) = {(cache.n_head, cache.head_size)}, "
            f"attn has {(attn.n_head, attn.head_size)}"
        )
    if x.dtype != cache.dtype:
        raise ValueError(f"x must have the cache dtype {cache.dtype}, got {x.dtype}")
    if attn.qkv.weight.dtype != cache.dtype:
        raise ValueError(f"attn weights are {attn.qkv.weight.dtype}, the cache is {cache.dtype}")
    _check_slot(cache, layer, start, T)


# --8<-- [start:size]
def kv_cache_numel(config: GPTConfig, batch_size: int, seq_len: int) -> int:
    """Scalars a KV cache holds for ``batch_size`` sequences of ``seq_len`` positions.

    elements = 2 · L · B · nh · T · hs = 2 · L · B · T · d, since nh · hs = d.
    """
    check_int("batch_size", batch_size, low=1)
    check_int("seq_len", seq_len, low=0)
    head_size = config.n_embd // config.n_head
    # 2 (K and V) × L layers × B rows × nh heads × T positions × hs numbers per head
    return 2 * config.n_layer * batch_size * config.n_head * seq_len * head_size


def kv_cache_bytes(config: GPTConfig, batch_size: int, seq_len: int, dtype: torch.dtype) -> int:
    """Bytes of that cache: elements × bytes per element (4 for float32, 2 for bfloat16)."""
    _check_float_dtype("dtype", dtype)
    return kv_cache_numel(config, batch_size, seq_len) * dtype.itemsize


# --8<-- [end:size]


# --8<-- [start:cache]
class KVCache:
    """Keys and values of every layer, preallocated to ``max_len`` positions.

    | Attribute  | Shape              | Meaning                                          |
    |------------|--------------------|--------------------------------------------------|
    | k[l], v[l] | (B, nh, T_max, hs) | keys and values of layer l, ``T_max = max_len``  |
    | length     | int                | positions ``0 .. length - 1`` hold valid entries |

    Preallocated rather than grown with ``torch.cat``: one allocation up front, each step
    writes its T new columns in place (``cat`` copies the whole cache at every step), and the
    memory is known before decoding starts. The price is ``T_max - length`` reserved slots.
    ``max_len`` defaults to ``block_size`` and may not exceed it: the position table has
    ``block_size`` rows.
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        max_len: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        max_len = config.block_size if max_len is None else max_len
        check_int("batch_size", batch_size, low=1)
        check_int("max_len", max_len, low=1)
        if max_len > config.block_size:
            raise ValueError(
                f"max_len={max_len} > block_size={config.block_size}: the position table has "
                f"only block_size rows"
            )
        _check_float_dtype("dtype", dtype)
        self.n_layer, self.n_head = config.n_layer, config.n_head
        self.head_size = config.n_embd // config.n_head
        self.batch_size, self.max_len, self.dtype = batch_size, max_len, dtype
        shape = (batch_size, config.n_head, max_len, self.head_size)  # (B, nh, T_max, hs)
        self.k = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(self.n_layer)]
        self.v = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(self.n_layer)]
        self.length = 0

    def update(
        self, layer: int, start: int, k_new: torch.Tensor, v_new: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Write the new keys and values at ``start`` (= ``length``); return all ``start + T``.

        Does not advance ``length``: the caller does, after the last layer has written.
        """
        _check_update(self, layer, start, k_new, v_new)  # shapes, dtype, 0 <= layer < L, slot
        end = start + k_new.size(2)
        self.k[layer][:, :, start:end] = k_new  # (B, nh, T, hs) into (B, nh, T_max, hs)
        self.v[layer][:, :, start:end] = v_new  # (B, nh, T, hs) into (B, nh, T_max, hs)
        return self.k[layer][:, :, :end], self.v[layer][:, :, :end]  # 2 x (B, nh, S, hs), views

    def numel(self) -> int:
        """Scalars actually allocated (every layer's k and v)."""
        return sum(t.numel() for t in (*self.k, *self.v))

    def nbytes(self) -> int:
        """Bytes actually allocated."""
        return sum(t.nbytes for t in (*self.k, *self.v))


# --8<-- [end:cache]


# --8<-- [start:attention]
def attention_with_cache(
    attn: CausalSelfAttention, x: torch.Tensor, cache: KVCache, layer: int, start: int
) -> torch.Tensor:
    """``attn``'s forward for the new positions only, reading and extending layer ``layer``.

    | Argument    | Shape     | Meaning                                                    |
    |-------------|-----------|------------------------------------------------------------|
    | x           | (B, T, d) | LN₁ of the residual stream at positions start .. start+T-1 |
    | layer       | int       | 0 <= layer < n_layer: which of the cache's layers          |
    | start       | int       | = ``cache.length``, the same for every layer of one step   |
    | **returns** | (B, T, d) | rows start .. start+T-1 of ``attn`` run on all S positions |

    The caller advances ``cache.length`` after the last layer (``forward_with_cache`` does).
    No dropout (the module drops attention weights and outputs in ``train()`` mode), so this
    equals ``attn`` in ``eval()`` mode only.
    """
    _check_attention(attn, x, cache, layer, start)  # ValueError naming the bad argument
    B, T, d = x.shape  # x: (B, T, d), the new positions only
    end = start + T  # S: positions visible to the last new one
    q, k, v = attn.qkv(x).split(d, dim=2)  # 3 x (B, T, d)
    q = q.view(B, T, attn.n_head, attn.head_size).transpose(1, 2)  # (B, nh, T, hs)
    k = k.view(B, T, attn.n_head, attn.head_size).transpose(1, 2)  # (B, nh, T, hs)
    v = v.view(B, T, attn.n_head, attn.head_size).transpose(1, 2)  # (B, nh, T, hs)
    # K = [K_past; k_new], V = [V_past; v_new]: the past is read back, never recomputed
    keys, values = cache.update(layer, start, k, v)  # 2 x (B, nh, S, hs)
    # rows start .. S-1 of M: new position start + i sees keys j <= start + i
    mask = attn.causal_mask[:, :, start:end, :end]  # (1, 1, T, S)
    if attn.use_sdpa:
        # an explicit mask: is_causal=True would align it top-left (row i sees j <= i)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # (B, nh, T, hs)
    else:
        # softmax(q Kᵀ/√d_k + M) V over the S cached + new keys
        scores = q @ keys.transpose(-2, -1) / math.sqrt(attn.head_size)  # (B, nh, T, S)
        scores = scores.masked_fill(~mask, float("-inf"))  # (B, nh, T, S)
        att = F.softmax(scores, dim=-1)  # (B, nh, T, S)
        y = att @ values  # (B, nh, T, hs)
    y = y.transpose(1, 2).contiguous().view(B, T, d)  # (B, T, d): heads side by side
    return attn.proj(y)  # (B, T, d)


# --8<-- [end:attention]


def _check_step(model: GPT, idx: torch.Tensor, cache: KVCache, start: int) -> None:
    model.check_tokens("idx", idx, low=0)
    B, T = idx.shape
    if T == 0:
        raise ValueError("idx must hold at least one new token per row, got T=0")
    config = model.config
    if (cache.n_layer, cache.n_head, cache.head_size) != (
        config.n_layer,
        config.n_head,
        config.n_embd // config.n_head,
    ):
        raise ValueError(
            f"cache was built for (n_layer, n_head, head_size) = "
            f"{(cache.n_layer, cache.n_head, cache.head_size)}, the model has "
            f"{(config.n_layer, config.n_head, config.n_embd // config.n_head)}"
        )
    if B != cache.batch_size:
        raise ValueError(f"idx has B={B} rows, the cache holds batch_size={cache.batch_size}")
    dtype = model.tok_emb.weight.dtype
    if cache.dtype != dtype:
        # an in-place write into a buffer of another dtype would cast silently
        raise ValueError(f"cache dtype {cache.dtype} differs from the model's dtype {dtype}")
    if not isinstance(start, int) or isinstance(start, bool) or start != cache.length:
        raise ValueError(
            f"start must be the position of idx[:, 0], i.e. cache.length={cache.length}, "
            f"got {start!r}"
        )
    if start + T > cache.max_len:
        raise ValueError(
            f"start + T = {start + T} > cache max_len={cache.max_len} "
            f"(block_size={config.block_size})"
        )
    if model.training and config.dropout > 0:
        raise ValueError("call model.eval() first: dropout would make every step random")


# --8<-- [start:forward]
@torch.no_grad()
def forward_with_cache(model: GPT, idx: torch.Tensor, cache: KVCache, start: int) -> torch.Tensor:
    """Logits of the new tokens at positions ``start .. start + T - 1``; extends ``cache``.

    | Argument    | Shape       | Meaning                                                |
    |-------------|-------------|--------------------------------------------------------|
    | idx         | (B, T) long | new tokens: the prompt (prefill), then 1 per step      |
    | start       | int         | absolute position of ``idx[:, 0]``, = ``cache.length`` |
    | **returns** | (B, T, V)   | equal to ``model(all tokens)[0][:, start:start + T]``  |
    """
    _check_step(model, idx, cache, start)
    T = idx.size(1)
    pos = torch.arange(start, start + T, device=idx.device)  # (T,): absolute, not 0 .. T-1
    x = model.tok_emb(idx) + model.pos_emb(pos)  # (B, T, d) + (T, d) -> (B, T, d)
    for layer, block in enumerate(model.blocks):
        # Block.forward, with the cached attention: x ← x + Attn(LN₁(x)); x ← x + MLP(LN₂(x))
        x = x + attention_with_cache(block.attn, block.ln1(x), cache, layer, start)  # (B, T, d)
        x = x + block.mlp(block.ln2(x))  # (B, T, d)
    cache.length = start + T
    return model.lm_head(model.ln_f(x))  # (B, T, V)


# --8<-- [end:forward]


# --8<-- [start:generate]
@torch.no_grad()
def generate_with_cache(
    model: GPT,
    idx: torch.Tensor,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``GPT.generate`` with a KV cache: same tokens for the same generator, far less work.

    | Argument       | Shape        | Meaning                                            |
    |----------------|--------------|----------------------------------------------------|
    | idx            | (B, T0) long | prompts, T0 >= 1                                   |
    | max_new_tokens | int          | n; needs T0 + n - 1 <= block_size                  |
    | **returns**    | (B, T0 + n)  | the prompts followed by the sampled tokens         |

    Raises instead of sliding the window past ``block_size``: sliding moves every token to a
    new position, which changes every cached key and value (positions are added at the input).
    """
    model.check_tokens("idx", idx, low=0)
    B, T0 = idx.shape
    if T0 == 0:
        raise ValueError("idx must hold at least one token per row (a prompt), got T=0")
    check_int("max_new_tokens", max_new_tokens, low=0)
    check_sampling(temperature, top_k, model.config.vocab_size)
    if max_new_tokens == 0:
        return idx
    needed = T0 + max_new_tokens - 1  # the last sampled token is never fed back
    if needed > model.config.block_size:
        raise ValueError(
            f"T0 + max_new_tokens - 1 = {needed} > block_size={model.config.block_size}: "
            f"the cache cannot slide (use GPT.generate, which recomputes the window)"
        )
    dtype = model.tok_emb.weight.dtype
    cache = KVCache(model.config, B, max_len=needed, dtype=dtype, device=idx.device)
    logits = forward_with_cache(model, idx, cache, start=0)  # (B, T0, V): prefill, one pass
    for step in range(max_new_tokens):
        next_id = sample_next_token(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
        idx = torch.cat([idx, next_id], dim=1)  # (B, T0 + step + 1)
        if step < max_new_tokens - 1:
            logits = forward_with_cache(model, next_id, cache, start=cache.length)  # (B, 1, V)
    return idx


# --8<-- [end:generate]


def kv_cache_demo() -> dict[str, float]:
    """Decode with and without the cache: same tokens, fewer positions run, known memory."""
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=11, block_size=32, n_layer=2, n_head=4, n_embd=32)
    model = GPT(config).eval()
    prompt = torch.randint(0, 11, (3, 4), generator=torch.Generator().manual_seed(1))  # (B, T0)
    n = 12
    plain = model.generate(prompt, n, temperature=1.0, generator=torch.Generator().manual_seed(2))
    cached = generate_with_cache(
        model, prompt, n, temperature=1.0, generator=torch.Generator().manual_seed(2)
    )  # (B, T0 + n)
    same = bool(torch.equal(plain, cached))
    T0 = prompt.shape[1]
    # positions through each block: Σ_{i<n} (T0 + i) without the cache, T0 + n − 1 with it
    without = n * T0 + n * (n - 1) // 2
    with_cache = T0 + n - 1
    # the cache generate_with_cache fills: T0 + n − 1 positions (the last token is not fed back)
    size = kv_cache_bytes(config, batch_size=3, seq_len=with_cache, dtype=torch.float32)
    print(f"same tokens with and without the cache: {same}")
    print(f"positions run per block: {without} without, {with_cache} with the cache")
    print(f"cache for 3 sequences of {with_cache} positions in float32: {size:,} bytes")
    return {"same_tokens": float(same), "positions_without": without, "positions_with": with_cache}
