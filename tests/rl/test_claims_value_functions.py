"""Claims of the values page (docs/rl/value-functions.md), checked exactly on a small
autoregressive "LLM": a vocabulary of K = 3 tokens, responses of T = 3 tokens, a softmax policy
with its own logits for every prefix, a reward on every step (like a per-token KL term) plus an
outcome reward at the end. Every expectation is a sum over all K^T responses.

* Q(s_t, a_t) = r_t + V(s_{t+1}) exactly (deterministic transitions), and = R at the last token;
* V(s) = E_{a~π}[Q(s, a)], so the advantage has mean zero under the policy;
* GAE with λ = 0 and the true V is the advantage exactly, for every sampled token;
* GAE with λ = 1 (G_t − V(s_t)) is an unbiased one-sample estimate of the advantage;
* the mean reward of a group of samples is an unbiased estimate of V(x);
* with a noisy reward the TD error equals the advantage only on average over the noise;
* the failed response of the page's GAE example: λ = 0 gives [−0.1, −0.3, −0.2], λ = 0.95 is
  close to λ = 1's R − V(s_t).
"""

from __future__ import annotations

import itertools

import torch
from torch.testing import assert_close

from snippets.rl.gae import gae

K, T = 3, 3
G = torch.Generator().manual_seed(0)
PREFIXES = [p for n in range(T) for p in itertools.product(range(K), repeat=n)]
LOGITS = {p: torch.randn(K, generator=G, dtype=torch.float64) for p in PREFIXES}
STEP_REWARD = {p: 0.1 * torch.randn(K, generator=G, dtype=torch.float64) for p in PREFIXES}
OUTCOME = {y: float(torch.rand(1, generator=G)) for y in itertools.product(range(K), repeat=T)}
RESPONSES = list(OUTCOME)


def pi(prefix: tuple[int, ...]) -> torch.Tensor:
    return torch.softmax(LOGITS[prefix], dim=0)  # (K,) π(· | x, prefix)


def rewards_of(y: tuple[int, ...]) -> list[float]:
    """r_1 .. r_T of a response: the step rewards, plus the outcome at the last token."""
    r = [float(STEP_REWARD[y[:t]][y[t]]) for t in range(T)]
    r[-1] += OUTCOME[y]
    return r


def prob_of_continuation(y: tuple[int, ...], start: int) -> float:
    """π(y_start, ..., y_T | y_<start)."""
    steps = [float(pi(y[:t])[y[t]]) for t in range(start, T)]
    return float(torch.tensor(steps, dtype=torch.float64).prod())


def value(prefix: tuple[int, ...]) -> float:
    """V(s) = E[G_t | s_t = prefix], by summing over every completion of the prefix."""
    n = len(prefix)
    total = 0.0
    for y in RESPONSES:
        if y[:n] == prefix:
            total += prob_of_continuation(y, n) * sum(rewards_of(y)[n:])
    return total


def q_value(prefix: tuple[int, ...], a: int) -> float:
    """Q(s, a) = E[G_t | s_t = prefix, a_t = a], by summing over every completion."""
    n = len(prefix)
    total = 0.0
    for y in RESPONSES:
        if y[: n + 1] == (*prefix, a):
            total += prob_of_continuation(y, n + 1) * sum(rewards_of(y)[n:])
    return total


def test_q_is_reward_plus_next_value_and_v_is_the_policy_average_of_q() -> None:
    for prefix in PREFIXES:
        qs = torch.tensor([q_value(prefix, a) for a in range(K)], dtype=torch.float64)
        assert_close(float((pi(prefix) * qs).sum()), value(prefix))
        advantages = qs - value(prefix)
        assert_close(float((pi(prefix) * advantages).sum()), 0.0, atol=1e-12, rtol=0)
        for a in range(K):
            r = float(STEP_REWARD[prefix][a])
            if len(prefix) < T - 1:
                assert_close(q_value(prefix, a), r + value((*prefix, a)))
            else:  # last token: no next state, Q is the reward of the last step
                outcome = OUTCOME[(*prefix, a)]
                assert_close(q_value(prefix, a), r + outcome)


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every response as a row: its per-token rewards, true values V(s_t) and advantages."""
    rewards = torch.tensor([rewards_of(y) for y in RESPONSES], dtype=torch.float64)  # (N, T)
    values = torch.tensor(
        [[value(y[:t]) for t in range(T)] for y in RESPONSES], dtype=torch.float64
    )  # (N, T)
    adv = torch.tensor(
        [[q_value(y[:t], y[t]) - value(y[:t]) for t in range(T)] for y in RESPONSES],
        dtype=torch.float64,
    )  # (N, T) A(s_t, y_t)
    return rewards, values, adv


def test_td_error_with_the_true_value_is_the_advantage_exactly() -> None:
    rewards, values, adv = _batch()
    td, _ = gae(rewards, values, torch.ones_like(rewards), gamma=1.0, lam=0.0)
    assert_close(td, adv)


def test_monte_carlo_advantage_is_unbiased_given_the_state_and_action() -> None:
    rewards, values, adv = _batch()
    mc, targets = gae(rewards, values, torch.ones_like(rewards), gamma=1.0, lam=1.0)
    # λ = 1: A_t = G_t − V(s_t) and the critic's target is the return-to-go G_t
    assert_close(targets, rewards.flip(1).cumsum(1).flip(1))
    probs = torch.tensor([prob_of_continuation(y, 0) for y in RESPONSES], dtype=torch.float64)
    for t in range(T):
        for key in {y[: t + 1] for y in RESPONSES}:  # every (s_t, a_t)
            rows = torch.tensor([y[: t + 1] == key for y in RESPONSES])
            weights = probs[rows] / probs[rows].sum()  # π(completion | s_t, a_t)
            expected_mc = float((weights * mc[rows, t]).sum())
            assert_close(expected_mc, float(adv[rows, t][0]))
    # a single sample is not the advantage: the estimate is noisy
    assert (mc - adv).abs().max() > 1e-3


def test_group_mean_reward_is_an_unbiased_estimate_of_the_prompt_value() -> None:
    probs = torch.tensor([prob_of_continuation(y, 0) for y in RESPONSES], dtype=torch.float64)
    returns = torch.tensor([sum(rewards_of(y)) for y in RESPONSES], dtype=torch.float64)
    # E[mean of G i.i.d. returns] = E[return] = V(x), for any G; enumerate G = 2 pairs
    pair = probs[:, None] * probs[None, :]
    group_mean = 0.5 * (returns[:, None] + returns[None, :])
    assert_close(float((pair * group_mean).sum()), value(()))


def test_noisy_reward_td_error_is_the_advantage_only_on_average() -> None:
    # outcome + ε, ε = ±0.5 with probability ½ each: same mean, so V, Q and A are unchanged
    rewards, values, adv = _batch()
    deltas = []
    for noise in (0.5, -0.5):
        noisy = rewards.clone()
        noisy[:, -1] += noise
        td, _ = gae(noisy, values, torch.ones_like(noisy), gamma=1.0, lam=0.0)
        assert (td[:, -1] - adv[:, -1]).abs().min() > 0.4  # one draw is off by ±0.5
        deltas.append(td)
    assert_close(0.5 * (deltas[0] + deltas[1]), adv)  # the average over the noise is A


def test_failed_response_rows_of_the_page_example() -> None:
    # the failed response of the page's GAE example: R = 0, critic values 0.6, 0.5, 0.2
    rewards = torch.zeros(1, 3, dtype=torch.float64)
    values = torch.tensor([[0.6, 0.5, 0.2]], dtype=torch.float64)
    mask = torch.ones(1, 3)
    td, _ = gae(rewards, values, mask, gamma=1.0, lam=0.0)
    mid, _ = gae(rewards, values, mask, gamma=1.0, lam=0.95)
    mc, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # λ = 0: δ_t = V(s_{t+1}) − V(s_t); token 2 (index 1), where V falls 0.5 → 0.2, is blamed most
    assert_close(td, torch.tensor([[-0.1, -0.3, -0.2]], dtype=torch.float64))
    assert int(td.argmin()) == 1
    # λ = 1: R − V(s_t), the baseline alone
    assert_close(mc, -values)
    assert_close(
        mid, torch.tensor([[-0.5655, -0.49, -0.2]], dtype=torch.float64), atol=5e-5, rtol=0
    )
    # λ = 0.95 is much closer to λ = 1 than to λ = 0
    assert (mid - mc).abs().max() < 0.05 < (mid - td).abs().max()
