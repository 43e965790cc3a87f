"""Claims of the REINFORCE page: the score-function gradient is the exact gradient (by
enumeration) and its Monte-Carlo estimate converges to it; a baseline adds no bias and
lowers the variance; returns-to-go ignore padding."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.advantages import reinforce_pp_advantages
from snippets.rl.policy_gradient import discounted_returns, reinforce_loss

REWARD = torch.tensor([1.0, 2.0, 3.0, 5.0], dtype=torch.float64)  # fixed reward per arm
K = REWARD.numel()


def _theta() -> torch.Tensor:
    return torch.tensor([0.2, -0.4, 0.1, -0.3], dtype=torch.float64, requires_grad=True)


def _true_gradient() -> torch.Tensor:
    theta = _theta()
    (grad,) = torch.autograd.grad((torch.softmax(theta, -1) * REWARD).sum(), theta)
    return grad  # ∇_θ E_{a~π}[r(a)]


def _enumerated_loss_gradient(baseline: float = 0.0) -> torch.Tensor:
    """Every arm once as a one-token 'sequence', weighted by its probability."""
    theta = _theta()
    logp = torch.log_softmax(theta, -1)[:, None]  # (K, 1)
    probs = logp.exp()[:, 0].detach()  # (K,)
    # seq-mean divides by K, so K·π(a)·A(a) makes the mean an expectation under π
    advantages = K * probs * (REWARD - baseline)  # (K,)
    loss = reinforce_loss(logp, advantages, torch.ones(K, 1))
    (grad,) = torch.autograd.grad(loss, theta)
    return grad


def test_score_function_gradient_is_exact_by_enumeration() -> None:
    # minimising the loss ascends E[r]: ∇L = −∇J
    assert_close(_enumerated_loss_gradient(), -_true_gradient())


def test_score_function_monte_carlo_within_five_standard_errors() -> None:
    g = torch.Generator().manual_seed(0)
    n = 20_000
    theta = _theta()
    probs = torch.softmax(theta, -1).detach()
    arms = torch.multinomial(probs, n, replacement=True, generator=g)  # (n,)
    logp = torch.log_softmax(theta, -1)[arms][:, None]  # (n, 1)
    (grad,) = torch.autograd.grad(reinforce_loss(logp, REWARD[arms], torch.ones(n, 1)), theta)
    # per-sample gradient of −r log π(a) is −r(a)(e_a − π): its std gives the standard error
    per_sample = -REWARD[arms, None] * (torch.eye(K, dtype=torch.float64)[arms] - probs)
    std_err = per_sample.std(0) / n**0.5  # (K,)
    assert ((grad + _true_gradient()).abs() < 5 * std_err).all()


def test_baseline_adds_no_bias_exactly() -> None:
    for baseline in (2.7, -10.0, float((torch.softmax(_theta(), -1) * REWARD).sum().detach())):
        assert_close(_enumerated_loss_gradient(baseline), _enumerated_loss_gradient(0.0))


def _gradient_variance(baseline: float, batches: int = 400, size: int = 8) -> float:
    """Measured total variance (trace of the covariance) of the mini-batch gradient."""
    g = torch.Generator().manual_seed(1)
    grads = []
    for _ in range(batches):
        theta = _theta()
        arms = torch.multinomial(
            torch.softmax(theta, -1).detach(), size, replacement=True, generator=g
        )
        logp = torch.log_softmax(theta, -1)[arms][:, None]  # (size, 1)
        loss = reinforce_loss(logp, REWARD[arms] - baseline, torch.ones(size, 1))
        grads.append(torch.autograd.grad(loss, theta)[0])
    return float(torch.stack(grads).var(0).sum())


def test_baseline_lowers_variance_measured_and_exact() -> None:
    probs = torch.softmax(_theta(), -1).detach()
    mean_reward = float((probs * REWARD).sum())
    measured_none, measured_mean = _gradient_variance(0.0), _gradient_variance(mean_reward)

    def exact(baseline: float) -> float:  # Var of one sample: E‖g‖² − ‖E g‖²
        per_arm = (REWARD - baseline)[:, None] * (torch.eye(K, dtype=torch.float64) - probs)
        second = (probs * per_arm.square().sum(1)).sum()
        return float(second - _true_gradient().square().sum()) / 8  # batch of 8

    assert measured_mean < 0.3 * measured_none
    assert exact(mean_reward) < 0.3 * exact(0.0)
    for measured, expected in ((measured_none, exact(0.0)), (measured_mean, exact(mean_reward))):
        assert abs(measured - expected) < 0.25 * expected  # 400 batches: ~7% std error


def test_token_sum_is_the_sequence_score_function() -> None:
    """Two-token autoregressive bandit: π(y1) π(y2 | y1), reward R(y1, y2), all K² sequences."""
    k = 3
    g = torch.Generator().manual_seed(2)
    reward = torch.randn(k, k, generator=g, dtype=torch.float64)  # R(y1, y2)
    theta1 = torch.randn(k, generator=g, dtype=torch.float64).requires_grad_(True)
    theta2 = torch.randn(k, k, generator=g, dtype=torch.float64).requires_grad_(True)
    seqs = torch.tensor(list(itertools.product(range(k), repeat=2)))  # (K², 2)
    lp1 = torch.log_softmax(theta1, -1)[seqs[:, 0]]  # (K²,)
    lp2 = torch.log_softmax(theta2, -1)[seqs[:, 0], seqs[:, 1]]  # (K²,)
    logprobs = torch.stack([lp1, lp2], dim=1)  # (K², 2)
    seq_prob = logprobs.sum(1).exp().detach()  # (K²,)
    true = torch.autograd.grad(
        (logprobs.sum(1).exp() * reward[seqs[:, 0], seqs[:, 1]]).sum(),
        (theta1, theta2),
        retain_graph=True,
    )
    advantages = len(seqs) * seq_prob * reward[seqs[:, 0], seqs[:, 1]]  # (K²,)
    loss = reinforce_loss(logprobs, advantages, torch.ones(len(seqs), 2))
    ours = torch.autograd.grad(loss, (theta1, theta2))
    for a, b in zip(ours, true, strict=True):
        assert_close(a, -b)


def test_reinforce_loss_ignores_padding_and_detaches_advantages() -> None:
    g = torch.Generator().manual_seed(3)
    logprobs = -torch.rand(3, 5, generator=g, dtype=torch.float64)  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [0, 1, 1, 1, 0]])
    adv = torch.randn(3, generator=g, dtype=torch.float64)  # (B,)
    clean = logprobs.clone().requires_grad_(True)
    reinforce_loss(clean, adv, mask).backward()
    garbage = logprobs.masked_fill(mask == 0, float("nan")).requires_grad_(True)
    attached = adv.clone().requires_grad_(True)
    loss = reinforce_loss(garbage, attached * 1.0, mask)
    loss.backward()
    assert_close(garbage.grad, clean.grad)
    assert attached.grad is None
    # a (B,) advantage is the same as the (B, T) advantage repeated over tokens
    assert_close(loss, reinforce_loss(logprobs, adv[:, None].expand(3, 5), mask))


def _returns_loop(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    out = torch.zeros_like(rewards)
    for b in range(rewards.shape[0]):
        running = 0.0
        for t in reversed(range(rewards.shape[1])):
            if mask[b, t]:
                running = float(rewards[b, t]) + gamma * running
                out[b, t] = running
    return out


def test_discounted_returns_match_loop_and_ignore_padding() -> None:
    g = torch.Generator().manual_seed(4)
    rewards = torch.randn(3, 6, generator=g, dtype=torch.float64)  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 0, 0]])
    for gamma in (1.0, 0.9, 0.0):
        returns = discounted_returns(rewards, mask, gamma)
        assert_close(returns, _returns_loop(rewards, mask, gamma))
        garbage = rewards.masked_fill(mask == 0, float("inf"))
        assert_close(discounted_returns(garbage, mask, gamma), returns)
    # γ = 1 and no padding: a reverse cumulative sum
    full = torch.ones(3, 6)
    assert_close(discounted_returns(rewards, full, 1.0), rewards.flip(1).cumsum(1).flip(1))


def test_bad_inputs_raise() -> None:
    logprobs, mask = torch.zeros(2, 3), torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"advantages.*\(B,\)"):
        reinforce_loss(logprobs, torch.zeros(3), mask)
    with pytest.raises(ValueError, match=r"advantages.*finite"):
        reinforce_loss(logprobs, torch.tensor([0.0, float("nan")]), mask)
    with pytest.raises(ValueError, match="aggregation"):
        reinforce_loss(logprobs, torch.zeros(2), mask, aggregation="mean")
    with pytest.raises(ValueError, match=r"logprobs.*\(B, T\)"):
        reinforce_loss(torch.zeros(2), torch.zeros(2), mask)
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        reinforce_loss(logprobs, torch.zeros(2), torch.ones(3, 2))
    with pytest.raises(ValueError, match="gamma"):
        discounted_returns(logprobs, mask, gamma=-0.1)
    with pytest.raises(ValueError, match=r"rewards.*finite"):
        discounted_returns(torch.tensor([[float("nan"), 0.0, 0.0]]), torch.ones(1, 3), 1.0)
    # T = 0: no time step to start the recursion from (an IndexError before the check)
    with pytest.raises(ValueError, match=r"rewards.*T >= 1"):
        discounted_returns(torch.zeros(2, 0), torch.ones(2, 0), 1.0)
    with pytest.raises(ValueError, match=r"T >= 1"):
        reinforce_pp_advantages(torch.zeros(2, 0), torch.ones(2, 0))
