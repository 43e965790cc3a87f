"""Explicit attention vs F.scaled_dot_product_attention, and GPT training throughput, on CPU.

Prints times and ratios; asserts nothing about time (machines differ). Run:

    python -m benchmarks.bench_gpt            # a few sizes, about half a minute on 2 cores
    python -m benchmarks.bench_gpt --quick    # the smallest sizes only
    python -m benchmarks.bench_gpt --threads 1
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import torch
from torch.utils import benchmark

from snippets.pytorch.gpt import GPT, CausalSelfAttention, GPTConfig


@dataclass
class AttnCase:
    """One attention size."""

    batch: int
    """B: sequences per call."""
    seq_len: int
    """T: tokens per sequence (also the block size)."""
    n_embd: int
    """d: model width."""
    n_head: int
    """nh: heads (head size d / nh)."""


ATTN_CASES = [
    AttnCase(8, 64, 128, 4),
    AttnCase(8, 256, 128, 4),
    AttnCase(4, 512, 256, 8),
    AttnCase(2, 1024, 256, 8),
]


def time_attention(case: AttnCase, use_sdpa: bool, min_run_time: float) -> float:
    """Median seconds of one forward + backward of a CausalSelfAttention on ``(B, T, d)``."""
    config = GPTConfig(
        vocab_size=1, block_size=case.seq_len, n_layer=1, n_head=case.n_head, n_embd=case.n_embd
    )
    torch.manual_seed(0)
    attn = CausalSelfAttention(dataclasses.replace(config, use_sdpa=use_sdpa))
    x = torch.randn(case.batch, case.seq_len, case.n_embd, requires_grad=True)  # (B, T, d)

    def step() -> None:
        attn(x).sum().backward()

    step()  # warm-up
    timer = benchmark.Timer(stmt="step()", globals={"step": step})
    return min(timer.blocked_autorange(min_run_time=min_run_time).times)


def tokens_per_second(config: GPTConfig, batch: int, min_run_time: float) -> float:
    """Training tokens per second (forward, loss, backward, AdamW step), from the fastest block."""
    torch.manual_seed(0)
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(0)
    T = config.block_size
    x = torch.randint(0, config.vocab_size, (batch, T), generator=gen)  # (B, T)
    y = torch.randint(0, config.vocab_size, (batch, T), generator=gen)  # (B, T)

    def step() -> None:
        _, loss = model(x, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    step()  # warm-up: allocations, first-call overheads
    timer = benchmark.Timer(stmt="step()", globals={"step": step})
    return batch * T / min(timer.blocked_autorange(min_run_time=min_run_time).times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smallest sizes only")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    min_run = 0.2 if args.quick else 0.5
    cases = ATTN_CASES[:2] if args.quick else ATTN_CASES
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print("\nCausal self-attention, forward + backward (fastest block: least disturbed)")
    print(f"{'B':>3} {'T':>5} {'d':>4} {'nh':>3} {'explicit ms':>12} {'sdpa ms':>9} {'ratio':>6}")
    for case in cases:
        explicit = time_attention(case, use_sdpa=False, min_run_time=min_run)
        fused = time_attention(case, use_sdpa=True, min_run_time=min_run)
        print(
            f"{case.batch:>3} {case.seq_len:>5} {case.n_embd:>4} {case.n_head:>3} "
            f"{explicit * 1e3:>12.2f} {fused * 1e3:>9.2f} {explicit / fused:>5.2f}x"
        )

    config = GPTConfig(vocab_size=256, block_size=128, n_layer=4, n_head=4, n_embd=128)
    batch = 16
    print(
        f"\nGPT training step, {GPT(config).num_params():,} parameters, "
        f"B={batch}, T={config.block_size}, AdamW"
    )
    rates = {}
    for use_sdpa in (False, True):
        name = "sdpa" if use_sdpa else "explicit"
        rates[name] = tokens_per_second(
            dataclasses.replace(config, use_sdpa=use_sdpa), batch, min_run_time=4 * min_run
        )
        print(f"{name:>9}: {rates[name]:>9,.0f} tokens/s")
    print(f"    ratio: {rates['sdpa'] / rates['explicit']:.2f}x (sdpa / explicit)")


if __name__ == "__main__":
    main()
