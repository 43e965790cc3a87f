"""The committed results are reproducible: re-running a seeded prefix gives the same numbers.

Each check re-runs the first steps of a committed run and compares every logged value
(except wall-clock) with the committed CSV, as text: the pages plot those CSVs, so they
cannot drift from the code without this failing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from snippets.lab.config import RLConfig, SFTConfig
from snippets.lab.rl import train_rl
from snippets.lab.runner import load_start, read_csv
from snippets.lab.sft import train_sft

RESULTS = Path(__file__).resolve().parents[2] / "results" / "lab"


def _as_text(value: float | int) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _compare(fresh: list[dict], committed: list[dict[str, str]]) -> int:
    checked = 0
    for new, old in zip(fresh, committed, strict=False):
        for key, value in new.items():
            if key == "wall_s" or old.get(key, "") == "":
                continue
            assert _as_text(value) == old[key], f"step {new['step']}: {key}"
            checked += 1
    return checked


def test_sft_prefix_matches_committed_csv():
    settings = json.loads((RESULTS / "sft_seed0.json").read_text())["settings"]
    cfg = replace(SFTConfig(**settings), steps=60)
    _, rows = train_sft(cfg)
    assert _compare(rows, read_csv(RESULTS / "sft_seed0.csv")) >= 120


@pytest.mark.parametrize("run", ["grpo_seed0", "ppo_seed1"])
def test_rl_prefix_matches_committed_csv(run):
    settings = json.loads((RESULTS / f"{run}.json").read_text())["settings"]
    cfg = replace(RLConfig(**settings), steps=3)
    _, rows = train_rl(cfg, load_start(RESULTS))
    assert _compare(rows, read_csv(RESULTS / f"{run}.csv")) >= 20
