"""Claims of the DPO-family page. KTO, SimPO and ORPO are not in snippets/, so each is written
here from its loss as TRL / OpenRLHF implement it, and the page's statements about how it
relates to DPO are checked against snippets.rl.dpo.dpo_loss."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.dpo import dpo_loss


def _simpo(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor, beta: float, gamma: float):
    """−log σ(β·avg log π(y_w) − β·avg log π(y_l) − γ)   (TRL CPOTrainer, loss_type="simpo")."""
    return -F.logsigmoid(beta * avg_chosen - beta * avg_rejected - gamma).mean()


def _orpo_log_odds_ratio(avg_chosen: torch.Tensor, avg_rejected: torch.Tensor) -> torch.Tensor:
    """log odds(y_w) − log odds(y_l) with P = exp(average token log-prob), as TRL writes it."""
    return (avg_chosen - avg_rejected) - (
        torch.log1p(-torch.exp(avg_chosen)) - torch.log1p(-torch.exp(avg_rejected))
    )


def _kto(logratio: torch.Tensor, desirable: torch.Tensor, z0: torch.Tensor, beta: float):
    """Per-example KTO loss: 1 − σ(β(r − z0)) if desirable else 1 − σ(β(z0 − r))."""
    z0 = z0.detach().clamp(min=0)
    return torch.where(
        desirable,
        1 - torch.sigmoid(beta * (logratio - z0)),
        1 - torch.sigmoid(beta * (z0 - logratio)),
    )


def _avg_logps(seed: int, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    return -3 * torch.rand(n, generator=g, dtype=torch.float64) - 0.01  # (n,) in (−3, 0)


def test_simpo_is_dpo_on_averages_with_a_constant_reference() -> None:
    """SimPO = DPO on length-averaged log-probs with log π_ref(y_w) = γ/β and log π_ref(y_l) = 0."""
    chosen, rejected = _avg_logps(0), _avg_logps(1)
    beta, gamma = 2.0, 0.5
    ref_c = torch.full_like(chosen, gamma / beta)
    via_dpo = dpo_loss(chosen, rejected, ref_c, torch.zeros_like(rejected), beta=beta)[0]
    assert_close(via_dpo, _simpo(chosen, rejected, beta, gamma))
    # the margin matters: without γ the loss is smaller on the same data
    assert float(_simpo(chosen, rejected, beta, 0.0)) < float(_simpo(chosen, rejected, beta, gamma))


def test_orpo_log_odds_ratio_matches_the_definition() -> None:
    chosen, rejected = _avg_logps(2), _avg_logps(3)
    p_c, p_r = chosen.exp(), rejected.exp()
    direct = torch.log((p_c / (1 - p_c)) / (p_r / (1 - p_r)))
    assert_close(_orpo_log_odds_ratio(chosen, rejected), direct)


def test_orpo_needs_no_reference_and_reduces_to_sft_at_lambda_zero() -> None:
    chosen = _avg_logps(4).requires_grad_(True)
    rejected = _avg_logps(5)
    nll = -chosen.mean()  # SFT term on the chosen responses
    orpo_zero = nll + 0.0 * -F.logsigmoid(_orpo_log_odds_ratio(chosen, rejected)).mean()
    assert_close(orpo_zero, nll)
    # with λ > 0 the odds-ratio term adds a push on the chosen log-probs beyond SFT
    orpo = nll + 0.1 * -F.logsigmoid(_orpo_log_odds_ratio(chosen, rejected)).mean()
    (g_orpo,) = torch.autograd.grad(orpo, chosen)
    (g_nll,) = torch.autograd.grad(nll, chosen)
    assert (g_orpo < g_nll).all()  # both negative; ORPO's is larger in magnitude


def test_kto_loss_is_bounded_and_uses_a_detached_reference_point() -> None:
    logratio = torch.linspace(-50, 50, 101, dtype=torch.float64).requires_grad_(True)
    desirable = torch.arange(101) % 2 == 0
    z0 = torch.tensor(0.3, dtype=torch.float64, requires_grad=True)
    losses = _kto(logratio, desirable, z0, beta=0.1)
    assert ((losses >= 0) & (losses <= 1)).all()  # unlike DPO's −log σ, which is unbounded
    losses.sum().backward()
    assert z0.grad is None or float(z0.grad) == 0.0
    # desirable examples want r above z0, undesirable ones below it
    assert (logratio.grad[desirable] < 0).all() and (logratio.grad[~desirable] > 0).all()


def test_kto_with_zero_reference_point_at_initialisation() -> None:
    """At π_θ = π_ref every log-ratio is 0 and z0 = 0: each example's loss is 1 − σ(0) = ½."""
    losses = _kto(torch.zeros(4), torch.tensor([True, False, True, False]), torch.tensor(0.0), 0.1)
    assert_close(losses, torch.full((4,), 0.5))
    assert math.isclose(float(dpo_loss(*(torch.zeros(1),) * 4)[0]), math.log(2), rel_tol=1e-6)
