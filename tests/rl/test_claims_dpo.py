"""Claims of the DPO page beyond tests/rl/test_dpo.py: each step of the derivation from the
KL-regularised RLHF objective, checked by enumeration on a 6-response problem, and the
properties of the loss the page states (shift invariance, averaged vs summed log-probs), the
toy run fitting label noise, and a reference that is the policy itself."""

from __future__ import annotations

import math

import torch
from torch.testing import assert_close

from snippets.rl.dpo import dpo_loss
from snippets.rl.toy import TablePolicy, expected_reward, preference_pairs, sequence_reward

BETA = 0.5


def _problem(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    log_ref = torch.log_softmax(torch.randn(6, generator=g, dtype=torch.float64), -1)  # (Y,)
    reward = torch.randn(6, generator=g, dtype=torch.float64)  # (Y,) r(x, y)
    return log_ref, reward


def _objective(log_pi: torch.Tensor, log_ref: torch.Tensor, reward: torch.Tensor) -> torch.Tensor:
    """E_{y~π}[r(y)] − β KL(π ‖ π_ref), computed exactly over all responses."""
    pi = log_pi.exp()
    return (pi * reward).sum() - BETA * (pi * (log_pi - log_ref)).sum()


def test_optimal_policy_is_the_tilted_reference_and_attains_beta_log_z() -> None:
    log_ref, reward = _problem()
    log_z = torch.logsumexp(log_ref + reward / BETA, -1)  # log Σ_y π_ref(y) exp(r(y)/β)
    log_opt = log_ref + reward / BETA - log_z  # log π*(y)
    assert_close(log_opt.exp().sum(), torch.tensor(1.0).double())
    assert_close(_objective(log_opt, log_ref, reward), BETA * log_z)
    g = torch.Generator().manual_seed(1)
    for _ in range(100):  # every other policy is worse, by exactly β KL(π ‖ π*)
        log_pi = torch.log_softmax(3 * torch.randn(6, generator=g, dtype=torch.float64), -1)
        gap = BETA * (log_pi.exp() * (log_pi - log_opt)).sum()
        assert_close(_objective(log_pi, log_ref, reward), BETA * log_z - gap)
        assert gap > 0


def test_reward_reparameterisation() -> None:
    """r(y) = β log(π*(y)/π_ref(y)) + β log Z: the implicit reward is r up to a constant."""
    log_ref, reward = _problem(2)
    log_z = torch.logsumexp(log_ref + reward / BETA, -1)
    log_opt = log_ref + reward / BETA - log_z
    assert_close(BETA * (log_opt - log_ref) + BETA * log_z, reward)


def test_partition_function_cancels_in_bradley_terry() -> None:
    """σ(r(y1) − r(y2)) is unchanged by any shift c(x), in particular by β log Z(x)."""
    log_ref, reward = _problem(3)
    log_z = torch.logsumexp(log_ref + reward / BETA, -1)
    implicit = BETA * (log_ref + reward / BETA - log_z - log_ref)  # β log π*/π_ref
    pairs = torch.combinations(torch.arange(6), 2)  # (15, 2)
    p_true = torch.sigmoid(reward[pairs[:, 0]] - reward[pairs[:, 1]])
    p_implicit = torch.sigmoid(implicit[pairs[:, 0]] - implicit[pairs[:, 1]])
    assert_close(p_implicit, p_true)
    assert not torch.allclose(implicit, reward)  # the rewards differ, the preferences do not


def test_loss_only_sees_the_difference_so_both_logprobs_can_fall() -> None:
    g = torch.Generator().manual_seed(4)
    pc, pr, rc, rr = (-10 * torch.rand(5, generator=g, dtype=torch.float64) for _ in range(4))
    shifted = dpo_loss(pc - 3.0, pr - 3.0, rc, rr, beta=0.1)[0]
    assert_close(shifted, dpo_loss(pc, pr, rc, rr, beta=0.1)[0])


def test_averaged_logprobs_equal_a_smaller_beta_for_equal_lengths() -> None:
    """With |y_c| = |y_r| = L, DPO on token-averaged log-probs is DPO with β / L on sums."""
    g = torch.Generator().manual_seed(5)
    pc, pr, rc, rr = (-10 * torch.rand(5, generator=g, dtype=torch.float64) for _ in range(4))
    length = 7.0
    averaged = dpo_loss(pc / length, pr / length, rc / length, rr / length, beta=0.7)[0]
    assert_close(averaged, dpo_loss(pc, pr, rc, rr, beta=0.7 / length)[0])


def test_gradient_weight_is_the_implicit_reward_model_error() -> None:
    """∂L/∂log π(y_c) = −β σ(r̂(y_r) − r̂(y_c)): large when the implicit ranking is wrong."""
    zero = torch.zeros(2, dtype=torch.float64)
    pc = torch.tensor([4.0, -4.0], dtype=torch.float64, requires_grad=True)  # right, wrong
    loss, r_c, r_r = dpo_loss(pc, zero, zero, zero, beta=BETA)
    (grad,) = torch.autograd.grad(loss, pc)
    assert_close(grad, -BETA * torch.sigmoid(r_r - r_c) / 2)
    assert abs(grad[1]) > 5 * abs(grad[0])  # the misranked pair dominates


def _toy_run(steps: list[int]) -> dict[int, tuple[float, float, float]]:
    """The page's DPO run on the toy bandit: (loss, accuracy, E[R]) at the given steps."""
    torch.manual_seed(0)
    chosen, rejected = preference_pairs(256, torch.Generator().manual_seed(0))
    policy, reference = TablePolicy(), TablePolicy()
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    with torch.no_grad():
        ref_c, ref_r = reference.logprobs(chosen).sum(-1), reference.logprobs(rejected).sum(-1)
    out = {}
    for step in range(max(steps) + 1):
        pol_c, pol_r = policy.logprobs(chosen).sum(-1), policy.logprobs(rejected).sum(-1)
        loss, r_c, r_r = dpo_loss(pol_c, pol_r, ref_c, ref_r, beta=0.1)
        if step in steps:
            acc = float((r_c > r_r).float().mean())
            out[step] = (loss.item(), acc, expected_reward(policy))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return out


def test_toy_run_fits_label_noise_when_trained_on() -> None:
    chosen, rejected = preference_pairs(256, torch.Generator().manual_seed(0))
    hidden_c, hidden_r = sequence_reward(chosen), sequence_reward(rejected)
    assert round(float((hidden_c > hidden_r).float().mean()), 2) == 0.66  # the hidden reward
    assert round(float((hidden_c < hidden_r).float().mean()), 2) == 0.23  # labelled backwards
    assert round(float((hidden_c == hidden_r).float().mean()), 2) == 0.11  # equal rewards
    run = _toy_run([100, 300, 500])
    assert round(run[100][1], 2) == 0.71 and round(run[100][2], 2) == 0.90
    assert round(run[500][1], 2) == 0.72 and round(run[500][0], 4) == 0.5365
    assert abs(run[500][0] - run[300][0]) < 1e-3  # settled: a finite optimum
    assert round(run[500][2], 2) == 0.86 and run[500][2] < run[300][2] < run[100][2]


def test_a_reference_that_is_the_policy_itself() -> None:
    """Detached (dpo_loss detaches it): loss log 2 forever, yet the policy moves. In the graph:
    Δ ≡ 0 as a function of θ, so the gradient is 0."""
    chosen, rejected = preference_pairs(64, torch.Generator().manual_seed(1))
    policy = TablePolicy()
    opt = torch.optim.Adam(policy.parameters(), lr=0.05)
    start = policy.logits.detach().clone()
    for _ in range(20):
        pol_c, pol_r = policy.logprobs(chosen).sum(-1), policy.logprobs(rejected).sum(-1)
        loss, _, _ = dpo_loss(pol_c, pol_r, pol_c, pol_r, beta=0.1)
        assert abs(loss.item() - math.log(2)) < 1e-6  # float32
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert (policy.logits.detach() - start).abs().max() > 0.1  # it moved all the same
    pol_c, pol_r = policy.logprobs(chosen).sum(-1), policy.logprobs(rejected).sum(-1)
    in_graph = -torch.nn.functional.logsigmoid(0.1 * ((pol_c - pol_c) - (pol_r - pol_r))).mean()
    (grad,) = torch.autograd.grad(
        in_graph, policy.logits, allow_unused=True, materialize_grads=True
    )
    assert grad.abs().max() == 0.0
