"""Claims of the policy-gradient page (docs/rl/policy-gradient.md), checked exactly by
enumerating every response of the toy bandit (snippets/rl/toy.py: T = 3 tokens, V = 4):

* the score-function gradient E[R ∇log π(y)] is the gradient of J = Σ_y π(y) R(y);
* the score has mean zero, so any baseline that does not depend on y adds no bias;
* reward-to-go (causality) keeps the expectation and lowers the variance;
* a baseline that depends on the sample itself biases the gradient; a group mean that includes
  the sample shrinks it by (G − 1)/G, the leave-one-out mean does not;
* the variance-minimising constant baseline is E[R‖∇log π‖²] / E[‖∇log π‖²], and the variance
  grows with (b − b*)² away from it;
* a KL-shaped reward depends on θ, but its own gradient term −β E[∇log π] is zero, so the
  estimator with the shaped reward detached is the exact gradient of the KL-regularised J.
"""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

from snippets.rl.policy_gradient import discounted_returns
from snippets.rl.toy import SEQ_LEN, TOKEN_REWARD, TablePolicy, expected_reward, token_rewards

V = len(TOKEN_REWARD)
EVERY_Y = torch.tensor(list(itertools.product(range(V), repeat=SEQ_LEN)))  # (V^T, T)
N = EVERY_Y.shape[0]


def _theta(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.7 * torch.randn(SEQ_LEN, V, generator=g, dtype=torch.float64)).requires_grad_(True)


def _token_logprobs(theta: torch.Tensor) -> torch.Tensor:
    """log π(y_t) for every response and position: (N, T)."""
    logp = torch.log_softmax(theta, dim=-1)  # (T, V)
    return logp[torch.arange(SEQ_LEN), EVERY_Y]  # (N, T)


def _per_token_scores(theta: torch.Tensor) -> torch.Tensor:
    """∇_θ log π(y_t) for every response and position: (N, T, T, V)."""
    return torch.autograd.functional.jacobian(_token_logprobs, theta.detach(), vectorize=True)


def _reward() -> torch.Tensor:
    return token_rewards(EVERY_Y).double().sum(1)  # (N,) R(y), the mean token reward


def _probs(theta: torch.Tensor) -> torch.Tensor:
    return _token_logprobs(theta).sum(1).exp().detach()  # (N,) π(y)


def _exact_gradient(theta: torch.Tensor) -> torch.Tensor:
    j = (_token_logprobs(theta).sum(1).exp() * _reward()).sum()
    return torch.autograd.grad(j, theta)[0]  # (T, V)


def _mean_and_variance(per_sample: torch.Tensor, probs: torch.Tensor):
    """E[g] and the total variance E‖g − E g‖² of a per-sample estimate g: (N, T, V)."""
    mean = (probs[:, None, None] * per_sample).sum(0)
    var = (probs * (per_sample - mean).square().sum((1, 2))).sum()
    return mean, float(var)


def test_enumerated_objective_matches_the_closed_form() -> None:
    policy = TablePolicy().double()
    with torch.no_grad():
        policy.logits.copy_(_theta().detach())
    assert_close(float((_probs(_theta()) * _reward()).sum()), expected_reward(policy))


def test_score_function_gradient_is_exact() -> None:
    theta = _theta()
    scores = _per_token_scores(theta).sum(1)  # (N, T, V) ∇ log π(y)
    mean, _ = _mean_and_variance(_reward()[:, None, None] * scores, _probs(theta))
    assert_close(mean, _exact_gradient(theta))


def test_score_has_mean_zero_so_constant_baselines_add_no_bias() -> None:
    theta = _theta(1)
    probs, scores = _probs(theta), _per_token_scores(theta).sum(1)
    zero, _ = _mean_and_variance(scores, probs)
    assert_close(zero, torch.zeros_like(zero))
    for b in (0.3, -2.0, 10.0):
        biased, _ = _mean_and_variance((_reward() - b)[:, None, None] * scores, probs)
        assert_close(biased, _exact_gradient(theta))


def test_reward_to_go_keeps_the_mean_and_lowers_the_variance() -> None:
    theta = _theta(2)
    probs, per_token = _probs(theta), _per_token_scores(theta)  # (N,), (N, T, T, V)
    full = _reward()[:, None, None] * per_token.sum(1)  # R(y) Σ_t ∇log π(y_t)
    to_go = discounted_returns(
        token_rewards(EVERY_Y).double(), torch.ones(N, SEQ_LEN), 1.0
    )  # (N, T) G_t
    causal = (to_go[:, :, None, None] * per_token).sum(1)  # Σ_t G_t ∇log π(y_t)
    mean_full, var_full = _mean_and_variance(full, probs)
    mean_causal, var_causal = _mean_and_variance(causal, probs)
    assert_close(mean_causal, mean_full)
    assert var_causal < 0.8 * var_full


def test_sample_dependent_baselines() -> None:
    theta = _theta(3)
    probs, scores, reward = _probs(theta), _per_token_scores(theta).sum(1), _reward()
    exact = _exact_gradient(theta)
    # b(y) = R(y): the weight is 0 for every sample, the estimate is 0, not ∇J
    own, _ = _mean_and_variance((reward - reward)[:, None, None] * scores, probs)
    assert exact.norm() > 1e-3 and own.norm() == 0
    # groups of G = 2 independent samples: enumerate all pairs (i, j)
    pair_prob = probs[:, None] * probs[None, :]  # (N, N)
    group_mean = 0.5 * (reward[:, None] + reward[None, :])  # includes the sample itself
    with_self = torch.einsum("ij,ij,itv->tv", pair_prob, reward[:, None] - group_mean, scores)
    leave_one_out = torch.einsum(
        "ij,ij,itv->tv", pair_prob, reward[:, None] - reward[None, :], scores
    )
    assert_close(with_self, 0.5 * exact)  # (G − 1)/G = 1/2 of the true gradient
    assert_close(leave_one_out, exact)


def test_optimal_constant_baseline_minimises_the_variance() -> None:
    theta = _theta(4)
    probs, scores, reward = _probs(theta), _per_token_scores(theta).sum(1), _reward()
    sq_norm = scores.square().sum((1, 2))  # (N,) ‖∇log π(y)‖²
    b_star = float((probs * reward * sq_norm).sum() / (probs * sq_norm).sum())

    def variance(b: float) -> float:
        return _mean_and_variance((reward - b)[:, None, None] * scores, probs)[1]

    mean_reward = float((probs * reward).sum())
    assert variance(b_star) < variance(0.0)
    assert variance(b_star) <= variance(mean_reward)
    for b in torch.linspace(-1.0, 2.0, 61).tolist():
        assert variance(b_star) <= variance(b) + 1e-12
    # a bad constant is worse than none: the variance grows with (b − b*)²
    assert variance(10.0) > variance(0.0)
    curvature = float((probs * sq_norm).sum())  # Var(b) = Var(b*) + (b − b*)² E‖∇log π‖²
    assert_close(variance(3.0) - variance(b_star), (3.0 - b_star) ** 2 * curvature)


def test_kl_shaped_reward_detached_gives_the_exact_gradient() -> None:
    # J(θ) = Σ_y π_θ(y) [R(y) − β Σ_t (log π_θ(y_t) − log π_ref(y_t))]: the reward depends on θ
    theta, ref, beta = _theta(5), _theta(6).detach(), 0.3
    logp, ref_logp = _token_logprobs(theta), _token_logprobs(ref)  # (N, T)
    shaped = _reward() - beta * (logp - ref_logp).sum(1)  # (N,) R_θ(y), with its graph
    j = (logp.sum(1).exp() * shaped).sum()
    (exact,) = torch.autograd.grad(j, theta)  # (T, V) differentiates the reward too
    probs, scores = _probs(theta), _per_token_scores(theta).sum(1)  # (N,), (N, T, V)
    # the score-function estimator with the reward's value detached
    estimate, _ = _mean_and_variance(shaped.detach()[:, None, None] * scores, probs)
    assert_close(estimate, exact)
    # the reward's own gradient term, E[∇R_θ] = −β E[∇log π(y)], is zero in expectation ...
    extra, _ = _mean_and_variance(-beta * scores, probs)
    assert_close(extra, torch.zeros_like(extra), atol=1e-12, rtol=0)
    # ... though not sample by sample
    assert (-beta * scores).abs().max() > 1e-2
    # and the KL term matters: without it the gradient is different
    plain, _ = _mean_and_variance(_reward()[:, None, None] * scores, probs)
    assert (plain - exact).norm() > 1e-3
