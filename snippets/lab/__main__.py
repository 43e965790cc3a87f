"""The lab's command line: ``python -m snippets.lab <stage|algo|all> [--seed N] [--steps N]``.

Examples::

    python -m snippets.lab all                  # SFT, then every algorithm x 3 seeds
    python -m snippets.lab sft --seed 0         # random GPT -> starting policy (sft_seed0.pt)
    python -m snippets.lab grpo --seed 1 --steps 40 --beta 0.0
    python -m snippets.lab dpo --beta 2.0 --lr 1e-4
    python -m snippets.lab pref_sweep           # the DPO / IPO tuning grid
    python -m snippets.lab summary              # re-print the table from the JSON files

A single run of a comparison run (``sft_control``, ``grpo``, ``dpo``...) uses that run's
settings from ``experiments.RUNS``, exactly as ``all`` does (``COMPARISON_STEPS`` steps unless
``--steps`` says otherwise), so with the same seed it recomputes the committed run. Every
setting is checked before anything trains; a bad one (``--group 1`` for GRPO, ``--beta`` for
SFT, which has no β) stops with an error naming the field.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from snippets.lab.config import PREF_ALGOS, RL_ALGOS
from snippets.lab.experiments import (
    COMPARISON_STEPS,
    RUNS,
    aggregate_summaries,
    plan,
    sweep_plan,
    table,
)
from snippets.lab.runner import DEFAULT_OUT, Job, check_settings, run_job, run_jobs

_MAIN = ("sft", "sft_control", "rm", *RL_ALGOS, "grpo_rm", *PREF_ALGOS)
# every named run of the comparison (grpo_kl0, dpo_untuned, ...) is a stage too
STAGES = (*_MAIN, *(r for r in RUNS if r not in _MAIN), "all", "pref_sweep", "summary")
OVERRIDES = ("lr", "beta", "group", "prompts", "aggregation", "reward", "eval_every")


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m snippets.lab", description=__doc__.split("\n")[0])
    p.add_argument("stage", choices=STAGES, help="stage or algorithm to run")
    p.add_argument("--seed", type=int, default=0, help="seed of a single run")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of 'all'")
    p.add_argument("--steps", type=int, default=None, help="optimizer / rollout steps")
    p.add_argument("--workers", type=int, default=2, help="parallel one-thread processes")
    p.add_argument("--runs", nargs="+", choices=list(RUNS), help="with 'all': only these runs")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="results directory")
    p.add_argument("--lr", type=float)
    p.add_argument("--beta", type=float)
    p.add_argument("--group", type=int)
    p.add_argument("--prompts", type=int)
    p.add_argument("--aggregation")
    p.add_argument("--reward", choices=("verifier", "partial", "model"))
    p.add_argument("--eval-every", dest="eval_every", type=int)
    return p


def _overrides(args: argparse.Namespace) -> dict:
    return {k: getattr(args, k) for k in OVERRIDES if getattr(args, k) is not None}


def _single_job(args: argparse.Namespace) -> Job:
    """The job of one stage: for a run of the comparison, the job ``all`` makes for it."""
    if args.stage in RUNS:
        steps = args.steps if args.steps is not None else COMPARISON_STEPS
        kind, name, settings = plan([args.seed], steps, [args.stage])[0]
    else:  # sft and rm: their config's defaults (sft is the starting policy of every run)
        kind, name, settings = args.stage, args.stage, {"seed": args.seed}
        if args.steps is not None:
            settings["steps"] = args.steps
    return (kind, name, {**settings, **_overrides(args)})


def _print_table(out: Path) -> None:
    agg = aggregate_summaries(out)
    (out / "summary.json").write_text(json.dumps(agg, indent=1))
    (out / "summary.md").write_text(table(agg) + "\n")  # included by docs/lab/index.md
    print(table(agg))


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return _run(args)
    except ValueError as err:  # a bad setting: say which, without a traceback
        parser.error(str(err))
        return 2


def _run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if args.stage == "summary":
        _print_table(out)
        return 0
    if args.stage in ("all", "pref_sweep"):
        if _overrides(args):  # `all` runs the fixed settings of RUNS; say so, do not ignore
            names = ", ".join(f"--{k.replace('_', '-')}" for k in _overrides(args))
            raise ValueError(f"{names}: only for a single run, not for {args.stage!r}")
        steps = args.steps if args.steps is not None else COMPARISON_STEPS
        jobs = plan(args.seeds, steps, args.runs) if args.stage == "all" else sweep_plan(steps)
        check_settings(jobs)  # every config is valid before anything trains
        start = time.perf_counter()
        subset = args.stage == "all" and args.runs and (out / "sft_seed0.pt").exists()
        if args.stage == "all" and not subset:
            sft = [("sft", "sft", {"seed": s}) for s in sorted(set(args.seeds) | {0})]
            # seed 0 writes the starting checkpoint; the other SFT seeds (shown for their
            # spread) share the first phase's spare workers or join the second phase
            run_jobs(sft[: args.workers], out, args.workers)
            sft_phase = time.perf_counter() - start
            print(f"starting policy ready after {sft_phase:.1f} s")
            jobs = sft[args.workers :] + jobs
        elif not (out / "sft_seed0.pt").exists():
            raise SystemExit(f"{out}/sft_seed0.pt is missing: run `python -m snippets.lab sft`")
        target = out if args.stage == "all" else out / "pref_sweep"
        if args.stage == "pref_sweep":
            target.mkdir(parents=True, exist_ok=True)
            (target / "sft_seed0.pt").write_bytes((out / "sft_seed0.pt").read_bytes())
        run_jobs(jobs, target, args.workers)
        if args.stage == "pref_sweep":
            (target / "sft_seed0.pt").unlink()
        total = time.perf_counter() - start
        print(f"all runs done in {total:.1f} s (wall-clock)")
        if args.stage == "all" and not subset:
            timing = {
                "total_s": total,
                "sft_phase_s": sft_phase,
                "jobs": len(jobs) + min(args.workers, len(set(args.seeds) | {0})),
                "workers": args.workers,
            }
            (out / "timing.json").write_text(json.dumps(timing, indent=1))
        _print_table(target)
        return 0
    job = _single_job(args)
    check_settings([job])
    if job[0] != "sft" and not (out / "sft_seed0.pt").exists():
        print("no starting checkpoint yet: training the SFT policy first (seed 0)")
        run_job(("sft", "sft", {"seed": 0}), out)
    total = job[2].get("steps")
    bar = tqdm(total=total, desc=job[1], disable=not sys.stderr.isatty())
    summary = run_job(job, out, on_step=lambda _: bar.update())
    bar.close()
    print(json.dumps({k: v for k, v in summary.items() if k != "settings"}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
