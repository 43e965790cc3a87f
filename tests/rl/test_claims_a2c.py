"""Claims of the A2C page: the whole first-minibatch PPO loss (clipped policy term, clipped
value term, entropy bonus) has the same gradient as the A2C loss, and the entropy bonus's
sign makes a gradient step raise the entropy."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.aggregation import masked_mean
from snippets.rl.gae import gae
from snippets.rl.logprobs import entropy_from_logits, token_logprobs
from snippets.rl.policy_gradient import reinforce_loss
from snippets.rl.ppo import ppo_policy_loss, ppo_value_loss


def _setup():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 6, generator=g, dtype=torch.float64)  # (B, T, V)
    tokens = torch.randint(0, 6, (3, 5), generator=g)
    values = torch.randn(3, 5, generator=g, dtype=torch.float64)
    rewards = torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]]).bool()
    return logits, tokens, values, rewards, mask


def test_first_ppo_minibatch_has_the_a2c_gradient() -> None:
    logits0, tokens, values0, rewards, mask = _setup()
    advantages, returns = gae(rewards, values0, mask, gamma=1.0, lam=1.0)
    c_v, c_e = 0.5, 0.01
    grads = []
    for algo in ("a2c", "ppo"):
        logits = logits0.clone().requires_grad_(True)
        values = values0.clone().requires_grad_(True)
        logprobs = token_logprobs(logits, tokens)
        entropy = masked_mean(entropy_from_logits(logits), mask)
        if algo == "a2c":
            pg = reinforce_loss(logprobs, advantages, mask, "token-mean")
            vf = ppo_value_loss(values, values0, returns, mask)  # ½ (V − R)², no clip
        else:  # first minibatch: π_θ = π_old and V_φ = V_old
            pg, _ = ppo_policy_loss(logprobs, logprobs.detach(), advantages, mask, clip_eps=0.2)
            vf = ppo_value_loss(values, values0, returns, mask, clip_eps=0.2)
        loss = pg + c_v * vf - c_e * entropy
        grads.append(torch.autograd.grad(loss, (logits, values)))
    assert_close(grads[0][0], grads[1][0])
    assert_close(grads[0][1], grads[1][1])
    assert grads[0][0].abs().sum() > 0 and grads[0][1].abs().sum() > 0


def test_entropy_bonus_step_raises_entropy() -> None:
    logits0, _, _, _, mask = _setup()
    logits = logits0.clone().requires_grad_(True)
    before = masked_mean(entropy_from_logits(logits), mask)
    (-0.01 * before).backward()  # the −c_e H term of the loss alone
    with torch.no_grad():
        after = masked_mean(entropy_from_logits(logits - 10.0 * logits.grad), mask)
    assert after > before


def test_undetached_advantage_pushes_the_critic_up() -> None:
    # A = R − V with V still in the graph: the policy term −A log π gives V the gradient
    # log π < 0, so a descent step raises V whatever the return (the "What goes wrong" item).
    logits0, tokens, values0, rewards, mask = _setup()
    logprobs = token_logprobs(logits0, tokens)  # (B, T), all < 0
    values = values0.clone().requires_grad_(True)
    per_token = -(rewards - values) * logprobs  # −A log π with A not detached
    loss = (per_token * mask).sum() / mask.sum()  # token-mean
    (grad,) = torch.autograd.grad(loss, values)
    assert_close(grad[mask], (logprobs / mask.sum())[mask])
    assert (grad[mask] < 0).all()  # descent (V −= lr · grad) moves every V up
