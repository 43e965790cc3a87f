"""Claims of docs/lab/index.md, checked against the committed results and the task itself."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from snippets.lab.task import reference_answers

RESULTS = Path(__file__).resolve().parents[2] / "results" / "lab"
SUMMARY = json.loads((RESULTS / "summary.json").read_text())
RL = ["reinforce", "rloo", "reinforce_pp", "ppo", "grpo"]


def mean(run: str, key: str) -> float:
    return SUMMARY[run][key]["mean"]


def per_seed(run: str, key: str) -> list:
    return [json.loads(p.read_text()).get(key) for p in sorted(RESULTS.glob(f"{run}_seed*.json"))]


def rows(run: str, seed: int) -> list[dict[str, float]]:
    with (RESULTS / f"{run}_seed{seed}.csv").open() as f:
        return [{k: float(v) for k, v in r.items() if v != ""} for r in csv.DictReader(f)]


def test_no_carry_share_is_055_cubed():
    a, b = torch.meshgrid(torch.arange(1000), torch.arange(1000), indexing="ij")
    problems = torch.stack([a.flatten(), b.flatten()], 1)  # every problem
    right, _ = reference_answers(problems)
    noisy, _ = reference_answers(problems, torch.ones(len(problems), dtype=torch.bool))
    share = (right == noisy).all(1).double().mean().item()
    assert share == pytest.approx(0.55**3, abs=1e-12)
    assert round(share, 3) == 0.166


def test_every_run_has_three_seeds():
    for run in [*RL, "sft", "sft_control", "dpo", "ipo", "grpo_rm", "dpo_untuned"]:
        assert SUMMARY[run]["seeds"] == [0, 1, 2], run


def test_sft_plateaus_and_control_stays():
    start = per_seed("grpo", "start_heldout_acc")
    assert start == [0.31640625] * 3  # every RL run starts from seed 0's checkpoint: 31.6 %
    for run in ("sft", "sft_control"):
        assert 0.15 <= mean(run, "final_heldout_acc") <= 0.35, run
        assert SUMMARY[run]["best_heldout_acc"]["max"] < 0.45, run


def test_rl_beats_the_plateau_fast():
    for run in RL:
        assert SUMMARY[run]["final_heldout_acc"]["min"] > 0.98, run
        assert mean(run, "final_heldout_acc") > 0.99, run
        assert max(per_seed(run, "step_to_95")) <= 20, run
        assert 0.9 <= mean(run, "final_kl_ref") <= 1.2, run  # about 1 nat from the reference


def test_ppo_pays_for_its_critic_in_wall_clock():
    others = [mean(run, "wall_s") for run in RL if run != "ppo"]
    ratio = mean("ppo", "wall_s") / (sum(others) / len(others))
    assert ratio > 2.0  # "more than twice as long" in the committed run (timings are noisy)


def test_dpo_untuned_collapses_tuned_is_below_rl():
    assert mean("dpo_untuned", "final_heldout_acc") < 0.03
    assert 0.3 < mean("dpo_untuned", "best_heldout_acc") < 0.5  # "briefly helps"
    last = rows("dpo_untuned", 0)[-1]
    assert last["chosen_logp"] < -10 and last["rejected_logp"] < -20  # "tens of nats"
    for run in ("dpo", "ipo"):
        assert 0.9 <= mean(run, "final_heldout_acc") <= 0.95, run
        assert mean(run, "final_heldout_acc") < min(mean(r, "final_heldout_acc") for r in RL)


def test_reward_model_accuracy_and_over_optimisation():
    accs = per_seed("rm", "final_heldout_pair_acc")
    assert 0.78 <= min(accs) and max(accs) <= 0.925
    assert all(1400 <= n <= 1600 for n in per_seed("rm", "final_pairs"))
    assert 0.6 <= mean("grpo_rm", "best_heldout_acc") <= 0.75  # "about 70 % at best"
    assert SUMMARY["grpo_rm"]["final_heldout_acc"]["max"] == 0.0
    assert SUMMARY["grpo_rm"]["final_true_reward"]["max"] < 0.05
    for seed in range(3):
        r = rows("grpo_rm", seed)
        assert r[-1]["reward"] > r[1]["reward"] + 3  # the proxy keeps climbing
        assert r[-1]["kl_ref"] > 15


def test_high_learning_rate():
    assert mean("reinforce_highlr", "final_heldout_acc") < 0.85
    assert SUMMARY["reinforce_highlr"]["final_heldout_acc"]["std"] > 0.1
    assert mean("grpo_highlr", "final_heldout_acc") > 0.95


def test_aggregation_variants_indistinguishable():
    base = mean("grpo", "final_heldout_acc")
    for run in ("grpo_token_mean", "grpo_seq_sum_norm"):
        assert abs(mean(run, "final_heldout_acc") - base) < 0.01, run


def test_reward_hacking_lengthens_answers():
    for seed in range(3):
        r = rows("grpo_rm", seed)
        assert 4.0 <= r[1]["resp_len"] <= 4.2
        assert 4.55 <= r[-1]["resp_len"] <= 5.0
    # an answer that drops every carry never has four digits
    a, b = torch.meshgrid(torch.arange(1000), torch.arange(1000), indexing="ij")
    problems = torch.stack([a.flatten(), b.flatten()], 1)
    _, lengths = reference_answers(problems, torch.ones(len(problems), dtype=torch.bool))
    assert lengths.max().item() == 4  # at most 3 digits + the end token
    _, correct = reference_answers(problems)
    assert correct.double().mean().item() == pytest.approx(4.494395)  # "4.49 tokens"


def test_kl_term_on_the_verifier_and_on_the_reward_model():
    def tail(run: str, key: str) -> float:
        values = [sum(r[key] for r in rows(run, s)[-10:]) / 10 for s in range(3)]
        return sum(values) / 3

    assert abs(mean("grpo_kl0", "final_heldout_acc") - mean("grpo", "final_heldout_acc")) < 0.01
    assert 0.98 <= mean("grpo_kl0.5", "final_heldout_acc") < 0.99  # 98.8 %
    assert 0.4 <= mean("grpo_kl0.5", "final_kl_ref") <= 0.5  # 0.45 nats
    assert 1.7 <= tail("grpo_kl0.5", "entropy") / tail("grpo", "entropy") <= 2.5
    assert 0.7 <= tail("grpo_kl0.5", "true_reward") <= 0.8
    assert 0.85 <= tail("grpo", "true_reward") <= 0.95
    assert SUMMARY["grpo_rm_kl0.5"]["final_kl_ref"]["max"] < 3.0
    assert 25 <= mean("grpo_rm", "final_kl_ref") <= 35  # "about 30"
    assert 0.7 <= mean("grpo_rm_kl0.5", "best_heldout_acc") <= 0.78  # 74 %
    assert 0.35 <= mean("grpo_rm_kl0.5", "final_heldout_acc") <= 0.43  # 39 %


def test_tuning_grid_picks_the_defaults():
    sweep = json.loads((RESULTS / "pref_sweep" / "summary.json").read_text())
    for algo, chosen in (("dpo", "dpo_beta2.0_lr0.0001"), ("ipo", "ipo_beta0.25_lr0.0001")):
        finals = {k: v["final_heldout_acc"]["mean"] for k, v in sweep.items() if k[:3] == algo}
        assert len(finals) == 10
        assert max(finals, key=finals.get) == chosen
        # every learning rate of 1e-3 ends below 60 %, whatever β
        assert all(v < 0.6 for k, v in finals.items() if k.endswith("lr0.001"))


def test_rl_curves_track_each_other():
    def gap(run: str, seed: int) -> float:
        a = [r["true_reward"] for r in rows("grpo", seed) if "true_reward" in r]
        b = [r["true_reward"] for r in rows(run, seed) if "true_reward" in r]
        return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)

    for seed in range(3):
        for run in ("reinforce", "rloo", "reinforce_pp", "ppo"):
            assert gap(run, seed) < 0.016, (run, seed)  # "about 0.01"
        assert 0.11 < gap("grpo_kl0.5", seed) < 0.13  # "0.12"
    assert (0.8 * 0.2 / 256) ** 0.5 == pytest.approx(0.025)
    clip = [
        r["clip_frac"] for run in RL for s in range(3) for r in rows(run, s) if "clip_frac" in r
    ]
    assert 0 < max(clip) < 0.02  # "under 2 %"


def test_starting_policy_samples_the_right_answer_about_40_percent():
    # first GRPO batches (32 prompts each, sampled from the starting policy) and DPO's
    # step-0 check on 256 fresh prompts, over the three seeds
    batches = [rows("grpo", seed)[1]["true_reward"] for seed in range(3)]
    fresh = [rows("dpo", seed)[0]["true_reward"] for seed in range(3)]
    assert 0.38 <= sum(batches) / 3 <= 0.46
    assert 0.38 <= sum(fresh) / 3 <= 0.46


def test_untuned_dpo_ranks_training_pairs_while_collapsing():
    for seed in range(3):
        last = rows("dpo_untuned", seed)[-10:]
        assert sum(r["pref_acc"] for r in last) / 10 > 0.9
