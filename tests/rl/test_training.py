"""Each toy training loop must actually learn: its exact expected reward rises."""

from __future__ import annotations

import contextlib
import io

import pytest

from snippets.rl.training import (
    ToyArgs,
    train_dpo,
    train_grpo,
    train_ppo,
    train_reinforce,
    train_rloo,
)

ARGS = ToyArgs(steps=40, log_every=10)


@pytest.mark.parametrize("train", [train_reinforce, train_rloo, train_grpo, train_ppo])
def test_reward_rises(train) -> None:
    with contextlib.redirect_stdout(io.StringIO()) as out:
        history = train(ARGS)
    assert len(history) == 5 and history[0] == pytest.approx(0.4375)
    assert history[-1] > history[0] + 0.3
    assert out.getvalue().count("reward") == 5


def test_dpo_learns_the_preferences() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        rewards, accuracies = train_dpo(ARGS)
    assert accuracies[0] == 0.0 and accuracies[-1] > 0.6  # BT labels are noisy: < 1
    assert rewards[-1] > rewards[0] + 0.2  # and the true reward goes up


def test_loops_are_deterministic() -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        assert train_grpo(ARGS) == train_grpo(ARGS)
