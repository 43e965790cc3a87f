"""The committed results are reproducible: re-running a seeded prefix gives the same numbers.

Each check re-runs the first steps of one seed of a committed run and compares every logged
value (except wall-clock) with the committed CSV, as text. One seed of every kind of run is
covered: the starting SFT, the continued-SFT control, every RL algorithm and variant, DPO,
IPO, untuned DPO, the reward model (its whole run) and GRPO against it. The pages plot those
CSVs, so for these runs and steps they cannot drift from the code without this failing.

What is compared: the first 60 SFT steps, the first 6 control steps, the first 3 steps of
every RL and preference run, all 300 reward-model steps. Later steps are not re-run (the whole
comparison takes about 9 minutes), so a change that only acts late in a run would pass.

The condition: bit-for-bit equality holds for the pinned torch 2.13.0 (CPU wheel) with one
intra-op thread (``tests/conftest.py`` sets it; ``runner.run_job`` sets it for every run).
Another torch version, a GPU or more threads may change the last digits.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch

import snippets.lab.preference as preference
from snippets.lab.config import PrefConfig, RLConfig, RMConfig, SFTConfig
from snippets.lab.preference import train_preference
from snippets.lab.reward_model import train_reward_model
from snippets.lab.rl import train_rl
from snippets.lab.runner import load_start, read_csv
from snippets.lab.sft import continue_sft, train_sft

RESULTS = Path(__file__).resolve().parents[2] / "results" / "lab"


def _settings(stem: str) -> dict:
    return json.loads((RESULTS / f"{stem}.json").read_text())["settings"]


def _as_text(value: float | int) -> str:
    return repr(value) if isinstance(value, float) else str(value)


def _compare(fresh: list[dict], stem: str) -> int:
    """Assert every fresh value equals the committed one; return how many were compared."""
    committed = read_csv(RESULTS / f"{stem}.csv")
    assert len(fresh) <= len(committed)
    checked = 0
    for new, old in zip(fresh, committed, strict=False):
        for key, value in new.items():
            assert key in old, f"{key} is not a column of {stem}.csv"
            if key == "wall_s" or old[key] == "":  # wall-clock; or not evaluated at this step
                continue
            assert _as_text(value) == old[key], f"{stem} step {new['step']}: {key}"
            checked += 1
    return checked


@pytest.fixture(scope="module")
def start():
    assert torch.get_num_threads() == 1  # the condition of bit-for-bit equality
    return load_start(RESULTS)


def test_sft_prefix_matches_committed_csv():
    cfg = replace(SFTConfig(**_settings("sft_seed0")), steps=60)
    _, rows = train_sft(cfg)
    assert _compare(rows, "sft_seed0") >= 120


def test_sft_control_prefix_matches_committed_csv(start):
    cfg = replace(SFTConfig(**_settings("sft_control_seed1")), steps=6)
    _, rows = continue_sft(start, cfg)
    assert _compare(rows, "sft_control_seed1") >= 6 * 3 + 2


@pytest.mark.parametrize(
    "stem",
    [
        "reinforce_seed1",
        "rloo_seed2",
        "reinforce_pp_seed0",
        "ppo_seed1",
        "grpo_seed0",
        "grpo_token_mean_seed2",
        "grpo_seq_sum_norm_seed1",
        "grpo_kl0_seed2",
        "grpo_kl0.5_seed0",
        "grpo_highlr_seed1",
        "reinforce_highlr_seed2",
    ],
)
def test_rl_prefix_matches_committed_csv(start, stem):
    cfg = replace(RLConfig(**_settings(stem)), steps=3)
    _, rows = train_rl(cfg, start)
    assert _compare(rows, stem) >= 20


@pytest.fixture(scope="module")
def shared_pairs():
    """Sample each pair set once: DPO, IPO and untuned DPO of one seed draw the same pairs.

    ``preference_pairs`` is a function of the policy, the counts and the generator's state;
    the wrapper stores its result together with the generator state it leaves behind, and a
    later call with the same inputs gets both back, so training continues exactly as after a
    fresh sampling (about 6 s saved per run).
    """
    cache: dict = {}
    real = preference.preference_pairs

    def cached(gpt, n_prompts, group, generator, split="train"):
        key = (id(gpt), n_prompts, group, split, bytes(generator.get_state().tolist()))
        if key not in cache:
            cache[key] = (real(gpt, n_prompts, group, generator, split), generator.get_state())
        pairs, after = cache[key]
        generator.set_state(after)
        return pairs

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(preference, "preference_pairs", cached)
        yield cache


@pytest.mark.parametrize("stem", ["dpo_seed1", "ipo_seed1", "dpo_untuned_seed1"])
def test_preference_prefix_matches_committed_csv(start, shared_pairs, stem):
    cfg = replace(PrefConfig(**_settings(stem)), steps=3)
    _, rows = train_preference(cfg, start)
    assert len(shared_pairs) == 1  # all three sampled the same pairs
    assert _compare(rows, stem) >= 20


@pytest.fixture(scope="module")
def reward_model_seed2(start):
    """The whole reward-model run of seed 2 (written by the grpo_rm job), about 11 s."""
    rm, rows = train_reward_model(RMConfig(**_settings("rm_seed2")), start)
    return rm.eval(), rows


def test_reward_model_matches_committed_csv(reward_model_seed2):
    _, rows = reward_model_seed2
    assert len(rows) == 301
    assert _compare(rows, "rm_seed2") >= 300 * 2 + 12


@pytest.mark.parametrize("stem", ["grpo_rm_seed2", "grpo_rm_kl0.5_seed2"])
def test_rl_on_the_reward_model_matches_committed_csv(start, reward_model_seed2, stem):
    cfg = replace(RLConfig(**_settings(stem)), steps=3)
    _, rows = train_rl(cfg, start, reward_model=reward_model_seed2[0])
    assert _compare(rows, stem) >= 20
