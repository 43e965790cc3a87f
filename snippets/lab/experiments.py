"""The experiments behind the lab's pages: which runs ``all`` makes, and the summary table.

``plan(seeds, steps)`` lists every job of the full comparison. All RL and preference runs
start from the same SFT checkpoint (``sft_seed0.pt``) and see the same number of samples:
``steps x prompts x group`` for RL, the same count sampled once for the DPO / IPO pairs.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from snippets.lab.config import RLConfig
from snippets.lab.runner import Job

__all__ = ["COMPARISON_STEPS", "RUN_ORDER", "aggregate_summaries", "plan", "sweep_plan", "table"]

COMPARISON_STEPS = 80  # rollout steps of every run of the comparison: 80 x 32 x 8 samples

# run name -> (job kind, settings other than seed and steps)
RUNS: dict[str, tuple[str, dict]] = {
    "ppo": ("rl", {"algo": "ppo"}),
    "grpo_rm": ("rm_rl", {"algo": "grpo", "reward": "model", "eval_every": 2}),
    "grpo_rm_kl0.5": ("rm_rl", {"algo": "grpo", "reward": "model", "beta": 0.5, "eval_every": 2}),
    "dpo": ("pref", {"algo": "dpo"}),
    "ipo": ("pref", {"algo": "ipo"}),
    "dpo_untuned": ("pref", {"algo": "dpo", "beta": 0.1, "lr": 1e-3}),
    "reinforce": ("rl", {"algo": "reinforce"}),
    "rloo": ("rl", {"algo": "rloo"}),
    "reinforce_pp": ("rl", {"algo": "reinforce_pp"}),
    "grpo": ("rl", {"algo": "grpo"}),
    "grpo_token_mean": ("rl", {"algo": "grpo", "aggregation": "token-mean"}),
    "grpo_seq_sum_norm": ("rl", {"algo": "grpo", "aggregation": "seq-mean-token-sum-norm"}),
    "grpo_kl0": ("rl", {"algo": "grpo", "beta": 0.0}),
    "grpo_kl0.5": ("rl", {"algo": "grpo", "beta": 0.5}),
    "grpo_highlr": ("rl", {"algo": "grpo", "lr": 1e-3}),
    "reinforce_highlr": ("rl", {"algo": "reinforce", "lr": 1e-3}),
    "sft_control": ("sft_control", {"batch_size": 256, "eval_every": 3}),
}
RUN_ORDER = ["sft", *RUNS]


def plan(
    seeds: list[int], steps: int = COMPARISON_STEPS, runs: list[str] | None = None
) -> list[Job]:
    """Jobs of the comparison (without the SFT runs, which must come first)."""
    jobs: list[Job] = []
    for name in runs or list(RUNS):
        kind, settings = RUNS[name]
        for seed in seeds:
            job = {**settings, "seed": seed, "steps": steps}
            if kind == "pref":  # the same number of samples as an RL run of `steps` steps
                job["pair_prompts"] = steps * RLConfig().prompts
            jobs.append((kind, name, job))
    return jobs


def sweep_plan(steps: int = COMPARISON_STEPS) -> list[Job]:
    """The DPO / IPO tuning grid (seed 0): β x learning rate for each loss."""
    jobs: list[Job] = []
    grid = (("dpo", (0.1, 0.5, 1.0, 2.0, 5.0)), ("ipo", (0.05, 0.1, 0.25, 0.5, 2.0)))
    for algo, betas in grid:
        for beta in betas:
            for lr in (1e-4, 1e-3):
                name = f"{algo}_beta{beta}_lr{lr:g}"
                jobs.append(
                    (
                        "pref",
                        name,
                        {
                            "algo": algo,
                            "beta": beta,
                            "lr": lr,
                            "steps": steps,
                            "pair_prompts": steps * 32,
                            "seed": 0,
                        },
                    )
                )
    return jobs


def _stats(values: list[float | None]) -> dict[str, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else None  # undefined for one value
    return {
        "mean": statistics.fmean(values),
        "std": std,
        "min": min(values),
        "max": max(values),
        "n": len(values),
    }


def aggregate_summaries(out: Path) -> dict[str, dict]:
    """Read every ``<run>_seed<s>.json`` under ``out`` and aggregate over seeds."""
    by_run: dict[str, list[dict]] = {}
    for path in sorted(out.glob("*_seed*.json")):
        summary = json.loads(path.read_text())
        by_run.setdefault(summary["run"], []).append(summary)
    result = {}
    for run, summaries in by_run.items():
        keys = sorted(
            {
                k
                for s in summaries
                for k, v in s.items()
                if (v is None or isinstance(v, int | float)) and k != "seed"
            }
        )
        result[run] = {"seeds": sorted(s["seed"] for s in summaries)}
        for key in keys:
            result[run][key] = _stats([s.get(key) for s in summaries])
    return result


def table(agg: dict[str, dict]) -> str:
    """A markdown table: final and best held-out exact match, time to 95 %, KL."""
    lines = [
        "| run | seeds | final held-out EM | best held-out EM | s to 95 % | s (total) "
        "| KL to ref |",
        "|---|---|---|---|---|---|---|",
    ]

    def fmt(stat: dict | None, pct: bool = False, digits: int = 1) -> str:
        if not stat or stat["n"] == 0:
            return "–"
        scale = 100 if pct else 1
        mean = f"{stat['mean'] * scale:.{digits}f}"
        if stat["std"] is None:  # one value (one seed): no spread to show
            return f"{mean} ± –"
        return f"{mean} ± {stat['std'] * scale:.{digits}f}"

    for run in [r for r in RUN_ORDER if r in agg] + sorted(set(agg) - set(RUN_ORDER)):
        a = agg[run]
        reached = a.get("wall_s_to_95")
        to95 = fmt(reached) if reached and reached["n"] else "–"
        if reached and 0 < reached["n"] < len(a["seeds"]):
            to95 += f" ({reached['n']}/{len(a['seeds'])} seeds)"
        lines.append(
            f"| {run} | {len(a['seeds'])} | {fmt(a.get('final_heldout_acc'), True)} | "
            f"{fmt(a.get('best_heldout_acc'), True)} | {to95} | {fmt(a.get('wall_s'))} | "
            f"{fmt(a.get('final_kl_ref'), digits=2)} |"
        )
    return "\n".join(lines)
