"""Vectorised advantage computations vs naive Python loops (prints timings, asserts nothing).

    python benchmarks/bench_rl_advantages.py

GAE at B × T = 64 × 1024 and 512 × 1024: ``snippets.rl.gae.gae`` computes every δ_t at once
and then runs one reverse loop over T whose steps are vectorised over B, so its cost barely
grows with B; ``gae_reference`` visits every token in Python, so its cost grows with B · T.
Then the group advantages of RLOO and GRPO against per-group Python loops of the kind verl's
``compute_grpo_outcome_advantage`` uses. Timings depend on the machine and on whatever else
runs on it (best of a few runs is printed); max |diff| shows both sides compute the same.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from anywhere

from snippets.rl.advantages import grpo_advantages, rloo_advantages
from snippets.rl.gae import gae, gae_reference

B, T = 64, 1024


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Best wall time of ``repeats`` calls, in seconds (the least disturbed run)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def grpo_loop(rewards: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Naive GRPO advantages: Python lists, one group at a time."""
    out = []
    for row in rewards.tolist():
        mean, std = statistics.fmean(row), statistics.stdev(row)  # stdev: n − 1
        out.append([(r - mean) / (std + eps) for r in row])
    return torch.tensor(out, dtype=rewards.dtype)


def rloo_loop(rewards: torch.Tensor) -> torch.Tensor:
    """Naive RLOO advantages: each sample against the mean of the others, by loop."""
    out = []
    for row in rewards.tolist():
        total = sum(row)
        out.append([r - (total - r) / (len(row) - 1) for r in row])
    return torch.tensor(out, dtype=rewards.dtype)


def gae_inputs(batch: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded responses of random length with an outcome reward at the last token."""
    lengths = torch.randint(T // 4, T + 1, (batch,), generator=g)  # (B,) response lengths
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    rewards = torch.zeros(batch, T, dtype=torch.float64)  # (B, T)
    rewards[torch.arange(batch), lengths - 1] = torch.randn(batch, generator=g, dtype=torch.float64)
    rewards -= 0.01 * mask  # a small per-token penalty, like a KL term
    values = torch.randn(batch, T, generator=g, dtype=torch.float64)  # (B, T)
    return rewards, values, mask


def report(name: str, fast: float, slow: float, diff: float) -> None:
    print(
        f"{name:34s} vectorised {fast * 1e3:9.3f} ms   loop {slow * 1e3:9.3f} ms   "
        f"ratio {slow / fast:7.1f}x   max |diff| {diff:.1e}"
    )


def main() -> None:
    # Each step of the GAE loop works on B = 64 numbers: a thread pool only adds overhead
    # (and, on a busy 2-core machine, contention that makes timings meaningless).
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float64")

    for batch in (B, 8 * B):  # the spec's 64 × 1024, then 8x the batch: the loop over T stays
        rewards, values, mask = gae_inputs(batch, g)
        fast = best_time(lambda r=rewards, v=values, m=mask: gae(r, v, m, 1.0, 0.95), repeats=5)
        slow = best_time(
            lambda r=rewards, v=values, m=mask: gae_reference(r, v, m, 1.0, 0.95), repeats=2
        )
        diff = (
            gae(rewards, values, mask, 1.0, 0.95)[0]
            - gae_reference(rewards, values, mask, 1.0, 0.95)[0]
        )
        report(f"GAE  B×T = {batch}×{T}", fast, slow, float(diff.abs().max()))

    for prompts, group in ((8, 8), (1024, 16)):
        scores = torch.randint(0, 2, (prompts, group), generator=g).double()  # (P, G) pass/fail
        for name, vectorised, loop in (
            ("GRPO", grpo_advantages, grpo_loop),
            ("RLOO", rloo_advantages, rloo_loop),
        ):
            fast = best_time(lambda v=vectorised, s=scores: v(s), repeats=20)
            slow = best_time(lambda lp=loop, s=scores: lp(s), repeats=3)
            diff = float((vectorised(scores) - loop(scores)).abs().max())
            report(f"{name} P×G = {prompts}×{group}", fast, slow, diff)


if __name__ == "__main__":
    main()
