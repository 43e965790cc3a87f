"""Bad settings raise ValueError naming the field, before any training."""

from __future__ import annotations

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
