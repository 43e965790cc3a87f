"""Time per generated token with and without a KV cache, for the minimal GPT on CPU.

Prints times and ratios; asserts nothing about time (machines differ). Run:

    python -m benchmarks.bench_kv_cache            # four lengths, about 2 minutes on 2 cores
    python -m benchmarks.bench_kv_cache --quick    # the two shortest lengths only
    python -m benchmarks.bench_kv_cache --threads 1
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

import torch
from torch.utils import benchmark

from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.pytorch.kv_cache import generate_with_cache, kv_cache_bytes

CONFIG = GPTConfig(vocab_size=256, block_size=512, n_layer=4, n_head=4, n_embd=128)
"""A small GPT (~0.9M parameters) whose block size leaves room for 496 new tokens."""
BATCH = 4
"""B: sequences generated at once."""
PROMPT_LEN = 16
"""T0: prompt tokens per sequence."""
LENGTHS = [32, 128, 256, 496]
"""n: tokens generated per sequence (T0 + n - 1 <= block_size)."""


def seconds_per_token(
    generate: Callable[[], torch.Tensor], n: int, min_run_time: float
) -> tuple[float, torch.Tensor]:
    """Fastest time of one ``generate()`` call per token appended, and that call's output."""
    out = generate()  # warm-up (allocations, first-call overheads); kept to compare the tokens
    timer = benchmark.Timer(stmt="generate()", globals={"generate": generate})
    return min(timer.blocked_autorange(min_run_time=min_run_time).times) / n, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shortest lengths only")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    lengths = LENGTHS[:2] if args.quick else LENGTHS
    torch.manual_seed(0)
    model = GPT(CONFIG).eval()
    prompt = torch.randint(0, CONFIG.vocab_size, (BATCH, PROMPT_LEN))  # (B, T0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, CPU")
    print(
        f"GPT {model.num_params():,} parameters (L={CONFIG.n_layer}, d={CONFIG.n_embd}, "
        f"nh={CONFIG.n_head}), B={BATCH}, prompt T0={PROMPT_LEN}, greedy, float32"
    )
    header = f"{'n':>5} {'no cache ms/tok':>16} {'cache ms/tok':>13} {'ratio':>7} {'cache KiB':>10}"
    print(f"{header} same tokens")
    for n in lengths:

        def plain(n: int = n) -> torch.Tensor:
            return model.generate(prompt, n, temperature=0.0)

        def cached(n: int = n) -> torch.Tensor:
            return generate_with_cache(model, prompt, n, temperature=0.0)

        slow, out_plain = seconds_per_token(plain, n, min_run_time=1.0)
        fast, out_cached = seconds_per_token(cached, n, min_run_time=1.0)
        same = torch.equal(out_plain, out_cached)
        size = kv_cache_bytes(CONFIG, BATCH, PROMPT_LEN + n - 1, torch.float32) / 1024
        print(
            f"{n:>5} {slow * 1e3:>16.3f} {fast * 1e3:>13.3f} {slow / fast:>6.1f}x "
            f"{size:>10.0f} {same}"
        )


if __name__ == "__main__":
    main()
