"""Stage 3: online RL from the SFT checkpoint with the verifier's reward (or a learned one).

One loop serves five algorithms; they differ only in the advantage and the loss, both taken
from ``snippets.rl``. Every step samples ``P`` prompts x ``G`` responses (the same number of
samples for every algorithm), scores them, and takes ``epochs x minibatches`` optimizer steps.

| Algorithm    | Advantage (snippets.rl)                 | KL to π_ref       | Loss             |
|--------------|-----------------------------------------|-------------------|------------------|
| reinforce    | r − batch mean                          | in the reward     | reinforce_loss   |
| rloo         | rloo_advantages (G − 1 siblings)        | in the reward     | reinforce_loss   |
| reinforce_pp | reinforce_pp_advantages (batch-whitened)| per-token reward  | ppo_policy_loss  |
| ppo          | gae + learned critic, whitened          | per-token reward  | + ppo_value_loss |
| grpo         | grpo_advantages (group mean and std)    | in the loss (k3)  | grpo_loss        |

| Name          | Shape      | Meaning                                          |
|---------------|------------|--------------------------------------------------|
| rewards       | (B,)       | B = P·G rewards of the samples                   |
| logprobs      | (B, 5)     | log π_θ of the sampled tokens                    |
| old / ref     | (B, 5)     | log π_old (rollout time) and log π_ref (SFT)     |
| token_rewards | (B, 5)     | −β (log π_old − log π_ref), + r at the last token |
| values        | (B, 5)     | PPO critic V(s_t)                                |
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable

import torch
from torch import nn

from snippets._checks import check_float, check_interval, check_mask, check_ndim, check_shape
from snippets.lab.config import RLConfig
from snippets.lab.policy import (
    Rollout,
    Timer,
    evaluate,
    hidden_states,
    policy_logprobs,
    rollout,
)
from snippets.lab.task import PROMPT_LEN, RESPONSE_LEN, sample_problems, verify
from snippets.pytorch.gpt import GPT
from snippets.rl import (
    gae,
    grpo_advantages,
    grpo_loss,
    masked_whiten,
    ppo_policy_loss,
    ppo_value_loss,
    reinforce_loss,
    reinforce_pp_advantages,
    rloo_advantages,
)

__all__ = ["DEFAULT_AGGREGATION", "Critic", "train_rl"]

Row = dict[str, float]
DEFAULT_AGGREGATION = {
    "reinforce": "seq-mean-token-sum",
    "rloo": "seq-mean-token-sum",
    "reinforce_pp": "token-mean",
    "ppo": "token-mean",
    "grpo": "seq-mean-token-mean",
}


class Critic(nn.Module):
    """PPO's value model: a copy of the SFT trunk plus a scalar head. (B, 13) -> (B, 5).

    V(s_t) is read at the position that predicts response token t (it has seen x, y_<t).
    """

    def __init__(self, start: GPT) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(start)
        self.head = nn.Linear(start.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        h = hidden_states(self.trunk, seq)[:, PROMPT_LEN - 1 : -1]  # (B, 5, d)
        return self.head(h).squeeze(-1)  # (B, 5)


def _check_batch(rewards: torch.Tensor, per_token: dict[str, torch.Tensor]) -> int:
    """``rewards`` (B,) float and every ``per_token`` tensor (B, 5) float; returns B."""
    check_ndim("rewards", rewards, 1, "(B,)")
    check_float("rewards", rewards)
    B = rewards.shape[0]
    for name, x in per_token.items():
        check_shape(name, x, (B, RESPONSE_LEN), "(B, 5)")
        check_float(name, x)
    return B


# --8<-- [start:token-rewards]
def token_rewards(
    rewards: torch.Tensor, kl: torch.Tensor, mask: torch.Tensor, beta: float
) -> torch.Tensor:
    """r_t = −β · (log π_old − log π_ref)_t, plus the outcome reward at the last valid token.

    | Argument    | Shape  | Meaning                                  |
    |-------------|--------|------------------------------------------|
    | rewards     | (B,)   | outcome reward of each response          |
    | kl          | (B, 5) | log π_old − log π_ref per token (k1)     |
    | mask        | (B, 5) | valid response tokens                    |
    | **returns** | (B, 5) | per-token rewards, 0 at padding          |
    """
    B = _check_batch(rewards, {"kl": kl})
    mask = check_mask("mask", mask, (B, RESPONSE_LEN), "(B, 5)")
    beta = check_interval("beta", beta, 0.0, math.inf)
    last = mask.long().cumsum(1).argmax(1)  # (B,) index of the last valid token
    per_token = (-beta * kl).masked_fill(~mask, 0.0)  # (B, 5)
    return per_token.scatter_add(1, last[:, None], rewards[:, None])  # (B, 5)


# --8<-- [end:token-rewards]


# --8<-- [start:advantages]
def advantages(
    cfg: RLConfig,
    ro: Rollout,
    rewards: torch.Tensor,
    ref: torch.Tensor,
    values: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Advantages (B,) or (B, 5), and PPO's value targets (B, 5) (None otherwise)."""
    P, G = cfg.prompts, cfg.group
    _check_batch(rewards, {"ref": ref} if values is None else {"ref": ref, "values": values})
    check_shape("rewards", rewards, (P * G,), "(B,) with B = prompts x group")
    kl = (ro.logprobs - ref).masked_fill(~ro.mask, 0.0)  # (B, 5) k1 per token
    # the KL penalty folded into a sequence reward: r − β Σ_t (log π_old − log π_ref)
    shaped = rewards - cfg.beta * kl.sum(1)  # (B,)
    if cfg.algo == "reinforce":
        return shaped - shaped.mean(), None  # (B,): baseline = batch mean
    if cfg.algo == "rloo":
        return rloo_advantages(shaped.view(P, G)).flatten(), None  # (B,)
    if cfg.algo == "grpo":  # KL goes in the loss instead
        return grpo_advantages(rewards.view(P, G)).flatten(), None  # (B,)
    per_token = token_rewards(rewards, kl, ro.mask, cfg.beta)  # (B, 5)
    if cfg.algo == "reinforce_pp":
        return reinforce_pp_advantages(per_token, ro.mask, cfg.gamma), None  # (B, 5)
    if values is None:
        raise ValueError("values (PPO's critic values, shape (B, 5)) are required for ppo")
    adv, returns = gae(per_token, values, ro.mask, cfg.gamma, cfg.lam)  # (B, 5), (B, 5)
    return masked_whiten(adv, ro.mask), returns


# --8<-- [end:advantages]


def _score(cfg: RLConfig, ro: Rollout, reward_model: nn.Module | None) -> torch.Tensor:
    if cfg.reward == "model":
        if reward_model is None:
            raise ValueError("reward='model' needs a trained reward model")
        with torch.no_grad():
            return reward_model(ro.seq, ro.mask)  # (B,)
    return verify(ro.problems, ro.responses, partial=cfg.reward == "partial")  # (B,)


def train_rl(
    cfg: RLConfig,
    start: GPT,
    reward_model: nn.Module | None = None,
    on_step: Callable[[int], None] | None = None,
) -> tuple[GPT, list[Row]]:
    """Train a copy of ``start`` (also the frozen reference) with ``cfg.algo``."""
    agg = cfg.aggregation or DEFAULT_AGGREGATION[cfg.algo]
    policy, reference = copy.deepcopy(start), copy.deepcopy(start).eval()
    params = list(policy.parameters())
    critic = Critic(start) if cfg.algo == "ppo" else None
    if critic is not None:
        params += list(critic.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(cfg.seed)
    timer = Timer()  # the step-0 evaluation below is inside it (about 0.1 s); later ones are not
    rows: list[Row] = [{"step": 0, "samples": 0, "wall_s": 0.0, "heldout_acc": evaluate(start)}]
    B = cfg.prompts * cfg.group
    for step in range(1, cfg.steps + 1):
        problems = sample_problems(cfg.prompts, g).repeat_interleave(cfg.group, 0)  # (B, 2)
        ro = rollout(policy, problems, cfg.temperature, g)
        with torch.no_grad():
            # π_ref at the rollout's temperature, like π_old and π_θ (a no-op at T = 1)
            ref = policy_logprobs(reference, ro.seq, ro.mask, cfg.temperature)  # (B, 5)
            old_values = critic(ro.seq).masked_fill(~ro.mask, 0.0) if critic else None
        rewards = _score(cfg, ro, reward_model)  # (B,)
        adv, returns = advantages(cfg, ro, rewards, ref, old_values)
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.epochs):
            order = torch.randperm(B, generator=g)  # (B,)
            for mb in order.chunk(cfg.minibatches):
                policy.train()
                seq, mask = ro.seq[mb], ro.mask[mb]  # (b, 13), (b, 5)
                logp = policy_logprobs(policy, seq, mask, cfg.temperature)  # (b, 5)
                old, a = ro.logprobs[mb], adv[mb]  # (b, 5), (b,) or (b, 5)
                if cfg.algo in ("reinforce", "rloo"):
                    # ℓ = −A · log π_θ(y), the score-function estimator
                    loss, st = reinforce_loss(logp, a, mask, agg), {}
                elif cfg.algo == "grpo":
                    loss, st = grpo_loss(logp, old, ref[mb], a, mask, cfg.clip_eps, cfg.beta, agg)
                else:
                    loss, st = ppo_policy_loss(logp, old, a, mask, cfg.clip_eps, aggregation=agg)
                    if critic is not None:
                        v = critic(seq)  # (b, 5)
                        v_loss = ppo_value_loss(v, old_values[mb], returns[mb], mask)
                        loss = loss + cfg.vf_coef * v_loss
                        st["value_loss"] = v_loss.item()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                st["loss"] = loss.item()
                for key, value in st.items():
                    stats.setdefault(key, []).append(value)
        true_reward = verify(ro.problems, ro.responses)  # (B,) exact match of the samples
        row: Row = {
            "step": step,
            "samples": step * B,
            "reward": rewards.mean().item(),
            "true_reward": true_reward.mean().item(),
            "kl_ref": (ro.logprobs - ref).sum(1).mean().item(),  # k1 of KL(π_old ‖ π_ref)
            "resp_len": ro.mask.sum(1).float().mean().item(),
            "entropy": ro.entropy,
        }
        for key in ("loss", "clip_frac", "ratio_mean", "ratio_max", "approx_kl", "value_loss"):
            if key in stats:
                fn = max if key == "ratio_max" else (lambda v: sum(v) / len(v))
                row[key] = fn(stats[key])
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with timer.paused():
                row["heldout_acc"] = evaluate(policy)
        row["wall_s"] = timer.seconds()
        rows.append(row)
        if on_step is not None:
            on_step(step)
    return policy, rows
