"""Claims of the GRPO page: the loss is PPO's surrogate with one advantage per response plus
β·k3 per token, averaged per sequence then over sequences; equal rewards teach nothing; the
default β is DeepSeekMath's 0.04; and the constant / padding / overflow rules hold."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import grpo_advantages
from snippets.rl.aggregation import aggregate
from snippets.rl.grpo import grpo_loss
from snippets.rl.kl import kl_k1, kl_k3
from snippets.rl.ppo import ppo_policy_loss

MASK = torch.tensor(
    [[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]]
)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    old = -3 * torch.rand(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    logprobs = old + 0.2 * torch.randn(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    ref = old + 0.2 * torch.randn(4, 6, generator=g, dtype=torch.float64)  # (B, T)
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)  # one group of G = 4
    advantages = grpo_advantages(rewards).reshape(-1)  # (B,)
    return logprobs, old, ref, advantages


def test_default_beta_is_deepseekmath_value() -> None:
    params = inspect.signature(grpo_loss).parameters
    assert params["beta"].default == 0.04
    assert params["clip_eps"].default == 0.2
    assert params["aggregation"].default == "seq-mean-token-mean"
    assert params["kl_estimator"].default == "k3"


def test_beta_zero_is_ppo_with_broadcast_advantages() -> None:
    logprobs, old, _, adv = _batch()
    ours, stats = grpo_loss(logprobs, old, None, adv, MASK, beta=0.0)
    ppo, ppo_stats = ppo_policy_loss(
        logprobs, old, adv[:, None].expand(4, 6), MASK, aggregation="seq-mean-token-mean"
    )
    assert_close(ours, ppo)
    assert stats["kl"] == 0.0 and stats["clip_frac"] == ppo_stats["clip_frac"]


def test_kl_term_is_beta_times_aggregated_k3() -> None:
    logprobs, old, ref, adv = _batch(1)
    beta = 0.1
    with_kl, stats = grpo_loss(logprobs, old, ref, adv, MASK, beta=beta)
    without, _ = grpo_loss(logprobs, old, ref, adv, MASK, beta=0.0)
    k3 = kl_k3(logprobs, ref)  # (B, T)
    assert_close(with_kl - without, beta * aggregate(k3, MASK, "seq-mean-token-mean"))
    assert stats["kl"] == pytest.approx(float(k3[MASK.bool()].mean()))
    k1_loss, _ = grpo_loss(logprobs, old, ref, adv, MASK, beta=beta, kl_estimator="k1")
    expected_k1 = aggregate(kl_k1(logprobs, ref), MASK, "seq-mean-token-mean")
    assert_close(k1_loss - without, beta * expected_k1)


def test_dr_grpo_aggregation_uses_the_constant_max_len() -> None:
    logprobs, old, ref, adv = _batch(5)
    kwargs = {"beta": 0.0, "aggregation": "seq-mean-token-sum-norm"}
    short, _ = grpo_loss(logprobs, old, ref, adv, MASK, max_len=6, **kwargs)
    long, _ = grpo_loss(logprobs, old, ref, adv, MASK, max_len=12, **kwargs)
    assert_close(long, short / 2)
    assert_close(short, grpo_loss(logprobs, old, ref, adv, MASK, **kwargs)[0])  # default T = 6


def test_equal_rewards_give_zero_policy_gradient() -> None:
    logprobs, old, _, _ = _batch(2)
    adv = grpo_advantages(torch.ones(1, 4)).reshape(-1)  # all correct: A = 0
    leaf = logprobs.clone().requires_grad_(True)
    loss, _ = grpo_loss(leaf, old, None, adv, MASK, beta=0.0)
    (grad,) = torch.autograd.grad(loss, leaf)
    assert (grad == 0).all()


def test_per_token_weight_is_one_over_length_times_sequences() -> None:
    """seq-mean-token-mean at ratio 1: ∂L/∂log π_{i,t} = −A_i / (N · |o_i|)."""
    _, old, _, adv = _batch(3)
    leaf = old.clone().requires_grad_(True)  # ratio exactly 1
    loss, _ = grpo_loss(leaf, old, None, adv, MASK, beta=0.0)
    (grad,) = torch.autograd.grad(loss, leaf)
    lengths = MASK.sum(1, keepdim=True).double()  # (B, 1)
    assert_close(grad, (-adv[:, None] / (4 * lengths)) * MASK)


def test_constants_detached_padding_ignored_no_overflow() -> None:
    logprobs, old, ref, adv = _batch(4)
    clean = logprobs.clone().requires_grad_(True)
    loss, _ = grpo_loss(clean, old, ref, adv, MASK)
    loss.backward()
    garbage = logprobs.masked_fill(MASK == 0, float("nan")).requires_grad_(True)
    attached = [old.masked_fill(MASK == 0, -float("inf")), ref.masked_fill(MASK == 0, 1e30), adv]
    attached = [t.clone().requires_grad_(True) for t in attached]
    loss2, _ = grpo_loss(garbage, *(t * 1.0 for t in attached), MASK)
    loss2.backward()
    assert_close(loss2, loss)
    assert_close(garbage.grad, clean.grad)
    assert all(t.grad is None for t in attached)
    # a log-ratio of ±100 (policy and reference far apart) stays finite in float32
    lp = torch.zeros(1, 2, requires_grad=True)
    far = torch.tensor([[100.0, -100.0]])
    loss3, stats = grpo_loss(lp, far, -far, torch.tensor([-1.0]), torch.ones(1, 2))
    (grad,) = torch.autograd.grad(loss3, lp)
    assert math.isfinite(float(loss3.detach())) and torch.isfinite(grad).all()
    assert math.isfinite(stats["kl"])


def test_bad_inputs_raise() -> None:
    logprobs, old, ref, adv = _batch()
    with pytest.raises(ValueError, match="beta"):
        grpo_loss(logprobs, old, ref, adv, MASK, beta=-0.1)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logprobs, old, None, adv, MASK, beta=0.04)
    with pytest.raises(ValueError, match="ref_logprobs"):
        grpo_loss(logprobs, old, ref[:, :-1], adv, MASK)
    with pytest.raises(ValueError, match=r"ref_logprobs.*finite"):
        grpo_loss(logprobs, old, ref.masked_fill(MASK == 1, float("nan")), adv, MASK)
    with pytest.raises(ValueError, match="clip_eps"):
        grpo_loss(logprobs, old, ref, adv, MASK, clip_eps=0.0)
    with pytest.raises(ValueError, match="kl_estimator"):
        grpo_loss(logprobs, old, ref, adv, MASK, kl_estimator="k4")
    with pytest.raises(ValueError, match="aggregation"):
        grpo_loss(logprobs, old, ref, adv, MASK, aggregation="mean")
    with pytest.raises(ValueError, match=r"advantages.*\(B,\)"):
        grpo_loss(logprobs, old, ref, adv[:-1], MASK)
    with pytest.raises(ValueError, match=r"advantages.*finite"):
        grpo_loss(logprobs, old, ref, adv.clone().fill_(float("nan")), MASK)
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        grpo_loss(logprobs, old, ref, adv, MASK[:, :-1])
