"""A minimal GPT: a decoder-only Transformer in one readable module.

Token and position embeddings, ``n_layer`` pre-LayerNorm blocks (causal self-attention, then a
4x GELU MLP, each on a residual branch), a final LayerNorm and an LM head whose weight *is* the
token-embedding table (weight tying).

| Name    | Shape          | Meaning                                                |
|---------|----------------|--------------------------------------------------------|
| idx     | (B, T) long    | token ids, ``T <= block_size``                         |
| targets | (B, T) long    | next-token ids; ``-1`` marks a position not scored     |
| x       | (B, T, d)      | residual stream, ``d = n_embd``                        |
| q, k, v | (B, nh, T, hs) | per-head queries, keys, values, ``hs = d / nh``        |
| att     | (B, nh, T, T)  | attention weights; row ``i`` sums to 1 over ``j <= i`` |
| logits  | (B, T, V)      | unnormalised next-token scores, ``V = vocab_size``     |
| loss    | ()             | mean cross-entropy over the scored positions           |
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from snippets._checks import check_float, check_int, check_ndim, check_same_shape

__all__ = [
    "GPT",
    "MIN_TEMPERATURE",
    "MLP",
    "Block",
    "CausalSelfAttention",
    "GPTConfig",
    "expected_num_params",
    "sample_next_token",
]

MIN_TEMPERATURE = 1e-5
"""Temperatures below this decode greedily: softmax(z / τ) tends to the argmax as τ → 0, and
z / τ would overflow to ±inf (NaN probabilities) if τ were allowed to reach 0."""


# --8<-- [start:config]
@dataclass
class GPTConfig:
    """Shape of the model; every field is checked when the config is made."""

    vocab_size: int
    """V: number of distinct tokens; the LM head scores V tokens per position."""
    block_size: int
    """Longest context the model can see (rows of the position table, side of the mask)."""
    n_layer: int
    """L: number of Transformer blocks."""
    n_head: int
    """nh: attention heads per block; each head has size hs = n_embd / n_head."""
    n_embd: int
    """d: width of the residual stream (must be divisible by n_head)."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches (0.0 = off)."""
    bias: bool = True
    """Give every Linear and LayerNorm a bias (the LM head never has one)."""
    use_sdpa: bool = False
    """Use the fused ``F.scaled_dot_product_attention`` instead of the explicit attention."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            check_int(name, getattr(self, name))
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")


# --8<-- [end:config]


# --8<-- [start:attention]
class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which position ``i`` attends to positions ``j <= i``.

    Input and output ``x``: ``(B, T, d)``. Set ``use_sdpa`` to switch to the fused kernel;
    both paths share the same weights and give the same result.
    """

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.head_size = config.n_embd // config.n_head
        self.dropout = config.dropout
        self.use_sdpa = config.use_sdpa
        # one Linear makes q, k and v of every head at once: d -> 3d
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        # M[i, j] = True where j <= i; a buffer: moves with .to(), is not trained, not saved
        n = config.block_size
        mask = torch.tril(torch.ones(n, n, dtype=torch.bool)).view(1, 1, n, n)  # (1, 1, n, n)
        self.register_buffer("causal_mask", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, d = x.shape  # x: (B, T, d)
        q, k, v = self.qkv(x).split(d, dim=2)  # 3 x (B, T, d)
        q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
        if self.use_sdpa:
            # softmax(QKᵀ/√d_k + M) V in one fused call (PyTorch picks the kernel)
            p = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(
                q, k, v, dropout_p=p, is_causal=True
            )  # (B, nh, T, hs)
        else:
            # softmax(QKᵀ/√d_k + M) V, one step a line
            # S = QKᵀ/√d_k, d_k = hs: keeps the scores' variance near 1 at any head size
            scores = q @ k.transpose(-2, -1) / math.sqrt(self.head_size)  # (B, nh, T, T)
            # S + M with M[i, j] = −∞ for j > i: the future gets weight exp(−∞) = 0
            mask = self.causal_mask[:, :, :T, :T]  # (1, 1, T, T)
            scores = scores.masked_fill(~mask, float("-inf"))  # (B, nh, T, T)
            # A = softmax(S + M), row-wise over the keys
            att = F.softmax(scores, dim=-1)  # (B, nh, T, T)
            att = self.attn_dropout(att)  # (B, nh, T, T)
            # Y = A V
            y = att @ v  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, d)  # (B, T, d): heads side by side
        return self.resid_dropout(self.proj(y))  # (B, T, d)


# --8<-- [end:attention]


# --8<-- [start:block]
class MLP(nn.Module):
    """Position-wise feed-forward net: d -> 4d -> GELU -> d. ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.gelu(self.fc(x))  # (B, T, 4d)
        return self.dropout(self.proj(h))  # (B, T, d)


class Block(nn.Module):
    """Pre-LayerNorm Transformer block. ``(B, T, d) -> (B, T, d)``."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x ← x + Attn(LN(x)); x ← x + MLP(LN(x))
        x = x + self.attn(self.ln1(x))  # (B, T, d)
        return x + self.mlp(self.ln2(x))  # (B, T, d)


# --8<-- [end:block]


# --8<-- [start:gpt]
class GPT(nn.Module):
    """Decoder-only Transformer language model (see the module docstring for shapes)."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # weight tying: the head's (V, d) matrix IS the embedding table (one Parameter, two uses)
        self.lm_head.weight = self.tok_emb.weight
        self.apply(self._init_weights)
        # GPT-2: residual projections get std 0.02/√(2L) so the stream's variance stays ~flat
        for name, param in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def num_params(self) -> int:
        """Number of trainable scalars; ``parameters()`` yields the tied matrix once."""
        return sum(p.numel() for p in self.parameters())

    def check_tokens(self, name: str, x: torch.Tensor, low: int) -> None:
        """Raise ValueError unless ``x`` is a (B, T) torch.long tensor of ids in [low, V)."""
        check_ndim(name, x, 2, "(B, T)")
        if x.dtype != torch.long:
            raise ValueError(f"{name} must be a torch.long tensor, got dtype {x.dtype}")
        V = self.config.vocab_size
        if x.numel() and (int(x.min()) < low or int(x.max()) >= V):
            raise ValueError(f"{name} values must be in [{low}, {V}), got [{x.min()}, {x.max()}]")

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Score every position; with ``targets``, also the mean next-token cross-entropy.

        | Argument    | Shape          | Meaning                                          |
        |-------------|----------------|--------------------------------------------------|
        | idx         | (B, T) long    | token ids in [0, V), T <= block_size             |
        | targets     | (B, T) long    | optional: id of the next token, −1 = not scored  |
        | **returns** | (B, T, V), ()  | logits, and the loss (None without targets)      |
        """
        self.check_tokens("idx", idx, low=0)
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"idx has length T={T} > block_size={self.config.block_size}")
        pos = torch.arange(T, device=idx.device)  # (T,)
        x = self.tok_emb(idx) + self.pos_emb(pos)  # (B, T, d) + (T, d) -> (B, T, d)
        x = self.drop(x)  # (B, T, d)
        for block in self.blocks:
            x = block(x)  # (B, T, d)
        x = self.ln_f(x)  # (B, T, d)
        logits = self.lm_head(x)  # (B, T, V)
        if targets is None:
            return logits, None
        check_same_shape("targets", targets, "idx", idx)
        self.check_tokens("targets", targets, low=-1)
        # L = −(1/N) Σ_{t: target_t ≠ −1} log softmax(logits_t)[target_t]
        loss = F.cross_entropy(
            logits.reshape(B * T, -1),  # (B·T, V)
            targets.reshape(B * T),  # (B·T,)
            ignore_index=-1,
        )  # ()
        return logits, loss

    # --8<-- [end:gpt]

    # --8<-- [start:generate]
    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Append ``max_new_tokens`` tokens, each sampled from the model's next-token law.

        | Argument       | Shape        | Meaning                                        |
        |----------------|--------------|------------------------------------------------|
        | idx            | (B, T0) long | prompts, T0 >= 1 (may exceed block_size)       |
        | max_new_tokens | int          | n, number of tokens to append                  |
        | **returns**    | (B, T0 + n)  | the prompts followed by the sampled tokens     |

        Each step feeds at most the last ``block_size`` tokens. Call ``model.eval()`` first
        if the model has dropout. See ``sample_next_token`` for ``temperature`` and ``top_k``.
        """
        self.check_tokens("idx", idx, low=0)
        if idx.size(1) == 0:
            raise ValueError("idx must hold at least one token per row (a prompt), got T=0")
        check_int("max_new_tokens", max_new_tokens, low=0)
        check_sampling(temperature, top_k, self.config.vocab_size)
        for _ in range(max_new_tokens):
            context = idx[:, -self.config.block_size :]  # (B, ≤ block_size)
            logits, _ = self(context)  # (B, T, V)
            next_id = sample_next_token(logits[:, -1, :], temperature, top_k, generator)  # (B, 1)
            idx = torch.cat([idx, next_id], dim=1)  # (B, T + 1)
        return idx

    # --8<-- [end:generate]


def check_sampling(temperature: float, top_k: int | None, vocab_size: int) -> None:
    """Raise ValueError unless temperature is finite and >= 0 and top_k is None or in [1, V]."""
    if not isinstance(temperature, int | float) or not math.isfinite(temperature):
        raise ValueError(f"temperature must be a finite number, got {temperature!r}")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and (not isinstance(top_k, int) or not 1 <= top_k <= vocab_size):
        raise ValueError(f"top_k must be an int in [1, vocab_size={vocab_size}], got {top_k!r}")


# --8<-- [start:sample]
def sample_next_token(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Draw one token per row from ``softmax(logits / temperature)`` restricted to the top k.

    | Argument    | Shape  | Meaning                  |
    |-------------|--------|--------------------------|
    | logits      | (B, V) | scores of the next token |
    | **returns** | (B, 1) | sampled ids (long)       |

    ``temperature < MIN_TEMPERATURE`` (0 included) is greedy: the argmax, no randomness.
    ``top_k = k`` keeps the k largest logits (ties with the k-th are kept too).
    """
    check_float("logits", logits)
    check_ndim("logits", logits, 2, "(B, V)")
    check_sampling(temperature, top_k, logits.size(-1))
    if top_k is not None:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]  # (B, 1): k-th largest
        logits = logits.masked_fill(logits < kth, float("-inf"))  # (B, V)
    if temperature < MIN_TEMPERATURE:
        return logits.argmax(dim=-1, keepdim=True)  # (B, 1)
    # p = softmax(z / τ); τ ≥ MIN_TEMPERATURE keeps z / τ finite (softmax subtracts the max)
    probs = F.softmax(logits / temperature, dim=-1)  # (B, V)
    return torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)


# --8<-- [end:sample]


# --8<-- [start:num-params]
def expected_num_params(config: GPTConfig) -> int:
    """Closed-form parameter count of ``GPT(config)``.

    With V = vocab_size, T = block_size, L = n_layer, d = n_embd and b = 1 if bias else 0::

        N = V·d + T·d + L·(12·d² + 2·d + 11·b·d) + d + b·d

    Token table V·d (shared with the LM head, so counted once) and position table T·d.
    Per block: q, k, v and output projections 4·d² (+ 4·b·d biases); MLP d·4d + 4d·d = 8·d²
    (+ 4·b·d + b·d biases); two LayerNorms 2·d gains (+ 2·b·d shifts). Then the final
    LayerNorm d (+ b·d). The head count nh does not appear: heads split d, they add nothing.
    """
    V, T, L, d = config.vocab_size, config.block_size, config.n_layer, config.n_embd
    b = int(config.bias)
    return V * d + T * d + L * (12 * d * d + 2 * d + 11 * b * d) + d + b * d


# --8<-- [end:num-params]
