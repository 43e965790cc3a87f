"""Claims of the MDP page (docs/rl/mdp.md): with a terminal-only reward and γ = 1 every token's
return is the final reward; with γ < 1 the first token's return is γ^(L−1)·R; a per-token KL
reward makes the return R − β·(KL still to come); and token-level REINFORCE on those returns
has the same gradient as sequence-level REINFORCE on R."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.policy_gradient import discounted_returns, reinforce_loss

B, T = 6, 9


def _terminal_batch(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded responses of random lengths with one reward at each last valid token."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, T + 1, (B,), generator=g)  # (B,) L_b
    mask = torch.arange(T)[None, :] < lengths[:, None]  # (B, T)
    final = torch.randn(B, generator=g, dtype=torch.float64)  # (B,) R_b
    rewards = torch.zeros(B, T, dtype=torch.float64)  # (B, T)
    rewards[torch.arange(B), lengths - 1] = final
    return rewards, mask, final, lengths


def test_gamma_one_terminal_reward_gives_every_token_the_final_reward() -> None:
    rewards, mask, final, _ = _terminal_batch(0)
    returns = discounted_returns(rewards, mask, gamma=1.0)
    expected = torch.where(mask, final[:, None].expand(B, T), torch.zeros(B, T).double())
    assert_close(returns, expected)


def test_discount_shrinks_the_first_tokens_return_to_gamma_pow_length_minus_one() -> None:
    rewards, mask, final, lengths = _terminal_batch(1)
    for gamma in (0.9, 0.5):
        returns = discounted_returns(rewards, mask, gamma)
        assert_close(returns[:, 0], gamma ** (lengths - 1).double() * final)
        # token t (0-based) of a length-L response gets γ^(L−1−t)·R
        t = torch.arange(T)[None, :].expand(B, T)
        power = (lengths[:, None] - 1 - t).clamp(min=0).double()  # (B, T)
        expected = torch.where(mask, gamma**power * final[:, None], torch.zeros(B, T).double())
        assert_close(returns, expected)


def test_kl_shaped_return_is_outcome_minus_remaining_kl() -> None:
    g = torch.Generator().manual_seed(2)
    logprobs = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3  # (B, T)
    ref_logprobs = -torch.rand(B, T, generator=g, dtype=torch.float64) * 3  # (B, T)
    beta, outcome = 0.05, torch.randn(B, generator=g, dtype=torch.float64)  # (B,)
    kl = logprobs - ref_logprobs  # (B, T)
    rewards = -beta * kl
    rewards[:, -1] += outcome
    returns = discounted_returns(rewards, torch.ones(B, T), gamma=1.0)
    remaining_kl = kl.flip(1).cumsum(1).flip(1)  # (B, T) Σ_{k ≥ t} kl_k
    assert_close(returns, outcome[:, None] - beta * remaining_kl)


def test_token_level_returns_give_the_sequence_level_gradient() -> None:
    rewards, mask, final, _ = _terminal_batch(3)
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(B, T, generator=g, dtype=torch.float64, requires_grad=True)
    logprobs = torch.nn.functional.logsigmoid(logits)  # (B, T) any per-token log-probs
    token_level = reinforce_loss(logprobs, discounted_returns(rewards, mask, 1.0), mask)
    sequence_level = reinforce_loss(logprobs, final, mask)
    (grad_token,) = torch.autograd.grad(token_level, logits, retain_graph=True)
    (grad_seq,) = torch.autograd.grad(sequence_level, logits, retain_graph=True)
    assert_close(grad_token, grad_seq)
    # ... but not with γ < 1: the early tokens get less weight
    discounted = reinforce_loss(logprobs, discounted_returns(rewards, mask, 0.5), mask)
    (grad_disc,) = torch.autograd.grad(discounted, logits)
    assert not torch.allclose(grad_disc, grad_seq)
