"""Claims of the IPO page beyond tests/rl/test_dpo.py: with preference probability p the
expected DPO loss is minimised at Δ = logit(p)/β, which runs to infinity as p → 1 whatever β
is; IPO's minimiser (p − ½)/β stays finite; Ψ = logit recovers the Bradley-Terry reward gap;
and token-averaged IPO targets a per-token margin, so its summed margin grows with length."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.dpo import dpo_loss, ipo_loss

ZERO = torch.zeros(1, dtype=torch.float64)


def _expected_dpo(delta: torch.Tensor, p: float, beta: float) -> torch.Tensor:
    """p · loss(y_w ≻ y_l) + (1 − p) · loss(y_l ≻ y_w), as a function of Δ."""
    forward = dpo_loss(delta, ZERO, ZERO, ZERO, beta=beta)[0]
    backward = dpo_loss(ZERO, delta, ZERO, ZERO, beta=beta)[0]
    return p * forward + (1 - p) * backward


def _expected_ipo(delta: torch.Tensor, p: float, beta: float) -> torch.Tensor:
    forward = ipo_loss(delta, ZERO, ZERO, ZERO, beta=beta)[0]
    backward = ipo_loss(ZERO, delta, ZERO, ZERO, beta=beta)[0]
    return p * forward + (1 - p) * backward


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5])
def test_dpo_minimiser_is_logit_p_over_beta(beta: float) -> None:
    for p in (0.6, 0.9, 0.99):
        delta = torch.tensor([math.log(p / (1 - p)) / beta], dtype=torch.float64)
        delta.requires_grad_(True)
        (grad,) = torch.autograd.grad(_expected_dpo(delta, p, beta), delta)
        assert abs(float(grad)) < 1e-10


@pytest.mark.parametrize("beta", [0.05, 0.1, 0.5, 5.0])
def test_deterministic_preference_dpo_has_no_finite_minimiser(beta: float) -> None:
    """p = 1: the loss keeps falling as Δ grows (gradient < 0 everywhere), for every β."""
    deltas = torch.linspace(-20, 100, 121, dtype=torch.float64).requires_grad_(True)  # βΔ ≤ 500
    losses = torch.stack([_expected_dpo(d.reshape(1), 1.0, beta) for d in deltas])
    (grad,) = torch.autograd.grad(losses.sum(), deltas)
    assert (grad < 0).all()
    assert (losses[1:] <= losses[:-1]).all()
    assert float(losses[-1].detach()) < float(losses[0].detach())


def test_ipo_minimiser_is_finite_and_scales_with_one_over_beta() -> None:
    for beta in (0.05, 0.1, 0.5):
        for p in (0.6, 0.9, 1.0):
            delta = torch.tensor([(p - 0.5) / beta], dtype=torch.float64, requires_grad=True)
            (grad,) = torch.autograd.grad(_expected_ipo(delta, p, beta), delta)
            assert abs(float(grad)) < 1e-10
    # at p = 1 the target is 1/(2β): β still sets the size of the margin
    assert (1.0 - 0.5) / 0.1 == pytest.approx(1 / (2 * 0.1))


def test_logit_psi_recovers_the_reward_gap_and_is_unbounded() -> None:
    r1, r2 = torch.tensor(1.3), torch.tensor(-0.4)
    p = torch.sigmoid(r1 - r2)  # Bradley-Terry preference probability
    assert_close(torch.logit(p), r1 - r2)  # Ψ = logit turns ΨPO back into reward maximisation
    near_one = torch.tensor([0.9, 0.99, 0.999999], dtype=torch.float64)
    assert (torch.logit(near_one).diff() > 0).all() and float(torch.logit(near_one)[-1]) > 13
    assert (near_one <= 1).all()  # Ψ = identity stays in [0, 1]


def test_token_averaged_ipo_targets_a_margin_that_grows_with_length() -> None:
    """With |y_w| = |y_l| = L and averaged log-probs, the summed margin at the optimum is L/(2β)."""
    beta = 0.25
    for length in (1, 4, 16):
        lengths = torch.full((1,), length)
        pc = torch.tensor([length / (2 * beta)], dtype=torch.float64, requires_grad=True)
        loss = ipo_loss(
            pc, ZERO, ZERO, ZERO, beta, chosen_lengths=lengths, rejected_lengths=lengths
        )
        (grad,) = torch.autograd.grad(loss[0], pc)
        assert abs(float(grad)) < 1e-12


@pytest.mark.parametrize("beta", [0.1, 0.5])
def test_loss_and_gradient_at_initialisation(beta: float) -> None:
    """At Δ = 0: IPO loss 1/(4β²) with ∂/∂Δ = −1/β; DPO loss log 2 with ∂/∂Δ = −β/2."""
    delta = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    ipo = ipo_loss(delta, ZERO, ZERO, ZERO, beta=beta)[0]
    (g_ipo,) = torch.autograd.grad(ipo, delta)
    assert float(ipo.detach()) == pytest.approx(1 / (4 * beta**2))
    assert float(g_ipo) == pytest.approx(-1 / beta)
    dpo = dpo_loss(delta, ZERO, ZERO, ZERO, beta=beta)[0]
    (g_dpo,) = torch.autograd.grad(dpo, delta)
    assert float(dpo.detach()) == pytest.approx(math.log(2))
    assert float(g_dpo) == pytest.approx(-beta / 2)
