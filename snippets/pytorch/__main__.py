"""Run every PyTorch demo in reading order: ``python -m snippets.pytorch [name ...]``."""

from __future__ import annotations

import sys
import time

import torch

from snippets.pytorch import DEMOS


def main(names: list[str]) -> int:
    """Run the demos named in ``names`` (all if empty); return a process exit code."""
    known = {demo.__name__: demo for demo in DEMOS}
    unknown = [n for n in names if n not in known]
    if unknown:
        print(f"unknown demo(s) {unknown}; choose from {list(known)}", file=sys.stderr)
        return 2
    # tiny models: one thread is as fast, and far faster when other processes share the cores
    torch.set_num_threads(1)
    start = time.perf_counter()
    for demo in [known[n] for n in names] or DEMOS:
        print(f"\n=== {demo.__name__} " + "=" * (60 - len(demo.__name__)))
        demo()
    print(f"\nall demos done in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
