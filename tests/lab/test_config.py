"""Bad settings raise ValueError naming the field, before any training."""

from __future__ import annotations

import json
import time

import pytest

from snippets.lab.__main__ import main
from snippets.lab.config import ModelConfig, PrefConfig, RLConfig, RMConfig, SFTConfig


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: RLConfig(algo="grpo", group=1), "group"),
        (lambda: RLConfig(algo="rloo", group=1), "group"),
        (lambda: RLConfig(beta=-0.1), "beta"),
        (lambda: RLConfig(algo="a2c"), "algo"),
        (lambda: RLConfig(steps=0), "steps"),
        (lambda: RLConfig(steps=-3), "steps"),
        (lambda: RLConfig(lr=0.0), "lr"),
        (lambda: RLConfig(clip_eps=0.0), "clip_eps"),
        (lambda: RLConfig(lam=1.5), "lam"),
        (lambda: RLConfig(aggregation="mean"), "aggregation"),
        (lambda: RLConfig(reward="human"), "reward"),
        (lambda: RLConfig(prompts=3, group=3, minibatches=2), "minibatches"),
        (lambda: SFTConfig(steps=0), "steps"),
        (lambda: SFTConfig(noise=1.5), "noise"),
        (lambda: SFTConfig(seed=-1), "seed"),
        (lambda: PrefConfig(beta=-1.0), "beta"),
        (lambda: PrefConfig(beta=0.0), "beta"),
        (lambda: PrefConfig(algo="kto"), "algo"),
        (lambda: PrefConfig(group=1), "group"),
        (lambda: RMConfig(steps=0), "steps"),
        (lambda: RMConfig(group=1), "group"),
        (lambda: ModelConfig(n_embd=30, n_head=4), "n_embd"),
    ],
)
def test_bad_value_names_the_field(make, field):
    with pytest.raises(ValueError, match=field):
        make()


def test_reinforce_accepts_group_one():
    assert RLConfig(algo="reinforce", group=1, prompts=256).group == 1


def test_cli_rejects_bad_value_before_training(tmp_path, capsys):
    start = time.perf_counter()
    with pytest.raises(SystemExit) as exc:
        main(["grpo", "--group", "1", "--out", str(tmp_path)])
    assert exc.value.code == 2
    assert "group must be >= 2" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written
    assert time.perf_counter() - start < 5.0


def test_cli_rejects_bad_value_in_all(tmp_path):
    with pytest.raises(SystemExit):
        main(["all", "--steps", "0", "--out", str(tmp_path)])
    assert list(tmp_path.iterdir()) == []


def _committed_runs() -> list[tuple[str, int, dict]]:
    from pathlib import Path

    results = Path(__file__).resolve().parents[2] / "results" / "lab"
    runs = []
    for path in sorted(results.glob("*_seed*.json")):
        summary = json.loads(path.read_text())
        runs.append((summary["run"], summary["seed"], summary["settings"]))
    return runs


def test_a_single_run_reproduces_the_committed_settings():
    from snippets.lab.__main__ import _parser, _single_job

    runs = _committed_runs()
    assert {run for run, _, _ in runs} >= {"sft", "sft_control", "rm", "grpo_rm", "dpo", "ppo"}
    for run, seed, settings in runs:
        _, name, job = _single_job(_parser().parse_args([run, "--seed", str(seed)]))
        assert (name, job) == (run, settings), run
    # sft_control in particular: the committed control is 80 steps, not SFTConfig's 1,500
    _, _, control = _single_job(_parser().parse_args(["sft_control"]))
    assert control["steps"] == 80 and SFTConfig().steps == 1500


def test_cli_rejects_a_setting_the_stage_does_not_have(tmp_path, capsys):
    for argv, field in (
        (["sft", "--beta", "0.1"], "beta is not a setting of sft"),
        (["dpo", "--group", "4", "--reward", "partial"], "reward is not a setting of dpo"),
        (["all", "--beta", "0.1"], "--beta: only for a single run"),
    ):
        with pytest.raises(SystemExit) as exc:
            main([*argv, "--out", str(tmp_path)])
        assert exc.value.code == 2
        assert field in capsys.readouterr().err, argv
    assert list(tmp_path.iterdir()) == []  # nothing trained, nothing written


def test_check_settings_names_an_unknown_field():
    from snippets.lab.runner import check_settings

    with pytest.raises(ValueError, match="beta is not a setting of sft"):
        check_settings([("sft", "sft", {"seed": 0, "beta": 0.1})])
    with pytest.raises(ValueError, match="kind must be one of"):
        check_settings([("a2c", "a2c", {})])
