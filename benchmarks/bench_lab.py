"""Lab benchmark: time to the starting policy, GRPO time to 95 % / 98 % held-out exact match,
the full comparison's wall-clock, and how they scale with model size and group size.

    .venv/bin/python -m benchmarks.bench_lab            # about 5 minutes on 2 cores
    .venv/bin/python -m benchmarks.bench_lab --quick    # the 2 x 64 model and G = 8 only

Targets (not assertions): starting policy <= 60 s; GRPO >= 95 % within 60 s and >= 98 % by
180 s. Every run is one thread in its own process, two at a time; times are wall-clock of
training (held-out evaluation excluded) and move with whatever else shares the cores.
"""

from __future__ import annotations

import argparse
import json
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

RESULTS = Path(__file__).resolve().parent.parent / "results" / "lab"


def _first(rows: list[dict], level: float) -> tuple[float | None, int | None]:
    for row in rows:
        if row.get("heldout_acc", -1.0) >= level:
            return row["wall_s"], int(row["step"])
    return None, None


def sft_then_grpo(n_layer: int, n_embd: int, groups: tuple[int, ...], steps: int) -> dict:
    """Train the starting policy of one model size, then GRPO with each group size G
    (prompts = 256 / G, so every step has 256 samples)."""
    import torch

    from snippets.lab.config import ModelConfig, RLConfig, SFTConfig
    from snippets.lab.rl import train_rl
    from snippets.lab.sft import train_sft

    torch.set_num_threads(1)
    model = ModelConfig(n_layer=n_layer, n_head=4, n_embd=n_embd)
    start = time.perf_counter()
    gpt, rows = train_sft(SFTConfig(model=model, eval_every=100))
    out = {
        "model": f"{n_layer}x{n_embd}",
        "params": gpt.num_params(),
        "sft_s": time.perf_counter() - start,
        "sft_acc": rows[-1]["heldout_acc"],
        "grpo": {},
    }
    for group in groups:
        cfg = RLConfig(algo="grpo", group=group, prompts=256 // group, steps=steps, eval_every=1)
        _, rl_rows = train_rl(cfg, gpt)
        out["grpo"][group] = {
            "to95": _first(rl_rows, 0.95),
            "to98": _first(rl_rows, 0.98),
            "final": rl_rows[-1]["heldout_acc"],
            "s_per_step": rl_rows[-1]["wall_s"] / steps,
        }
    return out


def _fmt(pair: tuple[float | None, int | None]) -> str:
    secs, step = pair
    return "not reached" if secs is None else f"{secs:5.1f} s (step {step})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the 2 x 64 model, G = 8")
    parser.add_argument("--steps", type=int, default=60, help="GRPO steps per run")
    args = parser.parse_args()
    grid = [(2, 64, (8,) if args.quick else (4, 8, 16))]
    if not args.quick:
        grid += [(2, 32, (8,)), (2, 128, (8,)), (4, 64, (8,))]
    start = time.perf_counter()
    with ProcessPoolExecutor(2, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(sft_then_grpo, *cell, args.steps) for cell in grid]
        results = [f.result() for f in futures]
    print(f"benchmark wall-clock: {time.perf_counter() - start:.0f} s (2 workers x 1 thread)\n")
    print(
        f"{'model':<7}{'params':>8}{'SFT s':>8}{'SFT EM':>8}{'G':>4}{'P':>5}"
        f"{'GRPO to 95 %':>24}{'GRPO to 98 %':>24}{'final':>7}{'s/step':>8}"
    )
    for r in results:
        for group, g in r["grpo"].items():
            print(
                f"{r['model']:<7}{r['params']:>8}{r['sft_s']:>8.1f}{100 * r['sft_acc']:>7.1f}%"
                f"{group:>4}{256 // group:>5}{_fmt(g['to95']):>24}{_fmt(g['to98']):>24}"
                f"{100 * g['final']:>6.1f}%{g['s_per_step']:>8.3f}"
            )
    timing = RESULTS / "timing.json"
    if timing.exists():
        t = json.loads(timing.read_text())
        print(
            f"\nfull comparison (python -m snippets.lab all, recorded): {t['total_s']:.0f} s "
            f"wall-clock for {t['jobs']} runs; starting policy after {t['sft_phase_s']:.0f} s"
        )
    print("targets: starting policy <= 60 s; GRPO >= 95 % within 60 s, >= 98 % by 180 s")


if __name__ == "__main__":
    main()
