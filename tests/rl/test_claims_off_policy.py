"""Claims of docs/rl/off-policy.md: the importance-sampling identity, the product form of the
sequence weight and the geometric growth of its second moment, the bias and variance of
truncated importance sampling (closed form vs Monte Carlo), and the rollout-correction weight.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch.testing import assert_close

from snippets.rl.aggregation import aggregate
from snippets.rl.ppo import clipped_surrogate

SHIFT = 1.5  # the page's target N(1.5, 1); behaviour N(0, 1)


def _normal_pdf(z: float) -> float:
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _normal_cdf(z: float) -> float:
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


def _tis_mean(cap: float, shift: float = SHIFT) -> float:
    """E_μ[min(w, C) x] for μ = N(0, 1), π = N(shift, 1), w = exp(shift·x − shift²/2)."""
    x_c = (math.log(cap) + shift**2 / 2) / shift  # w(x) ≥ C  ⇔  x ≥ x_c
    # below x_c: E_μ[w x 1{x<x_c}] = E_π[x 1{x<x_c}] = s Φ(x_c − s) − φ(x_c − s)
    below = shift * _normal_cdf(x_c - shift) - _normal_pdf(x_c - shift)
    # above x_c: C · E_μ[x 1{x≥x_c}] = C φ(x_c)
    return below + cap * _normal_pdf(x_c)


def _page_samples(seed: int = 0, repeats: int = 2000, n: int = 1000) -> torch.Tensor:
    torch.manual_seed(seed)
    return torch.randn(repeats, n, dtype=torch.float64)


def test_is_identity_by_enumeration() -> None:
    g = torch.Generator().manual_seed(0)
    pi = torch.softmax(torch.randn(7, generator=g, dtype=torch.float64), 0)  # (V,)
    mu = torch.softmax(torch.randn(7, generator=g, dtype=torch.float64), 0)  # (V,)
    f = torch.randn(7, generator=g, dtype=torch.float64)
    # E_π[f] = Σ_y μ(y) (π(y)/μ(y)) f(y)
    assert_close((mu * (pi / mu) * f).sum(), (pi * f).sum())


def test_sequence_weight_is_product_and_second_moment_grows_geometrically() -> None:
    g = torch.Generator().manual_seed(1)
    vocab = 3
    pi = torch.softmax(torch.randn(vocab, generator=g, dtype=torch.float64), 0)
    mu = torch.softmax(torch.randn(vocab, generator=g, dtype=torch.float64), 0)
    token_second_moment = (mu * (pi / mu) ** 2).sum()  # E_μ[w_t²] > 1 when π ≠ μ
    assert token_second_moment > 1.0
    for length in range(1, 5):
        second_moment = torch.zeros((), dtype=torch.float64)
        for seq in itertools.product(range(vocab), repeat=length):
            idx = torch.tensor(seq)
            w_product = (pi[idx] / mu[idx]).prod()
            w_exp_sum = torch.exp((pi[idx].log() - mu[idx].log()).sum())
            assert_close(w_product, w_exp_sum)  # product of ratios = exp of summed log-ratios
            second_moment += mu[idx].prod() * w_product**2
        # i.i.d. tokens: E_μ[w²] = (E_μ[w_t²])^T
        assert_close(second_moment, token_second_moment**length)


def test_plain_is_is_unbiased_within_monte_carlo_error() -> None:
    x = _page_samples()
    w = torch.exp(SHIFT * x - SHIFT**2 / 2)
    estimates = (w * x).mean(dim=1)  # (repeats,)
    standard_error = estimates.std() / math.sqrt(estimates.numel())
    assert abs(estimates.mean().item() - SHIFT) < 4 * standard_error.item()
    # the page's "+0.009 is about one standard error"
    assert 0.5 < abs(estimates.mean().item() - SHIFT) / standard_error.item() < 2.0


def test_tis_bias_matches_closed_form_and_is_negative() -> None:
    x = _page_samples()
    w = torch.exp(SHIFT * x - SHIFT**2 / 2)
    for cap in (10.0, 2.0):
        estimates = (w.clamp(max=cap) * x).mean(dim=1)
        expected = _tis_mean(cap)
        assert expected < SHIFT  # the cut samples are the large-x ones: negative bias
        assert abs(estimates.mean().item() - expected) < 0.01
    assert abs(_tis_mean(2.0) - 0.58) < 0.005  # "biases the estimate ... to about 0.58"
    assert abs(_tis_mean(1e12) - SHIFT) < 1e-9  # no truncation: unbiased


def test_tis_variance_is_bounded_and_shrinks_with_the_cap() -> None:
    x = _page_samples()
    w = torch.exp(SHIFT * x - SHIFT**2 / 2)
    stds = {}
    for cap in (math.inf, 10.0, 2.0):
        terms = w.clamp(max=cap) * x  # single-sample terms
        if math.isfinite(cap):
            # Var ≤ E[min(w, C)² x²] ≤ C² E_μ[x²] = C²
            assert terms.var().item() <= cap**2 * (x**2).mean().item()
        stds[cap] = terms.mean(dim=1).std().item()
    assert stds[math.inf] > 2.5 * stds[10.0] > 2.5 * 2.5 * stds[2.0]
    assert stds[math.inf] / stds[2.0] > 8.0  # "about ninefold"


def test_rollout_correction_weight() -> None:
    g = torch.Generator().manual_seed(2)
    rollout = -3.0 * torch.rand(3, 5, generator=g, dtype=torch.float64)  # (B, T)
    old = rollout + 0.5 * torch.randn(3, 5, generator=g, dtype=torch.float64)
    adv = torch.randn(3, 5, generator=g, dtype=torch.float64)
    mask = torch.ones(3, 5, dtype=torch.bool)
    cap = 2.0
    weights = torch.exp(old - rollout).clamp(max=cap)
    assert (weights <= cap).all()
    logprobs = old.clone().requires_grad_(True)
    per_token, _, _ = clipped_surrogate(logprobs - old, adv, 0.2, 0.2)
    aggregate(weights * per_token, mask).backward()
    # at π_θ = π_old the PPO gradient is −A/N per token; the weight scales it
    assert_close(logprobs.grad, -weights * adv / mask.sum())
    # identical engine and trainer log-probs: every weight is 1, no correction
    assert torch.equal(torch.exp(rollout - rollout).clamp(max=cap), torch.ones_like(rollout))


def test_token_second_moment_is_at_least_one_with_equality_on_policy() -> None:
    """E_μ[w_t²] = Σ π²/μ ≥ 1 (Cauchy-Schwarz), = 1 only when π = μ: the page's growth factor."""
    g = torch.Generator().manual_seed(7)
    for _ in range(100):
        pi = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
        mu = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), 0)
        assert float((pi**2 / mu).sum()) > 1.0
    assert_close((mu**2 / mu).sum(), torch.tensor(1.0, dtype=torch.float64))


def test_variance_of_the_n_sample_is_average_is_one_term_over_n() -> None:
    """Var[(1/N) Σ w f] = (E_μ[w² f²] − (E_π f)²) / N, checked by enumerating all N-tuples."""
    g = torch.Generator().manual_seed(4)
    pi = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    mu = torch.softmax(torch.randn(4, generator=g, dtype=torch.float64), 0)
    f = torch.randn(4, generator=g, dtype=torch.float64)
    term = pi / mu * f  # w(y) f(y), one value per outcome
    one_term_var = (mu * term**2).sum() - (pi * f).sum() ** 2
    for n in (1, 2, 3):
        mean = torch.zeros((), dtype=torch.float64)
        second = torch.zeros((), dtype=torch.float64)
        for seq in itertools.product(range(4), repeat=n):
            idx = torch.tensor(seq)
            prob = mu[idx].prod()
            estimate = term[idx].mean()
            mean += prob * estimate
            second += prob * estimate**2
        assert_close(mean, (pi * f).sum())  # unbiased
        assert_close(second - mean**2, one_term_var / n)
    assert float(one_term_var) > 0.0


def test_gaussian_example_variance_formula_predicts_the_measured_spread() -> None:
    """For π = N(s, 1), μ = N(0, 1), f = x: E_μ[w² x²] = e^{s²}(1 + 4s²), so the plain-IS
    average of N = 1000 samples has std √((e^{s²}(1 + 4s²) − s²)/N) ≈ 0.30 (page: 0.331)."""
    second_moment = math.exp(SHIFT**2) * (1 + 4 * SHIFT**2)
    # the closed form against numerical integration of φ(x) w(x)² x²
    x = torch.linspace(-12, 16, 200_001, dtype=torch.float64)
    density = torch.exp(-0.5 * x**2) / math.sqrt(2 * math.pi)
    integrand = density * torch.exp(2 * SHIFT * x - SHIFT**2) * x**2
    assert abs(torch.trapezoid(integrand, x).item() - second_moment) < 1e-6
    predicted_std = math.sqrt((second_moment - SHIFT**2) / 1000)
    assert abs(predicted_std - 0.30) < 0.005
    measured = _page_samples()
    w = torch.exp(SHIFT * measured - SHIFT**2 / 2)
    measured_std = (w * measured).mean(dim=1).std().item()
    assert abs(measured_std - 0.331) < 0.0005  # the page's printed value
    assert 0.8 < measured_std / predicted_std < 1.2
    # without the 1/N the formula would predict a spread about 30 times larger
    assert 30 < math.sqrt(second_moment - SHIFT**2) / predicted_std < 33
