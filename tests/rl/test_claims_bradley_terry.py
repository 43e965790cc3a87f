"""Claims of the Bradley-Terry page not already in tests/rl/test_bradley_terry.py: rewards are
identified only up to a constant per prompt, a tie (label 1/2) pulls the gap to 0, a margin m
moves the optimal gap above logit(p) (but not to logit(p) + m), the per-pair optimum is the
log-odds, and the reward gaps quoted on the page (1, 2, 3) mean 73%, 88% and 95%."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch.testing import assert_close

from snippets.rl.bradley_terry import bradley_terry_loss, preference_probability


def _soft_loss(diff: torch.Tensor, p: float, margin: float = 0.0) -> torch.Tensor:
    """Expected loss when the first response wins with probability p (label smoothing)."""
    return -(p * F.logsigmoid(diff - margin) + (1 - p) * F.logsigmoid(-diff - margin)).mean()


def test_a_constant_per_prompt_changes_nothing() -> None:
    g = torch.Generator().manual_seed(0)
    r_c = torch.randn(6, generator=g, dtype=torch.float64)
    r_r = torch.randn(6, generator=g, dtype=torch.float64)
    per_prompt = torch.randn(6, generator=g, dtype=torch.float64) * 10  # c(x), one per pair
    assert_close(
        bradley_terry_loss(r_c + per_prompt, r_r + per_prompt), bradley_terry_loss(r_c, r_r)
    )
    assert_close(
        preference_probability(r_c + per_prompt, r_r + per_prompt), preference_probability(r_c, r_r)
    )
    # but the scale is identified: doubling the rewards changes the probabilities
    assert not torch.allclose(
        preference_probability(2 * r_c, 2 * r_r), preference_probability(r_c, r_r)
    )


def _argmin_gap(p: float, margin: float) -> float:
    diff = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS(
        [diff],
        max_iter=200,
        tolerance_grad=1e-12,
        tolerance_change=1e-15,
        line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = _soft_loss(diff, p, margin)
        loss.backward()
        return loss

    opt.step(closure)
    return float(diff.detach())


def test_optimal_gap_is_the_log_odds() -> None:
    for p in (0.6, 0.8, 0.95):
        log_odds = torch.tensor([math.log(p / (1 - p))], dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(_soft_loss(log_odds, p), log_odds)
        assert_close(grad, torch.zeros(1).double())  # stationary point of a convex loss
        assert math.isclose(_argmin_gap(p, 0.0), math.log(p / (1 - p)), abs_tol=1e-5)


def test_a_tie_pulls_the_gap_to_zero() -> None:
    assert math.isclose(_argmin_gap(0.5, 0.0), 0.0, abs_tol=1e-8)
    diff = torch.tensor([2.0], dtype=torch.float64, requires_grad=True)
    _soft_loss(diff, 0.5).backward()
    assert float(diff.grad) > 0  # gradient descent shrinks a positive gap


def test_margin_on_every_pair_shifts_the_learned_gap() -> None:
    """Margin m on the observed winner: chosen gets Δ − m, and with label noise the optimum
    of p·(−log σ(Δ − m)) + (1−p)·(−log σ(−Δ − m)) is no longer logit(p)."""
    p, m = 0.8, 1.0
    gap = _argmin_gap(p, m)
    assert gap > math.log(p / (1 - p))  # the margin inflates the gap
    assert gap < math.log(p / (1 - p)) + m - 0.1  # but by less than the margin itself
    # with hard labels (p = 1) the loss keeps pushing: no finite optimum beyond the margin
    assert float(_soft_loss(torch.tensor([m + 5.0]).double(), 1.0, m)) < float(
        _soft_loss(torch.tensor([m + 1.0]).double(), 1.0, m)
    )
    # and the margin loss is the plain loss of a shifted gap (as in bradley_terry_loss)
    d = torch.tensor([0.3, 2.0], dtype=torch.float64)
    assert_close(bradley_terry_loss(d, torch.zeros(2).double(), m), _soft_loss(d, 1.0, m))


def test_gaps_quoted_on_the_page() -> None:
    zero = torch.zeros(3, dtype=torch.float64)
    probs = preference_probability(torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64), zero)
    assert_close(probs, torch.tensor([0.73, 0.88, 0.95], dtype=torch.float64), atol=0.005, rtol=0)


def test_standard_error_quoted_for_the_five_item_fit() -> None:
    """The page: with 20,000 comparisons each fitted difference r_i − r_0 has a standard error
    of about 0.034 to 0.044 (Fisher information), and the test's tolerance 0.12 is about 3 of
    them. The data are generated exactly as in
    test_maximum_likelihood_recovers_true_reward_differences (tests/rl/test_bradley_terry.py)."""
    g = torch.Generator().manual_seed(0)
    true_reward = torch.tensor([0.0, 0.5, 1.5, -1.0, 2.5], dtype=torch.float64)
    n = 20_000
    a = torch.randint(0, 5, (n,), generator=g)
    b = (a + torch.randint(1, 5, (n,), generator=g)) % 5
    # Fisher information of Σ log σ(±(r_a − r_b)) at the true rewards: Σ p(1 − p) x xᵀ,
    # x = e_a − e_b; it does not depend on which response won.
    p = preference_probability(true_reward[a], true_reward[b])  # (n,)
    x = F.one_hot(a, 5).double() - F.one_hot(b, 5).double()  # (n, 5)
    info = (x * (p * (1 - p)).unsqueeze(1)).T @ x  # (5, 5)
    # r_0 is pinned to 0 (only differences are identified): drop its row and column
    covariance = torch.linalg.inv(info[1:, 1:])
    standard_errors = covariance.diagonal().sqrt()
    assert ((standard_errors > 0.033) & (standard_errors < 0.045)).all(), standard_errors
    assert 0.12 / float(standard_errors.max()) > 2.5  # the tolerance is ≈ 3 standard errors
