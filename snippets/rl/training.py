"""One tiny training loop per algorithm family, all on the toy token bandit (``toy.py``).

Each loop prints the policy's exact expected reward as it learns and returns that history.
They are the shortest complete examples of how the pieces fit: sample → score → advantage
→ loss → step. Seeded, CPU, a fraction of a second each.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from snippets.rl.advantages import grpo_advantages, masked_whiten, rloo_advantages
from snippets.rl.dpo import dpo_loss
from snippets.rl.gae import gae
from snippets.rl.grpo import grpo_loss
from snippets.rl.logprobs import sequence_logprobs
from snippets.rl.policy_gradient import reinforce_loss
from snippets.rl.ppo import ppo_policy_loss, ppo_value_loss
from snippets.rl.toy import (
    SEQ_LEN,
    TablePolicy,
    expected_reward,
    preference_pairs,
    sample,
    sequence_reward,
    token_rewards,
)

__all__ = ["ToyArgs", "train_dpo", "train_grpo", "train_ppo", "train_reinforce", "train_rloo"]


@dataclass
class ToyArgs:
    """Settings of the toy training loops."""

    steps: int = 60
    """optimizer steps (PPO / GRPO: rollouts) per algorithm"""
    prompts: int = 4
    """P: groups sampled per step"""
    group: int = 8
    """G: responses per group (B = P · G)"""
    lr: float = 0.05
    """Adam learning rate"""
    seed: int = 0
    """seed of the sampling generator"""
    log_every: int = 20
    """print one line every this many steps"""
    inner_epochs: int = 2
    """PPO / GRPO: gradient steps on each rollout (what makes the ratio differ from 1)"""
    gamma: float = 1.0
    """PPO: discount"""
    lam: float = 0.95
    """PPO: GAE λ"""
    kl_beta: float = 0.04
    """GRPO: KL coefficient β (DeepSeekMath's value)"""
    dpo_beta: float = 0.1
    """DPO: β"""
    dpo_pairs: int = 256
    """DPO: size of the synthetic preference dataset"""


def _log(name: str, step: int, reward: float, **extra: float) -> None:
    details = "".join(f"  {key} {value:.3f}" for key, value in extra.items())
    print(f"[{name}] step {step:3d}  reward {reward:.3f}{details}")


def _setup(args: ToyArgs) -> tuple[TablePolicy, torch.optim.Optimizer, torch.Generator]:
    torch.manual_seed(args.seed)
    policy = TablePolicy()
    return (
        policy,
        torch.optim.Adam(policy.parameters(), lr=args.lr),
        torch.Generator().manual_seed(args.seed),
    )


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()


# --8<-- [start:reinforce]
def train_reinforce(args: ToyArgs) -> list[float]:
    """Plain REINFORCE: the reward itself is the advantage (no baseline)."""
    policy, optimizer, gen = _setup(args)
    batch, history = args.prompts * args.group, []
    mask = torch.ones(batch, SEQ_LEN)  # (B, T) every token is a response token
    for step in range(args.steps + 1):
        if step % args.log_every == 0:
            history.append(expected_reward(policy))
            _log("reinforce", step, history[-1])
        if step == args.steps:
            break
        tokens = sample(policy, batch, gen)  # (B, T)
        rewards = sequence_reward(tokens)  # (B,)
        _step(optimizer, reinforce_loss(policy.logprobs(tokens), rewards, mask))
    return history


# --8<-- [end:reinforce]


# --8<-- [start:rloo]
def train_rloo(args: ToyArgs) -> list[float]:
    """RLOO: G responses per group, each baselined by the mean of the other G − 1."""
    policy, optimizer, gen = _setup(args)
    batch, history = args.prompts * args.group, []
    mask = torch.ones(batch, SEQ_LEN)  # (B, T)
    for step in range(args.steps + 1):
        if step % args.log_every == 0:
            history.append(expected_reward(policy))
            _log("rloo", step, history[-1])
        if step == args.steps:
            break
        tokens = sample(policy, batch, gen)  # (B, T), rows grouped as (P, G)
        rewards = sequence_reward(tokens).view(args.prompts, args.group)  # (P, G)
        advantages = rloo_advantages(rewards).reshape(-1)  # (B,)
        _step(optimizer, reinforce_loss(policy.logprobs(tokens), advantages, mask))
    return history


# --8<-- [end:rloo]


# --8<-- [start:grpo]
def train_grpo(args: ToyArgs) -> list[float]:
    """GRPO: group-normalised advantages, clipped ratio, β·k3 to the frozen initial policy."""
    policy, optimizer, gen = _setup(args)
    reference = copy.deepcopy(policy).requires_grad_(False)  # π_ref = the starting policy
    batch, history = args.prompts * args.group, []
    mask = torch.ones(batch, SEQ_LEN)  # (B, T)
    stats = {"kl": 0.0, "ratio_max": 1.0}
    for step in range(args.steps + 1):
        if step % args.log_every == 0:
            history.append(expected_reward(policy))
            _log("grpo", step, history[-1], kl=stats["kl"], ratio_max=stats["ratio_max"])
        if step == args.steps:
            break
        tokens = sample(policy, batch, gen)  # (B, T)
        rewards = sequence_reward(tokens).view(args.prompts, args.group)  # (P, G)
        advantages = grpo_advantages(rewards).reshape(-1)  # (B,)
        with torch.no_grad():
            old_logprobs = policy.logprobs(tokens)  # (B, T) π_old = the sampling policy
            ref_logprobs = reference.logprobs(tokens)  # (B, T)
        for _ in range(args.inner_epochs):
            logprobs = policy.logprobs(tokens)  # (B, T)
            loss, stats = grpo_loss(
                logprobs, old_logprobs, ref_logprobs, advantages, mask, beta=args.kl_beta
            )
            _step(optimizer, loss)
    return history


# --8<-- [end:grpo]


# --8<-- [start:ppo]
def train_ppo(args: ToyArgs) -> list[float]:
    """PPO with a critic: per-token rewards, GAE, clipped policy and value losses."""
    policy, _, gen = _setup(args)
    value = nn.Parameter(torch.zeros(SEQ_LEN))  # (T,) V(s_t): depends only on t here
    optimizer = torch.optim.Adam([*policy.parameters(), value], lr=args.lr)
    batch, history = args.prompts * args.group, []
    mask = torch.ones(batch, SEQ_LEN)  # (B, T)
    stats = {"ratio_max": 1.0}
    for step in range(args.steps + 1):
        if step % args.log_every == 0:
            history.append(expected_reward(policy))
            _log("ppo", step, history[-1], ratio_max=stats["ratio_max"])
        if step == args.steps:
            break
        tokens = sample(policy, batch, gen)  # (B, T)
        with torch.no_grad():
            old_logprobs = policy.logprobs(tokens)  # (B, T)
            old_values = value.expand(batch, -1).clone()  # (B, T)
        advantages, returns = gae(token_rewards(tokens), old_values, mask, args.gamma, args.lam)
        advantages = masked_whiten(advantages, mask.bool())  # (B, T) verl / CleanRL norm_adv
        for _ in range(args.inner_epochs):
            policy_loss, stats = ppo_policy_loss(
                policy.logprobs(tokens), old_logprobs, advantages, mask
            )
            value_loss = ppo_value_loss(
                value.expand(batch, -1), old_values, returns, mask, clip_eps=0.2
            )
            _step(optimizer, policy_loss + value_loss)
    return history


# --8<-- [end:ppo]


# --8<-- [start:dpo]
def train_dpo(args: ToyArgs) -> tuple[list[float], list[float]]:
    """DPO on a fixed synthetic preference dataset; returns (reward, accuracy) histories.

    Accuracy is the share of pairs whose implicit reward ranks chosen above rejected; it
    starts at 0 because at π_θ = π_ref every implicit reward is exactly 0 (a tie).
    """
    policy, optimizer, gen = _setup(args)
    reference = copy.deepcopy(policy).requires_grad_(False)
    chosen, rejected = preference_pairs(args.dpo_pairs, gen)  # (N, T) each
    mask = torch.ones(args.dpo_pairs, SEQ_LEN)  # (N, T)
    with torch.no_grad():
        ref_chosen = sequence_logprobs(reference(args.dpo_pairs), chosen, mask)  # (N,)
        ref_rejected = sequence_logprobs(reference(args.dpo_pairs), rejected, mask)  # (N,)
    rewards, accuracies = [], []
    for step in range(args.steps + 1):
        logits = policy(args.dpo_pairs)  # (N, T, V)
        loss, chosen_rewards, rejected_rewards = dpo_loss(
            sequence_logprobs(logits, chosen, mask),
            sequence_logprobs(logits, rejected, mask),
            ref_chosen,
            ref_rejected,
            beta=args.dpo_beta,
        )
        if step % args.log_every == 0:
            rewards.append(expected_reward(policy))
            accuracies.append(float((chosen_rewards > rejected_rewards).float().mean()))
            _log("dpo", step, rewards[-1], accuracy=accuracies[-1], loss=float(loss.detach()))
        if step == args.steps:
            break
        _step(optimizer, loss)
    return rewards, accuracies


# --8<-- [end:dpo]
