"""Claims of the REINFORCE page that tests/rl/test_policy_gradient.py does not already check:
reward-to-go keeps the expected gradient, and with one terminal reward (γ = 1) the per-token
return is the sequence reward at every token, so both forms of the loss are the same; a discounted
return-to-go (γ < 1) gives a biased estimator, of neither ∇J nor the discounted objective's
gradient, unless each term also carries γ^(t−1)."""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

from snippets.rl.policy_gradient import discounted_returns, reinforce_loss


def _two_token_problem(seed: int):
    """A two-step autoregressive policy π(y1) π(y2 | y1) with a reward r1(y1) + r2(y1, y2)."""
    k = 3
    g = torch.Generator().manual_seed(seed)
    r1 = torch.randn(k, generator=g, dtype=torch.float64)  # reward of the first token
    r2 = torch.randn(k, k, generator=g, dtype=torch.float64)  # reward of the second token
    theta1 = torch.randn(k, generator=g, dtype=torch.float64).requires_grad_(True)
    theta2 = torch.randn(k, k, generator=g, dtype=torch.float64).requires_grad_(True)
    seqs = torch.tensor(list(itertools.product(range(k), repeat=2)))  # (K², 2)
    token_rewards = torch.stack([r1[seqs[:, 0]], r2[seqs[:, 0], seqs[:, 1]]], dim=1)  # (K², 2)
    return theta1, theta2, seqs, token_rewards


def _expected_gradient(advantages_fn, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact E_y[∇ loss] by enumerating all K² sequences, each weighted by its probability."""
    theta1, theta2, seqs, token_rewards = _two_token_problem(seed)
    lp1 = torch.log_softmax(theta1, -1)[seqs[:, 0]]  # (K²,)
    lp2 = torch.log_softmax(theta2, -1)[seqs[:, 0], seqs[:, 1]]  # (K²,)
    logprobs = torch.stack([lp1, lp2], dim=1)  # (K², 2)
    weight = logprobs.sum(1).exp().detach()  # (K²,) probability of each sequence
    mask = torch.ones_like(logprobs, dtype=torch.bool)
    advantages = advantages_fn(token_rewards, mask)  # (K², 2) or (K²,)
    if advantages.ndim == 1:
        advantages = advantages[:, None].expand_as(logprobs)
    # seq-mean divides by K², so multiplying by K² · P(y) turns the mean into E_y
    scaled = advantages * (len(seqs) * weight)[:, None]
    loss = reinforce_loss(logprobs, scaled, mask)
    return torch.autograd.grad(loss, (theta1, theta2))


def test_reward_to_go_has_the_same_expected_gradient_as_the_full_return() -> None:
    full = _expected_gradient(lambda r, m: r.sum(1))  # every token weighted by R(y)
    to_go = _expected_gradient(lambda r, m: discounted_returns(r, m, 1.0))  # G_t
    for a, b in zip(full, to_go, strict=True):
        assert_close(a, b)
    # and both are minus the true gradient of E[R]
    theta1, theta2, seqs, token_rewards = _two_token_problem(0)
    p = torch.softmax(theta1, -1)[seqs[:, 0]] * torch.softmax(theta2, -1)[seqs[:, 0], seqs[:, 1]]
    true = torch.autograd.grad((p * token_rewards.sum(1)).sum(), (theta1, theta2))
    for a, b in zip(to_go, true, strict=True):
        assert_close(a, -b)


def test_reward_to_go_changes_the_single_sample_gradient() -> None:
    """Same expectation, different samples: dropping past rewards is not a no-op."""
    _, _, seqs, token_rewards = _two_token_problem(1)
    mask = torch.ones(len(seqs), 2, dtype=torch.bool)
    to_go = discounted_returns(token_rewards, mask, 1.0)  # (K², 2)
    full = token_rewards.sum(1, keepdim=True).expand_as(to_go)  # (K², 2)
    assert_close(to_go[:, 0], full[:, 0])  # the first token sees every reward either way
    assert not torch.allclose(to_go[:, 1], full[:, 1])  # the second no longer sees r1


def test_terminal_reward_return_is_the_sequence_reward_at_every_token() -> None:
    g = torch.Generator().manual_seed(2)
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    reward = torch.randn(3, generator=g, dtype=torch.float64)  # (B,)
    last = mask.sum(1) - 1  # index of the last valid token
    token_rewards = torch.zeros(3, 5, dtype=torch.float64)
    token_rewards[torch.arange(3), last] = reward
    returns = discounted_returns(token_rewards, mask, 1.0)  # (B, T)
    assert_close(returns, torch.where(mask, reward[:, None], torch.zeros(()).double()))
    logprobs = -torch.rand(3, 5, generator=g, dtype=torch.float64).requires_grad_(True)
    (g_token,) = torch.autograd.grad(reinforce_loss(logprobs, returns, mask), logprobs)
    (g_seq,) = torch.autograd.grad(reinforce_loss(logprobs, reward, mask), logprobs)
    assert_close(g_token, g_seq)
    # with γ < 1 early tokens get a discounted share: γ^(L−1−t) R
    discounted = discounted_returns(token_rewards, mask, 0.5)
    assert_close(discounted[1, :2], reward[1] * torch.tensor([0.5, 1.0]).double())


def test_padding_inside_a_row_is_skipped_not_discounted() -> None:
    """A gap of padding is not a time step: the discount does not apply across it."""
    rewards = torch.tensor([[0.0, 9.0, 9.0, 1.0]], dtype=torch.float64)  # garbage in the gap
    mask = torch.tensor([[True, False, False, True]])
    returns = discounted_returns(rewards, mask, 0.5)
    assert_close(returns, torch.tensor([[0.5, 0.0, 0.0, 1.0]]).double())


def test_discounted_reward_to_go_is_a_biased_estimator() -> None:
    """γ < 1 in G_t alone: the expectation is neither ∇E[R] nor ∇E[r1 + γ r2]."""
    gamma = 0.5
    discounted = _expected_gradient(lambda r, m: discounted_returns(r, m, gamma))
    theta1, theta2, seqs, token_rewards = _two_token_problem(0)
    p = torch.softmax(theta1, -1)[seqs[:, 0]] * torch.softmax(theta2, -1)[seqs[:, 0], seqs[:, 1]]
    undiscounted = torch.autograd.grad(
        (p * token_rewards.sum(1)).sum(), (theta1, theta2), retain_graph=True
    )
    j_gamma = (p * (token_rewards[:, 0] + gamma * token_rewards[:, 1])).sum()
    grad_gamma = torch.autograd.grad(j_gamma, (theta1, theta2))
    # loss gradients are minus the estimate; compare all parameters at once
    est, true_j, true_jg = (
        torch.cat([g.flatten() for g in gs]) for gs in (discounted, undiscounted, grad_gamma)
    )
    assert (est + true_j).norm() > 1e-3  # not ∇J
    assert (est + true_jg).norm() > 1e-3  # not ∇ of the discounted objective either
    # the first step is right for the discounted objective (γ^0 = 1); the bias is in later steps
    assert_close(discounted[0], -grad_gamma[0])

    # with the factor γ^(t−1) in front of each term it is ∇ of the discounted objective
    def weighted(r: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return discounted_returns(r, m, gamma) * torch.tensor([1.0, gamma]).double()

    for est, true_jg in zip(_expected_gradient(weighted), grad_gamma, strict=True):
        assert_close(est, -true_jg)
