"""Run lab jobs in single-thread worker processes and write their curves and summaries.

A job is ``(kind, name, settings)``: ``kind`` picks the stage (sft, sft_control, rm, rl,
rm_rl, pref), ``name`` is the run's file stem, ``settings`` are config fields. Every job
sets ``torch.set_num_threads(1)``: on 2 cores, two one-thread workers finish a batch of
small runs sooner than one two-thread process, and one thread makes every run bit-for-bit
reproducible from its seed. Outputs, under ``out`` (``results/lab`` by default):

| File                  | Content                                                  |
|-----------------------|----------------------------------------------------------|
| ``<name>_seed<s>.csv``  | one row per step (columns depend on the stage)         |
| ``<name>_seed<s>.json`` | final summary: held-out accuracy, time to 95 / 98 %, ... |
| ``sft_seed0.pt``        | the starting checkpoint every RL / DPO run loads (0.4 MB) |
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields
from multiprocessing import get_context
from pathlib import Path

import torch
from tqdm import tqdm

from snippets.lab.config import ModelConfig, PrefConfig, RLConfig, RMConfig, SFTConfig
from snippets.lab.policy import build_gpt
from snippets.pytorch.gpt import GPT

__all__ = ["Job", "load_start", "run_job", "run_jobs", "summarise", "write_csv"]

Job = tuple[str, str, dict]
Row = dict[str, float]
DEFAULT_OUT = Path("results/lab")


def write_csv(path: Path, rows: list[Row]) -> None:
    """Rows -> CSV; a missing value is an empty cell; floats keep full precision (repr)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: repr(v) if isinstance(v, float) else v for k, v in row.items()})


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def _first_reaching(rows: list[Row], key: str, level: float) -> tuple[float | None, float | None]:
    for row in rows:
        if row.get(key, -1.0) >= level:
            return row["step"], row["wall_s"]
    return None, None  # never reached (JSON null)


def summarise(name: str, seed: int, rows: list[Row], settings: dict) -> dict:
    """Final held-out accuracy, the best one, when 95 % / 98 % were first reached, wall-clock."""
    evals = [r for r in rows if "heldout_acc" in r]
    out = {
        "run": name,
        "seed": seed,
        "settings": settings,
        "steps": rows[-1]["step"],
        "wall_s": rows[-1]["wall_s"],
    }
    if evals:
        out["start_heldout_acc"] = evals[0]["heldout_acc"]
        out["final_heldout_acc"] = evals[-1]["heldout_acc"]
        out["best_heldout_acc"] = max(r["heldout_acc"] for r in evals)
        for level in (0.95, 0.98):
            step, secs = _first_reaching(evals, "heldout_acc", level)
            out[f"step_to_{round(level * 100)}"] = step
            out[f"wall_s_to_{round(level * 100)}"] = secs
    for key in ("kl_ref", "true_reward", "reward", "heldout_pair_acc", "pairs"):
        values = [r[key] for r in rows if key in r]
        if values:
            out[f"final_{key}"] = values[-1]
    return out


def load_start(out: Path, model: ModelConfig | None = None) -> GPT:
    """The SFT checkpoint every RL and preference run starts from (seed 0)."""
    gpt = build_gpt(model or ModelConfig(), 0)
    gpt.load_state_dict(torch.load(out / "sft_seed0.pt", weights_only=True))
    return gpt


def run_job(job: Job, out: Path = DEFAULT_OUT, on_step: Callable[[int], None] | None = None):
    """Run one job in this process (one thread) and write its CSV and JSON. Returns the
    summary dict."""
    from snippets.lab.preference import train_preference
    from snippets.lab.reward_model import train_reward_model
    from snippets.lab.rl import train_rl
    from snippets.lab.sft import continue_sft, train_sft

    torch.set_num_threads(1)
    kind, name, settings = job[0], job[1], dict(job[2])
    out.mkdir(parents=True, exist_ok=True)
    seed = settings.get("seed", 0)
    stem = f"{name}_seed{seed}"
    if kind == "sft":
        gpt, rows = train_sft(SFTConfig(**settings), on_step)
        if seed == 0:
            torch.save(gpt.state_dict(), out / "sft_seed0.pt")
    elif kind == "sft_control":
        _, rows = continue_sft(load_start(out), SFTConfig(**settings), on_step)
    elif kind == "rm":
        _, rows = train_reward_model(RMConfig(**settings), load_start(out), on_step)
    elif kind == "rm_rl":  # train the reward model, then RL against it
        start = load_start(out)
        rm_settings = {"seed": seed, **settings.pop("rm", {})}
        rm, rm_rows = train_reward_model(RMConfig(**rm_settings), start)
        if name == "grpo_rm":  # other rm_rl runs re-train the same seeded model: no rewrite
            write_csv(out / f"rm_seed{seed}.csv", rm_rows)
            rm_summary = summarise("rm", seed, rm_rows, rm_settings)
            (out / f"rm_seed{seed}.json").write_text(json.dumps(rm_summary, indent=1))
        rm.eval()
        _, rows = train_rl(RLConfig(**settings), start, reward_model=rm, on_step=on_step)
    elif kind == "rl":
        _, rows = train_rl(RLConfig(**settings), load_start(out), on_step=on_step)
    elif kind == "pref":
        _, rows = train_preference(PrefConfig(**settings), load_start(out), on_step)
    else:
        raise ValueError(f"unknown job kind {kind!r}")
    write_csv(out / f"{stem}.csv", rows)
    summary = summarise(name, seed, rows, settings)
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    return summary


def _worker(job: Job, out: str) -> dict:
    return run_job(job, Path(out))


def run_jobs(jobs: list[Job], out: Path = DEFAULT_OUT, workers: int = 2) -> list[dict]:
    """Run jobs in ``workers`` one-thread processes; a progress bar counts finished jobs."""
    bar = tqdm(total=len(jobs), desc="runs", disable=not sys.stderr.isatty())
    summaries = []
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(_worker, job, str(out)): job for job in jobs}
        for future in as_completed(futures):
            summaries.append(future.result())
            bar.set_postfix_str(futures[future][1])
            bar.update()
    bar.close()
    return summaries


def check_settings(jobs: list[Job]) -> None:
    """Build every job's config BEFORE running anything, so a bad value fails at once."""
    makers = {
        "sft": SFTConfig,
        "sft_control": SFTConfig,
        "rm": RMConfig,
        "rl": RLConfig,
        "pref": PrefConfig,
    }
    for kind, name, settings in jobs:
        if kind not in makers and kind != "rm_rl":
            raise ValueError(f"kind must be one of {sorted([*makers, 'rm_rl'])}, got {kind!r}")
        if kind == "rm_rl":
            rest = {k: v for k, v in settings.items() if k != "rm"}
            _check_fields(name, RLConfig, rest)
            RLConfig(**rest)
            rm = {"seed": settings.get("seed", 0), **settings.get("rm", {})}
            _check_fields(name, RMConfig, rm)
            RMConfig(**rm)
        else:
            _check_fields(name, makers[kind], settings)
            makers[kind](**settings)


def _check_fields(name: str, config: type, settings: dict) -> None:
    """An unknown setting (``--beta`` for SFT) is a ValueError naming it, not a TypeError."""
    known = {f.name for f in fields(config)}
    for key in settings:
        if key not in known:
            has = ", ".join(sorted(known))
            raise ValueError(f"{key} is not a setting of {name} ({config.__name__} has: {has})")
