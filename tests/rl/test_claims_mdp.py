"""Claims of the MDP page (docs/rl/mdp.md): with a terminal-only reward and γ = 1 every token's
return is the final reward; with γ < 1 the first token's return is γ^(L−1)·R; a per-token KL
reward makes the return R − β·(KL still to come); and token-level REINFORCE on those returns
has the same gradient as sequence-level REINFORCE on R. TRL's score one position after the last
token reaches it as r_L + γλR + γ(1 − λ)V_{L+1} − V_L, the same as ours only at λ = 1."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.gae import gae
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


def _trl_style_gae(rewards, values, gamma: float, lam: float) -> torch.Tensor:
    """The plain GAE loop TRL's PPO trainer runs: V_{t+1} read from the next column, 0 past T."""
    steps = rewards.shape[1]
    last, out = torch.zeros(rewards.shape[0], dtype=rewards.dtype), []
    for t in reversed(range(steps)):
        next_values = values[:, t + 1] if t < steps - 1 else 0.0
        delta = rewards[:, t] + gamma * next_values - values[:, t]
        last = delta + gamma * lam * last
        out.append(last)
    return torch.stack(out[::-1], dim=1)


def test_trl_score_one_position_after_the_last_token() -> None:
    # TRL: KL reward on the response tokens, the score at actual_end = L (one past the last
    # token L − 1, 0-based), KL 0 there; values kept up to L and zeroed after (padding_mask_p1).
    g = torch.Generator().manual_seed(5)
    lengths = torch.tensor([2, 5, 3, 6])  # (B,) all shorter than T so actual_end = L
    batch, steps, gamma = len(lengths), 8, 1.0
    pos = torch.arange(steps)[None, :]
    mask = pos < lengths[:, None]  # (B, T) response tokens
    mask_p1 = pos <= lengths[:, None]  # (B, T) plus the extra position
    kl_reward = -0.05 * torch.randn(batch, steps, generator=g, dtype=torch.float64) * mask
    score = torch.randn(batch, generator=g, dtype=torch.float64)  # (B,) R
    values = torch.randn(batch, steps, generator=g, dtype=torch.float64) * mask_p1
    trl_rewards = kl_reward.clone()
    trl_rewards[torch.arange(batch), lengths] += score
    rows, last = torch.arange(batch), lengths - 1
    for lam in (0.0, 0.5, 0.95, 1.0):
        adv = _trl_style_gae(trl_rewards, values, gamma, lam)
        expected = (
            kl_reward[rows, last]
            + gamma * lam * score
            + gamma * (1 - lam) * values[rows, lengths]
            - values[rows, last]
        )
        assert_close(adv[rows, last], expected)  # r_L + γλR + γ(1 − λ)V_{L+1} − V_L
    # λ = 1: identical, on every response token, to putting R on the last token instead
    ours_rewards = kl_reward.clone()
    ours_rewards[rows, last] += score
    ours, _ = gae(ours_rewards, values, mask, gamma=gamma, lam=1.0)
    trl = _trl_style_gae(trl_rewards, values, gamma, 1.0)
    assert_close(torch.where(mask, trl, 0.0), ours)
    # λ < 1: not the same (the critic's value at the extra position enters)
    ours_095, _ = gae(ours_rewards, values, mask, gamma=gamma, lam=0.95)
    trl_095 = _trl_style_gae(trl_rewards, values, gamma, 0.95)
    assert not torch.allclose(torch.where(mask, trl_095, 0.0), ours_095)
