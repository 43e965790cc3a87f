"""The committed results are reproducible: re-running a seeded prefix gives the same numbers.

Each check re-runs the first steps of one seed of a committed run and compares every logged
value (except wall-clock) with the committed CSV, as text. One seed of every kind of run is
covered: the starting SFT, the continued-SFT control, every RL algorithm and variant, DPO,
IPO, untuned DPO, the reward model (its whole run) and GRPO against it. The pages plot those
CSVs, so for these runs and steps they cannot drift from the code without this failing.

GRPO against the reward model is the one known drift: its committed runs were computed with
the ``grpo_advantages`` of the time, which did not yet force a group of equal rewards to an
advantage of exactly 0. They are checked with that formula, and the test also asserts that
today's code differs, so regenerating those runs makes it fail until it is updated.

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
import snippets.lab.rl as lab_rl
from snippets.lab.config import PrefConfig, RLConfig, RMConfig, SFTConfig
from snippets.lab.preference import train_preference
from snippets.lab.reward_model import train_reward_model
from snippets.lab.rl import train_rl
from snippets.lab.runner import load_start, read_csv
from snippets.lab.sft import continue_sft, train_sft
from snippets.rl import grpo_advantages

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


def _grpo_advantages_when_committed(rewards: torch.Tensor) -> torch.Tensor:
    """``snippets.rl.grpo_advantages`` as it was when the results were computed (c27e9a2).

    (r − mean) / (std + 1e-6), std with n − 1. The current version sets a group of equal
    rewards to exactly 0; this one leaves the rounding error of the group mean, which is 0
    for 0/1 rewards (their means are exact in float32) but not for reward-model scores.
    """
    rewards = rewards.detach()  # (P, G)
    centred = rewards - rewards.mean(dim=1, keepdim=True)  # (P, G)
    return centred / (rewards.std(dim=1, keepdim=True, correction=1) + 1e-6)  # (P, G)


@pytest.mark.parametrize("stem", ["grpo_rm_seed2", "grpo_rm_kl0.5_seed2"])
def test_rl_on_the_reward_model_matches_committed_csv(start, reward_model_seed2, stem):
    # The committed GRPO-on-the-reward-model runs predate the exact-zero advantage of
    # equal-reward groups in snippets.rl.grpo_advantages: with the advantage they were
    # computed with, the lab code reproduces them; with today's, the first update differs.
    cfg = replace(RLConfig(**_settings(stem)), steps=3)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(lab_rl, "grpo_advantages", _grpo_advantages_when_committed)
        _, rows = train_rl(cfg, start, reward_model=reward_model_seed2[0])
    assert _compare(rows, stem) >= 20
    _, today = train_rl(cfg, start, reward_model=reward_model_seed2[0])
    pre_update = ("reward", "true_reward", "kl_ref", "resp_len", "entropy")
    assert all(today[1][k] == rows[1][k] for k in pre_update)  # same samples and scores
    assert today[1]["loss"] != rows[1]["loss"]  # the drift: regenerate these runs to remove it


def test_verifier_rewards_are_unaffected_by_the_equal_group_rule():
    # 0/1 rewards: a group mean is k/8, exact in float32, so both versions give exactly 0
    torch.manual_seed(0)
    rewards = (torch.rand(512, 8) < 0.5).float()
    rewards[:100] = rewards[:100, :1]  # 100 groups of equal rewards
    torch.testing.assert_close(
        grpo_advantages(rewards), _grpo_advantages_when_committed(rewards), rtol=0, atol=0
    )
    scores = torch.full((1, 8), 0.1)  # reward-model scores: the two versions differ
    assert grpo_advantages(scores).abs().max() == 0
    assert _grpo_advantages_when_committed(scores).abs().max() > 1e-3
