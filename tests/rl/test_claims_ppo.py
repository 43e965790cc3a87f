"""Claims of the PPO page not covered by tests/rl/test_ppo.py: the clipped objective is a
pessimistic bound of the unclipped surrogate, the value clip only stops moves towards the
target, the per-token KL reward sums to score − β Σ k1, and the first update of an iteration
has the same value-loss gradient with or without the value clip."""

from __future__ import annotations

import torch
from torch.testing import assert_close

from snippets.rl.gae import gae
from snippets.rl.kl import kl_k1
from snippets.rl.ppo import clipped_surrogate, ppo_value_loss


def test_clipped_objective_is_a_lower_bound_equal_inside_the_range() -> None:
    g = torch.Generator().manual_seed(0)
    log_ratio = 0.5 * torch.randn(64, 8, generator=g, dtype=torch.float64)  # (B, T)
    adv = torch.randn(64, 8, generator=g, dtype=torch.float64)  # (B, T)
    loss, ratio, _ = clipped_surrogate(log_ratio, adv, 0.2, 0.2)
    objective = -loss  # L^CLIP per token
    unclipped = ratio * adv  # ρ A
    assert (objective <= unclipped + 1e-12).all()  # pessimistic: never above the surrogate
    inside = (ratio >= 0.8) & (ratio <= 1.2)
    assert inside.any() and (~inside).any()
    assert_close(objective[inside], unclipped[inside])  # identical inside [1 − ε, 1 + ε]
    assert (objective[~inside] < unclipped[~inside]).any()  # strictly lower somewhere outside


def test_value_clip_stops_only_moves_towards_the_target() -> None:
    old = torch.zeros(1, 4, dtype=torch.float64)
    returns = torch.tensor([[1.0, 1.0, -1.0, -1.0]], dtype=torch.float64)
    # 0: +0.6 towards R=1; 1: −0.6 away from R=1; 2: −0.6 towards R=−1; 3: +0.6 away from R=−1
    values = torch.tensor([[0.6, -0.6, -0.6, 0.6]], dtype=torch.float64, requires_grad=True)
    loss = ppo_value_loss(values, old, returns, torch.ones(1, 4), clip_eps=0.2)
    (grad,) = torch.autograd.grad(loss, values)
    assert grad[0, 0] == 0.0 and grad[0, 2] == 0.0  # moved > ε towards the target: frozen
    # moved away: the unclipped error is larger, full gradient (V − R) / N with token-mean
    assert_close(grad[0, 1], (values[0, 1] - returns[0, 1]).detach() / 4)
    assert_close(grad[0, 3], (values[0, 3] - returns[0, 3]).detach() / 4)


def test_value_clip_also_freezes_a_critic_that_overshot_the_target() -> None:
    old, returns = torch.zeros(1, 1), torch.ones(1, 1)
    values = torch.tensor([[1.5]], requires_grad=True)  # moved 1.5 > ε, past R = 1
    loss = ppo_value_loss(values, old, returns, torch.ones(1, 1), clip_eps=0.2)
    (grad,) = torch.autograd.grad(loss, values)
    assert grad.item() == 0.0


def test_value_coefficient_is_nearly_inert_under_adam_with_separate_critic() -> None:
    """Disjoint policy and critic parameters, one Adam: c_v = 0.1 and 1.0 give (almost) the
    same critic, because Adam divides each gradient by its running RMS. Plain SGD does not."""

    def critic_after(c_v: float, optimiser: type[torch.optim.Optimizer]) -> torch.Tensor:
        torch.manual_seed(0)
        policy, critic = torch.nn.Linear(4, 3), torch.nn.Linear(4, 1)
        opt = optimiser([*policy.parameters(), *critic.parameters()], lr=0.01)
        x, target = torch.randn(16, 4), torch.randn(16, 1)
        for _ in range(20):
            pg_loss = policy(x).logsumexp(-1).mean()
            v_loss = 0.5 * (critic(x) - target).square().mean()
            opt.zero_grad()
            (pg_loss + c_v * v_loss).backward()
            opt.step()
        return critic.weight.detach().clone()

    torch.manual_seed(0)
    torch.nn.Linear(4, 3)  # the same draws as in critic_after: the policy first, then the critic
    start = torch.nn.Linear(4, 1).weight.detach().clone()
    adam_small, adam_big = critic_after(0.1, torch.optim.Adam), critic_after(1.0, torch.optim.Adam)
    moved = (adam_big - start).abs().max()
    assert moved > 0.1  # the critic did learn
    assert (adam_small - adam_big).abs().max() < 1e-3 * moved
    sgd_small, sgd_big = critic_after(0.1, torch.optim.SGD), critic_after(1.0, torch.optim.SGD)
    assert (sgd_small - sgd_big).abs().max() > 0.1 * (sgd_big - start).abs().max()


def test_value_clip_has_no_effect_on_the_first_update() -> None:
    g = torch.Generator().manual_seed(1)
    old = torch.randn(3, 5, generator=g, dtype=torch.float64)
    returns = torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]])
    v1 = old.clone().requires_grad_(True)  # V_φ = V_old at the first minibatch
    v2 = old.clone().requires_grad_(True)
    plain = ppo_value_loss(v1, old, returns, mask)
    clipped = ppo_value_loss(v2, old, returns, mask, clip_eps=0.2)
    assert_close(clipped, plain)
    (g1,) = torch.autograd.grad(plain, v1)
    (g2,) = torch.autograd.grad(clipped, v2)
    assert_close(g2, g1)


def test_kl_reward_sums_to_score_minus_beta_kl_and_gae_lambda_one_sees_it() -> None:
    g = torch.Generator().manual_seed(2)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    old_lp = -torch.rand(2, 4, generator=g, dtype=torch.float64)
    ref_lp = -torch.rand(2, 4, generator=g, dtype=torch.float64)
    values = torch.randn(2, 4, generator=g, dtype=torch.float64)
    score = torch.tensor([0.7, -1.3], dtype=torch.float64)
    beta = 0.1
    rewards = -beta * kl_k1(old_lp, ref_lp)  # (B, T)
    last = mask.sum(dim=1) - 1
    rewards[torch.arange(2), last] += score
    kl_sum = (kl_k1(old_lp, ref_lp) * mask).sum(dim=1)  # (B,)
    assert_close((rewards * mask).sum(dim=1), score - beta * kl_sum)
    advantages, _ = gae(rewards, values, mask, gamma=1.0, lam=1.0)
    # λ = 1, γ = 1: A_0 = (score − β Σ_t k1_t) − V_0
    assert_close(advantages[:, 0], score - beta * kl_sum - values[:, 0])
