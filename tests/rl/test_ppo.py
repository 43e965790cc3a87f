"""Claims of the PPO page: the clipped loss has zero gradient once the ratio leaves
[1 − ε, 1 + ε] in the advantage's direction (both signs of A), equals the vanilla policy
gradient at ratio 1, dual-clip bounds the loss of A < 0 tokens, and the log-ratio clamp,
detaching and masking rules hold."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.logprobs import token_logprobs
from snippets.rl.policy_gradient import reinforce_loss
from snippets.rl.ppo import ppo_policy_loss, ppo_value_loss

RATIOS = [0.5, 0.79, 0.81, 1.0, 1.19, 1.21, 2.0]


def _per_token_grad(ratios, advantage: float, **kwargs) -> torch.Tensor:
    old = torch.zeros(1, len(ratios), dtype=torch.float64)  # (1, T)
    logprobs = torch.tensor([ratios], dtype=torch.float64).log().requires_grad_(True)  # (1, T)
    adv = torch.full((1, len(ratios)), advantage, dtype=torch.float64)  # (1, T)
    loss, _ = ppo_policy_loss(logprobs, old, adv, torch.ones(1, len(ratios)), **kwargs)
    (grad,) = torch.autograd.grad(loss, logprobs)
    return grad[0] * len(ratios)  # undo token-mean's 1/N: ∂ℓ_t / ∂ log π_t


@pytest.mark.parametrize("advantage", [1.5, -1.5])
def test_gradient_is_zero_outside_the_trust_region_in_the_advantage_direction(
    advantage: float,
) -> None:
    grad = _per_token_grad(RATIOS, advantage, clip_eps=0.2)
    for r, g in zip(RATIOS, grad.tolist(), strict=True):
        pushed_too_far = (advantage > 0 and r > 1.2) or (advantage < 0 and r < 0.8)
        if pushed_too_far:
            assert g == 0.0, (r, g)
        else:  # ∂(−A r)/∂ log π = −A r: still pushing
            assert g == pytest.approx(-advantage * r), (r, g)


def test_clip_higher_widens_only_the_upper_bound() -> None:
    grad = _per_token_grad([0.75, 1.25], 1.0, clip_eps=0.2, clip_eps_high=0.28)
    assert grad[1] != 0.0  # 1.25 < 1 + 0.28: still learning
    grad = _per_token_grad([0.75, 1.25], -1.0, clip_eps=0.2, clip_eps_high=0.28)
    assert grad[0] == 0.0  # 0.75 < 1 − 0.2: lower bound unchanged


def test_equals_vanilla_policy_gradient_at_ratio_one() -> None:
    g = torch.Generator().manual_seed(0)
    theta = torch.randn(3, 4, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    tokens = torch.randint(0, 5, (3, 4), generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 1, 0]])
    adv = torch.randn(3, 4, generator=g, dtype=torch.float64)
    for aggregation in ("token-mean", "seq-mean-token-mean"):
        logprobs = token_logprobs(theta, tokens)  # (B, T)
        ppo, stats = ppo_policy_loss(
            logprobs, logprobs.detach(), adv, mask, aggregation=aggregation
        )
        (ppo_grad,) = torch.autograd.grad(ppo, theta)
        pg = reinforce_loss(token_logprobs(theta, tokens), adv, mask, aggregation)
        (pg_grad,) = torch.autograd.grad(pg, theta)
        assert_close(ppo_grad, pg_grad)
        assert stats["clip_frac"] == 0.0 and stats["ratio_mean"] == pytest.approx(1.0)
        assert stats["approx_kl"] == pytest.approx(0.0)


def test_dual_clip_bounds_the_loss_of_negative_advantages() -> None:
    old = torch.zeros(1, 2)
    logprobs = torch.tensor([[10.0, 10.0]], requires_grad=True)  # ratio e^10 ≈ 22026
    adv = torch.tensor([[-1.0, 1.0]])
    mask = torch.tensor([[1, 0]])  # only the A < 0 token
    plain, _ = ppo_policy_loss(logprobs, old, adv, mask)
    assert float(plain.detach()) == pytest.approx(math.exp(10.0), rel=1e-5)  # −A·r: unbounded
    dual, stats = ppo_policy_loss(logprobs, old, adv, mask, dual_clip=3.0)
    assert float(dual.detach()) == pytest.approx(3.0)  # −A·c
    assert stats["clip_frac"] == 1.0
    (grad,) = torch.autograd.grad(dual, logprobs)
    assert (grad == 0).all()
    # A > 0 tokens are untouched by dual-clip
    pos_mask = torch.tensor([[0, 1]])
    assert_close(
        ppo_policy_loss(logprobs, old, adv, pos_mask, dual_clip=3.0)[0],
        ppo_policy_loss(logprobs, old, adv, pos_mask)[0],
    )


def test_huge_log_ratio_does_not_overflow() -> None:
    logprobs = torch.tensor([[0.0, 0.0]], requires_grad=True)  # float32
    old = torch.tensor([[-100.0, 100.0]])  # log-ratio ±100: exp(100) = inf in float32
    adv = torch.tensor([[-1.0, -1.0]])
    loss, stats = ppo_policy_loss(logprobs, old, adv, torch.ones(1, 2))
    (grad,) = torch.autograd.grad(loss, logprobs)
    assert math.isfinite(float(loss.detach())) and torch.isfinite(grad).all()
    assert stats["ratio_max"] == pytest.approx(math.exp(20.0), rel=1e-5)
    assert math.isfinite(stats["approx_kl"])


def _batch(seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    old = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3  # (B, T)
    logprobs = old + 0.3 * torch.randn(3, 5, generator=g, dtype=torch.float64)  # (B, T)
    adv = torch.randn(3, 5, generator=g, dtype=torch.float64)  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [0, 0, 1, 1, 0]])
    return logprobs, old, adv, mask


def test_stats_match_hand_computation() -> None:
    logprobs, old, adv, mask = _batch()
    _, stats = ppo_policy_loss(logprobs, old, adv, mask, clip_eps=0.2)
    valid = mask.bool()
    ratio = (logprobs - old).exp()[valid]
    a = adv[valid]
    clipped = ((a > 0) & (ratio > 1.2)) | ((a < 0) & (ratio < 0.8))
    assert stats["clip_frac"] == pytest.approx(float(clipped.double().mean()))
    assert stats["approx_kl"] == pytest.approx(float((ratio - 1 - ratio.log()).mean()))
    assert stats["ratio_mean"] == pytest.approx(float(ratio.mean()))
    assert stats["ratio_max"] == pytest.approx(float(ratio.max()))
    assert all(isinstance(v, float) for v in stats.values())


def test_constants_are_detached_and_padding_ignored() -> None:
    logprobs, old, adv, mask = _batch()
    clean = logprobs.clone().requires_grad_(True)
    loss, _ = ppo_policy_loss(clean, old, adv, mask, dual_clip=3.0)
    loss.backward()

    garbage_lp = logprobs.masked_fill(mask == 0, float("nan")).requires_grad_(True)
    garbage_old = old.masked_fill(mask == 0, float("inf")).requires_grad_(True)
    garbage_adv = adv.masked_fill(mask == 0, float("nan")).requires_grad_(True)
    loss2, _ = ppo_policy_loss(
        garbage_lp, garbage_old * 1.0, garbage_adv * 1.0, mask, dual_clip=3.0
    )
    loss2.backward()
    assert_close(loss2, loss)
    assert_close(garbage_lp.grad, clean.grad)
    assert garbage_old.grad is None and garbage_adv.grad is None


def test_value_loss_half_squared_error_and_clip() -> None:
    values = torch.tensor([[0.5, -0.1, 2.0]], dtype=torch.float64, requires_grad=True)
    old = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    returns = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    mask = torch.ones(1, 3)
    plain = ppo_value_loss(values, old, returns, mask)
    assert_close(plain, 0.5 * ((values - returns) ** 2).mean())
    clipped = ppo_value_loss(values, old, returns, mask, clip_eps=0.2)
    v_clip = old + (values - old).clamp(-0.2, 0.2)
    expected = 0.5 * torch.maximum((values - returns) ** 2, (v_clip - returns) ** 2).mean()
    assert_close(clipped, expected)
    (grad,) = torch.autograd.grad(clipped, values)
    # token 0 moved 0.5 > ε towards the target: the clipped (larger) loss wins, gradient 0
    assert grad[0, 0] == 0.0 and grad[0, 1] != 0.0


def test_value_loss_constants_and_padding() -> None:
    g = torch.Generator().manual_seed(2)
    values = torch.randn(2, 4, generator=g, dtype=torch.float64)
    old = values + 0.1 * torch.randn(2, 4, generator=g, dtype=torch.float64)
    returns = torch.randn(2, 4, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    clean = values.clone().requires_grad_(True)
    ppo_value_loss(clean, old, returns, mask, clip_eps=0.2).backward()
    garbage = values.masked_fill(mask == 0, float("nan")).requires_grad_(True)
    attached_returns = returns.masked_fill(mask == 0, float("inf")).requires_grad_(True)
    attached_old = old.clone().requires_grad_(True)
    loss = ppo_value_loss(garbage, attached_old * 1, attached_returns * 1, mask, clip_eps=0.2)
    loss.backward()
    assert_close(garbage.grad, clean.grad)
    assert attached_returns.grad is None and attached_old.grad is None


def test_bad_inputs_raise() -> None:
    logprobs, old, adv, mask = _batch()
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_policy_loss(logprobs, old, adv, mask, clip_eps=0.0)
    with pytest.raises(ValueError, match="clip_eps_high"):
        ppo_policy_loss(logprobs, old, adv, mask, clip_eps_high=-0.1)
    with pytest.raises(ValueError, match=r"dual_clip.*> 1"):
        ppo_policy_loss(logprobs, old, adv, mask, dual_clip=1.0)
    with pytest.raises(ValueError, match="old_logprobs"):
        ppo_policy_loss(logprobs, old[:, :-1], adv, mask)
    with pytest.raises(ValueError, match=r"old_logprobs.*finite"):
        ppo_policy_loss(logprobs, old.masked_fill(mask == 1, float("nan")), adv, mask)
    with pytest.raises(ValueError, match=r"advantages.*\(B,\)"):
        ppo_policy_loss(logprobs, old, adv[:, :-1], mask)
    with pytest.raises(ValueError, match="aggregation"):
        ppo_policy_loss(logprobs, old, adv, mask, aggregation="sum")
    with pytest.raises(ValueError, match=r"mask.*0 and 1"):
        ppo_policy_loss(logprobs, old, adv, mask * 3)
    with pytest.raises(ValueError, match=r"logprobs.*\(B, T\)"):
        ppo_policy_loss(logprobs[0], old[0], adv[0], mask[0])
    with pytest.raises(ValueError, match="clip_eps"):
        ppo_value_loss(logprobs, old, adv, mask, clip_eps=-1.0)
    with pytest.raises(ValueError, match="returns"):
        ppo_value_loss(logprobs, old, adv[:, :-1], mask)
    with pytest.raises(ValueError, match=r"returns.*finite"):
        ppo_value_loss(logprobs, old, adv.masked_fill(mask == 1, float("nan")), mask)
    with pytest.raises(ValueError, match="values"):
        ppo_value_loss(logprobs.long(), old, adv, mask)
