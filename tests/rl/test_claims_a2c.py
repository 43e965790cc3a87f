"""Claims of the A2C page: the whole first-minibatch PPO loss (clipped policy term, clipped
value term, entropy bonus) has the same gradient as the A2C loss, and the entropy bonus's
sign makes a gradient step raise the entropy. Baselines' segment returns bootstrap every step
from the segment's last state (k_t = min(n − t mod n, steps to the episode's end) real rewards),
which GAE(λ = 1) reproduces with the bootstrap value appended; c_v = 1 with the ½ is Baselines'
0.5·MSE; an undetached advantage biases the critic by −log π / c_v (entropy / c_v on average)."""

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


def _discount_with_dones(rewards: list[float], dones: list[float], gamma: float) -> list[float]:
    """Our port of Baselines' a2c/utils.py helper: a backward sum that restarts at each done."""
    out, running = [], 0.0
    for reward, done in zip(rewards[::-1], dones[::-1], strict=True):
        running = reward + gamma * running * (1.0 - done)
        out.append(running)
    return out[::-1]


def _baselines_segment_returns(rewards, dones, last_value, gamma):
    """Baselines runner.py for one environment and one segment of n steps."""
    if dones[-1] == 0:  # bootstrap from V of the state the segment stopped at
        return _discount_with_dones([*rewards, last_value], [*dones, 0.0], gamma)[:-1]
    return _discount_with_dones(rewards, dones, gamma)


def test_baselines_bootstraps_every_step_of_a_segment_from_its_last_state() -> None:
    g = torch.Generator().manual_seed(1)
    n, gamma = 5, 0.9
    rewards = torch.randn(2 * n, generator=g, dtype=torch.float64).tolist()  # two segments
    values = torch.randn(2 * n + 1, generator=g, dtype=torch.float64).tolist()  # V(s_0..s_2n)
    dones = [0.0] * (2 * n)
    dones[6] = 1.0  # the episode terminates after step 6 (inside the second segment)
    ours = []
    for start in (0, n):
        seg = slice(start, start + n)
        ours += _baselines_segment_returns(rewards[seg], dones[seg], values[start + n], gamma)
    for t in range(2 * n):
        ends = [k for k in range(t, 2 * n) if dones[k]]  # steps at which an episode ends
        d_t = ends[0] - t + 1 if ends else 2 * n  # steps to the end of t's episode (incl. t)
        k_t = min(n - t % n, d_t)  # real rewards used by step t
        boot = 0.0 if dones[t + k_t - 1] else values[t + k_t]  # V = 0 after a termination
        expected = sum(gamma**i * rewards[t + i] for i in range(k_t)) + gamma**k_t * boot
        assert_close(ours[t], expected)
    # k_t runs n, n − 1, ..., 1 over the first segment: not one fixed n for every step
    fixed_n = [
        sum(gamma**i * rewards[t + i] for i in range(n)) + gamma**n * values[t + n]
        for t in range(n)
    ]
    assert_close(ours[0], fixed_n[0])
    assert all(abs(ours[t] - fixed_n[t]) > 1e-6 for t in range(1, n))


def test_gae_lambda_one_with_the_bootstrap_appended_is_the_segment_return() -> None:
    g = torch.Generator().manual_seed(2)
    n, gamma = 5, 0.9
    rewards = torch.randn(n, generator=g, dtype=torch.float64)
    values = torch.randn(n + 1, generator=g, dtype=torch.float64)  # V(s_0..s_n)
    baselines = _baselines_segment_returns(rewards.tolist(), [0.0] * n, float(values[n]), gamma)
    # V(s_n) as one more "reward", then nothing: GAE(λ = 1) returns are Baselines' returns
    ext_rewards = torch.cat([rewards, values[n : n + 1]])[None, :]  # (1, n + 1)
    ext_values = torch.cat([values[:n], torch.zeros(1, dtype=torch.float64)])[None, :]
    _, returns = gae(ext_rewards, ext_values, torch.ones(1, n + 1), gamma=gamma, lam=1.0)
    assert_close(returns[0, :n], torch.tensor(baselines, dtype=torch.float64))


def test_cv_one_with_the_half_is_baselines_half_mse() -> None:
    _, _, values, rewards, mask = _setup()
    full = torch.ones_like(mask)
    ours = 1.0 * ppo_value_loss(values, values, rewards, full)  # c_v · ½ mean (V − R)²
    baselines = 0.5 * (values - rewards).square().mean()  # vf_coef · MSE, vf_coef = 0.5
    assert_close(ours, baselines)
    assert not torch.allclose(0.5 * ppo_value_loss(values, values, rewards, full), baselines)


def test_undetached_advantage_biases_the_critic_by_log_pi_over_cv() -> None:
    # per token: −(R − V) log π + c_v ½ (V − R)² is minimised at V = R − log π / c_v
    logits0, tokens, _, rewards, mask = _setup()
    logprobs = token_logprobs(logits0, tokens)  # (B, T) < 0
    c_v = 0.5

    def loss_of(v: torch.Tensor) -> torch.Tensor:
        policy = masked_mean(-(rewards - v) * logprobs, mask)  # A = R − V not detached
        return policy + c_v * ppo_value_loss(v, v.detach(), rewards, mask)

    settled = (rewards - logprobs / c_v).requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_of(settled), settled)
    assert_close(grad[mask], torch.zeros_like(grad[mask]), atol=1e-12, rtol=0)
    at_returns = rewards.clone().requires_grad_(True)  # the unbiased fit is not stationary
    (grad_r,) = torch.autograd.grad(loss_of(at_returns), at_returns)
    assert (grad_r[mask] < 0).all()  # a descent step moves V above the returns
    # one V per state shared by all actions a ~ π: the bias is H[π] / c_v on average
    probs = torch.softmax(logits0[0, 0], dim=-1)  # (V,) π(· | s), V = 6 actions
    returns_a = torch.linspace(-1.0, 1.5, 6, dtype=torch.float64)  # (V,) R̂ after each action
    log_pi = torch.log(probs)

    def expected_loss(v: torch.Tensor) -> torch.Tensor:
        return (probs * (-(returns_a - v) * log_pi + c_v * 0.5 * (v - returns_a) ** 2)).sum()

    entropy = -(probs * log_pi).sum()
    v_star = ((probs * returns_a).sum() + entropy / c_v).requires_grad_(True)
    (grad_v,) = torch.autograd.grad(expected_loss(v_star), v_star)
    assert_close(float(grad_v), 0.0, atol=1e-12, rtol=0)
