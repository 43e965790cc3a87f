"""Every stage learns something in a few seconds (fixed seeds; tiny budgets).

RL, preference and reward-model smokes start from the committed starting checkpoint
``results/lab/sft_seed0.pt`` (0.4 MB), so they test the same policy the pages describe.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from snippets.lab.config import ModelConfig, PrefConfig, RLConfig, RMConfig, SFTConfig
from snippets.lab.preference import train_preference
from snippets.lab.reward_model import train_reward_model
from snippets.lab.rl import train_rl
from snippets.lab.runner import load_start
from snippets.lab.sft import continue_sft, train_sft

RESULTS = Path(__file__).resolve().parents[2] / "results" / "lab"


@pytest.fixture(scope="module")
def start():
    return load_start(RESULTS)


def test_sft_tiny_model_learns():
    cfg = SFTConfig(steps=150, batch_size=64, eval_every=150, model=ModelConfig(1, 2, 32))
    _, rows = train_sft(cfg)
    first = sum(r["loss"] for r in rows[:10]) / 10
    last = sum(r["loss"] for r in rows[-10:]) / 10
    assert first > 2.0  # about log(13) = 2.56 at random initialisation
    assert last < first - 0.6


def test_sft_control_stays_on_plateau(start):
    cfg = SFTConfig(steps=20, batch_size=256, eval_every=10)
    _, rows = continue_sft(start, cfg)
    accs = [r["heldout_acc"] for r in rows if "heldout_acc" in r]
    assert max(accs) < 0.5


@pytest.mark.parametrize("algo", ["reinforce", "rloo", "reinforce_pp", "ppo", "grpo"])
def test_rl_improves_heldout_accuracy(start, algo):
    cfg = RLConfig(algo=algo, steps=5, prompts=32, group=8, eval_every=5, lr=1e-3)
    _, rows = train_rl(cfg, start)
    assert rows[-1]["heldout_acc"] > rows[0]["heldout_acc"] + 0.1
    assert rows[-1]["kl_ref"] > 0.0


@pytest.mark.parametrize("algo", ["dpo", "ipo"])
def test_preference_improves_heldout_accuracy(start, algo):
    beta = 2.0 if algo == "dpo" else 0.5
    cfg = PrefConfig(
        algo=algo, steps=10, pair_prompts=128, batch_size=32, beta=beta, lr=1e-4, eval_every=10
    )
    _, rows = train_preference(cfg, start)
    assert rows[-1]["heldout_acc"] > rows[0]["heldout_acc"] + 0.1


def test_reward_model_learns_and_rl_raises_its_score(start):
    rm, rows = train_reward_model(RMConfig(pair_prompts=256, steps=40, batch_size=32), start)
    assert rows[0]["heldout_pair_acc"] == 0.5  # zero head: every pair is a tie
    assert rows[-1]["heldout_pair_acc"] > 0.65
    rm.eval()
    cfg = RLConfig(algo="grpo", reward="model", steps=4, prompts=16, group=8, eval_every=4, lr=1e-3)
    _, rl_rows = train_rl(cfg, start, reward_model=rm)
    assert rl_rows[-1]["reward"] > rl_rows[1]["reward"]


def test_same_seed_same_numbers(start):
    cfg = RLConfig(algo="ppo", steps=2, prompts=8, group=4, eval_every=2)
    a = train_rl(cfg, start)[1]
    b = train_rl(cfg, start)[1]
    strip = [{k: v for k, v in r.items() if k != "wall_s"} for r in a]
    assert strip == [{k: v for k, v in r.items() if k != "wall_s"} for r in b]
    assert torch.get_num_threads() == 1


def test_ratio_is_exactly_one_before_the_first_update_at_any_temperature(start):
    from snippets.lab.policy import policy_logprobs, rollout
    from snippets.lab.task import sample_problems

    g = torch.Generator().manual_seed(0)
    ro = rollout(start, sample_problems(16, g).repeat_interleave(4, 0), 0.7, g)
    tempered = policy_logprobs(start, ro.seq, ro.mask, temperature=0.7)
    assert torch.equal(tempered, ro.logprobs)  # log π_θ = log π_old exactly
    untempered = policy_logprobs(start, ro.seq, ro.mask)  # the old mismatch
    assert (untempered - ro.logprobs).abs().max() > 0.05
    # through the training loop: one minibatch, so every ratio is taken before any update
    cfg = RLConfig(algo="grpo", steps=1, prompts=16, group=4, minibatches=1, temperature=0.7)
    _, rows = train_rl(cfg, start)
    assert rows[1]["ratio_mean"] == 1.0 and rows[1]["ratio_max"] == 1.0
    assert rows[1]["clip_frac"] == 0.0
