# %% [markdown]
# # Lab: learning curves
#
# The curves of the [post-training lab](../../lab/): a tiny GPT trained on noisy addition
# demonstrations (SFT), then improved by each post-training algorithm from the same
# checkpoint, three seeds each. This notebook trains nothing: it **reads the committed
# results** in `results/lab/` (written by `python -m snippets.lab all`) and plots them. A
# line is the mean over seeds; the shaded band spans the lowest to the highest seed (a range
# of three runs, not a confidence interval).
# Every RL step uses 32 prompts x 8 samples = 256 samples, for every algorithm; DPO and IPO
# sample the same number once, up front, to build their pairs.

# %%
import csv
import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

root = Path.cwd()
while not (root / "results" / "lab").is_dir():  # the build runs from docs/notebooks/
    root = root.parent
RESULTS = root / "results" / "lab"


def load(run: str) -> list[list[dict[str, float]]]:
    """Every seed's CSV of one run, as rows of floats (empty cells left out)."""
    seeds = []
    for path in sorted(RESULTS.glob(f"{run}_seed*.csv")):
        with path.open() as f:
            seeds.append(
                [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]
            )
    return seeds


def curve(seeds, key: str, x: str = "step"):
    """x values and the (seeds, points) matrix of ``key`` on the rows that have it."""
    xs = [np.array([r[x] for r in rows if key in r]) for rows in seeds]
    ys = [np.array([r[key] for r in rows if key in r]) for rows in seeds]
    n = min(len(y) for y in ys)
    return np.mean([x_[:n] for x_ in xs], axis=0), np.array([y[:n] for y in ys])


def band(ax, seeds, key, label, x="step", **style):
    xs, ys = curve(seeds, key, x)
    (line,) = ax.plot(xs, ys.mean(0), label=label, **style)
    ax.fill_between(xs, ys.min(0), ys.max(0), color=line.get_color(), alpha=0.15)


summary = json.loads((RESULTS / "summary.json").read_text())
ALGOS = ["reinforce", "rloo", "reinforce_pp", "ppo", "grpo", "dpo", "ipo", "sft_control"]
COLOR = {name: f"C{i}" for i, name in enumerate(ALGOS)}  # one colour per run in every plot
runs = {name: load(name) for name in ALGOS}
print(f"{'run':<14}{'final held-out EM':>20}{'s to 95 %':>12}")
for name in ALGOS:
    s = summary[name]
    em, to95 = s["final_heldout_acc"], s.get("wall_s_to_95", {"n": 0})
    reached = f"{to95['mean']:.1f}" if to95["n"] == len(s["seeds"]) else f"{to95['n']}/3 seeds"
    print(f"{name:<14}{100 * em['mean']:>13.1f} ± {100 * em['std']:4.1f}{reached:>12}")

# %% [markdown]
# ## From random to the starting policy (SFT)
#
# Cross-entropy on the answer tokens falls and levels off at 0.21 to 0.24 nats per token,
# above the floor that the noise of the demonstrations sets (about 0.14: only a model that
# fitted them perfectly would reach it); held-out exact match under greedy decoding climbs,
# then wanders on a plateau well below 100 %: with 60 % of demonstrations dropping their
# carries, "drop the carry" is the likeliest answer, and more of the same data cannot change
# that. The RL runs all start from seed 0's checkpoint.

# %%
sft = load("sft")
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.4))
for i, rows in enumerate(sft):
    steps = [r["step"] for r in rows]
    loss = np.convolve([r["loss"] for r in rows], np.ones(25) / 25, mode="same")
    ax1.plot(steps[12:-12], loss[12:-12], label=f"seed {i}")
    ev = [r for r in rows if "heldout_acc" in r]
    ax2.plot([r["wall_s"] for r in ev], [r["heldout_acc"] for r in ev], label=f"seed {i}")
ax1.set_xlabel("SFT step")
ax1.set_ylabel("answer-token cross-entropy (25-step mean)")
ax2.set_xlabel("wall-clock seconds (1 thread)")
ax2.set_ylabel("held-out exact match (greedy)")
ax2.legend()
fig.tight_layout()

# %% [markdown]
# ## Held-out exact match, per step and per second
#
# Left: against rollout steps, i.e. samples (256 per step). Right: against wall-clock
# seconds of one thread, evaluation excluded except the one before the first step (about
# 0.1 s); PPO pays for its critic there (a second network to run and train), DPO and IPO pay
# up front to sample their pairs.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
for name in ALGOS:
    style = {"ls": "--"} if name in ("dpo", "ipo", "sft_control") else {}
    band(ax1, runs[name], "heldout_acc", name, color=COLOR[name], **style)
    band(ax2, runs[name], "heldout_acc", name, x="wall_s", color=COLOR[name], **style)
ax1.set_xlabel("step (x 256 samples)")
ax1.set_ylabel("held-out exact match (greedy)")
ax2.set_xlabel("wall-clock seconds (1 thread, later evaluations excluded)")
ax2.legend(fontsize=8, loc="lower right")
fig.tight_layout()

# %% [markdown]
# ## What the training batches show
#
# Mean verifier reward of the sampled responses (temperature 1, so below the greedy
# accuracy), KL to the SFT reference (k1 estimate summed over the response), response length
# in tokens (answer digits + end token), PPO-style clip fraction, and the mean next-token
# entropy of the samples. REINFORCE and RLOO use no ratio, so they have no clip fraction.
# The five algorithms share each seed's prompts and sampling random numbers, and differ little
# on this task, so their curves mostly lie on top of each other (the lab page explains why).

# %%
RL = ["reinforce", "rloo", "reinforce_pp", "ppo", "grpo"]
panels = [
    ("true_reward", "sampled exact match (reward)"),
    ("kl_ref", "KL to reference (nats)"),
    ("resp_len", "response length (tokens)"),
    ("clip_frac", "clip fraction"),
    ("entropy", "entropy (nats / token)"),
    ("ratio_max", "max ratio in the batch"),
]
fig, axes = plt.subplots(2, 3, figsize=(13, 6.5))
for ax, (key, title) in zip(axes.flat, panels, strict=True):
    for name in RL:
        if any(key in r for r in runs[name][0]):
            band(ax, runs[name], key, name, color=COLOR[name])
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step")
axes.flat[0].legend(fontsize=8)
axes.flat[5].set_yscale("log")
fig.tight_layout()

# %% [markdown]
# ## GRPO's loss aggregation
#
# The same GRPO with the three aggregation modes of `snippets.rl.aggregate`: the paper's
# per-sequence mean of per-token means, DAPO's token mean, Dr. GRPO's fixed-length
# normaliser. Responses here are 2 to 5 tokens long, so the length bias that separates them
# on long reasoning traces has little room to act.

# %%
fig, ax = plt.subplots(figsize=(6, 3.6))
for name, label in [
    ("grpo", "seq-mean-token-mean"),
    ("grpo_token_mean", "token-mean"),
    ("grpo_seq_sum_norm", "seq-mean-token-sum-norm"),
]:
    band(ax, load(name), "heldout_acc", label)
ax.set_xlabel("step")
ax.set_ylabel("held-out exact match")
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## What the KL coefficient does
#
# GRPO against the verifier with β = 0, 0.01 (every other run) and 0.5. The greedy accuracy
# barely moves; what β changes is how far the policy goes from the reference and how sharp
# it gets: at β = 0.5 the KL stays near half a nat, the entropy stays higher and
# temperature-1 samples are right less often.

# %%
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
keys = {
    "heldout_acc": "held-out exact match (greedy)",
    "kl_ref": "KL to reference (nats)",
    "entropy": "entropy (nats / token)",
    "true_reward": "sampled exact match (temperature 1)",
}
for name, label in [("grpo_kl0", "β = 0"), ("grpo", "β = 0.01"), ("grpo_kl0.5", "β = 0.5")]:
    seeds = load(name)
    for ax, (key, title) in zip(axes, keys.items(), strict=True):
        band(ax, seeds, key, label)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("step")
axes[0].legend(fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## Reward-model over-optimisation
#
# GRPO against the learned Bradley-Terry reward model instead of the verifier (evaluated
# every 2 steps), with β = 0.01 and β = 0.5, next to the same GRPO against the verifier.
# The reward model's score keeps climbing; the true reward rises for a few steps, then
# collapses as the policy finds responses the reward model overrates, and the responses get
# longer than correct answers are (the logs keep their length, not their text). The larger β
# slows the collapse.

# %%
runs_rm = [
    ("grpo_rm", "reward model, β = 0.01"),
    ("grpo_rm_kl0.5", "reward model, β = 0.5"),
    ("grpo", "verifier, β = 0.01"),
]
fig, axes = plt.subplots(1, 4, figsize=(15, 3.4))
for name, label in runs_rm:
    seeds = load(name)
    if name != "grpo":
        band(axes[0], seeds, "reward", label)
    for ax, key in zip(axes[1:], ["true_reward", "kl_ref", "resp_len"], strict=True):
        band(ax, seeds, key, label)
axes[0].set_ylabel("reward-model score of the samples")
axes[1].set_ylabel("true reward (verifier) of the samples")
axes[2].set_ylabel("KL to reference (nats)")
axes[3].set_ylabel("response length (tokens)")
axes[1].legend(fontsize=8)
for ax in axes:
    ax.set_xlabel("step")
fig.tight_layout()
rm_acc = [
    json.loads((RESULTS / f"rm_seed{s}.json").read_text())["final_heldout_pair_acc"]
    for s in summary["grpo_rm"]["seeds"]
]
print("reward model held-out pairwise accuracy per seed:", [round(a, 3) for a in rm_acc])

# %% [markdown]
# ## DPO: tuned and untuned
#
# Offline DPO with β = 0.1 and learning rate 1e-3 (not tuned for this task) against the
# tuned β = 2, learning rate 1e-4. The untuned run pushes the rejected log-probability down
# and drags the chosen one with it (the rejected falls by 40 to 46 nats, the chosen by 15 to
# 22), the probability goes to responses that are in neither, and accuracy collapses. The
# tuned run raises the chosen log-probability a little and lowers the rejected one by under
# 2 nats. The tuning grid follows.

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
for name, label in [("dpo", "tuned"), ("dpo_untuned", "untuned")]:
    seeds = load(name)
    band(ax1, seeds, "heldout_acc", f"DPO {label}")
    band(ax2, seeds, "chosen_logp", f"{label}: log π(chosen)")
    band(ax2, seeds, "rejected_logp", f"{label}: log π(rejected)", ls="--")
ax1.set_ylabel("held-out exact match")
ax2.set_ylabel("summed log-prob of the batch's pairs")
for ax in (ax1, ax2):
    ax.set_xlabel("step")
    ax.legend(fontsize=8)
fig.tight_layout()

sweep = json.loads((RESULTS / "pref_sweep" / "summary.json").read_text())
print(f"{'run (seed 0)':<24}{'final EM':>9}{'best EM':>9}{'final KL':>10}")
for name, s in sorted(sweep.items()):
    print(
        f"{name:<24}{100 * s['final_heldout_acc']['mean']:>9.1f}"
        f"{100 * s['best_heldout_acc']['mean']:>9.1f}{s['final_kl_ref']['mean']:>10.2f}"
    )
