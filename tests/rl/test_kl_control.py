"""snippets/rl/kl_control.py and the claims of docs/rl/ppo-rlhf.md: the adaptive update
against a hand computation, the ±0.2 clip, direction and fixed point, convergence on a toy
whose KL responds to β, what n_steps and the KL unit change, and every error path."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.kl_control import (
    MAX_PROPORTIONAL_ERROR,
    AdaptiveKLController,
    FixedKLController,
    adaptive_kl_update,
    measured_kl,
)

# OpenAI lm-human-preferences, sentiment task: kl_coef 0.15, target 6, horizon 10000, batch 512
BETA, TARGET, HORIZON, N = 0.15, 6.0, 10000.0, 512


def test_update_matches_a_hand_computation() -> None:
    # KL 7 vs target 6: e = 7/6 − 1 = 1/6 (inside ±0.2), n/h = 0.0512
    # β' = 0.15 · (1 + (1/6) · 0.0512) = 0.15 · 1.00853333... = 0.15128
    assert_close(adaptive_kl_update(BETA, 7.0, TARGET, N, HORIZON), 0.15128, rtol=1e-12, atol=0)
    # KL 4.5: e = −0.25 → clipped to −0.2; β' = 0.15 · (1 − 0.2 · 0.0512) = 0.148464
    assert_close(adaptive_kl_update(BETA, 4.5, TARGET, N, HORIZON), 0.148464, rtol=1e-12, atol=0)


def test_page_multipliers() -> None:
    """The table printed on the page: β'/β for KL = 3, 5.4, 6, 7, 12 with target 6."""
    got = [adaptive_kl_update(BETA, kl, TARGET, N, HORIZON) / BETA for kl in (3, 5.4, 6, 7, 12)]
    want = [1 - 0.2 * 0.0512, 1 - 0.1 * 0.0512, 1.0, 1 + 0.0512 / 6, 1 + 0.2 * 0.0512]
    assert_close(got, want, rtol=1e-12, atol=0)


@pytest.mark.parametrize("kl", [0.0, -3.0, 7.3, 12.0, 60.0, 1e6])
def test_proportional_error_is_clipped_at_0_2(kl: float) -> None:
    mult = adaptive_kl_update(1.0, kl, TARGET, N, HORIZON)  # β = 1: the result is the multiplier
    error = (mult - 1.0) * HORIZON / N  # e_t recovered from the multiplier
    assert abs(error) <= MAX_PROPORTIONAL_ERROR + 1e-12
    unclipped = kl / TARGET - 1.0
    if abs(unclipped) > MAX_PROPORTIONAL_ERROR:
        assert_close(error, math.copysign(MAX_PROPORTIONAL_ERROR, unclipped))
    else:
        assert_close(error, unclipped)
    # per batch of 512 with horizon 10000, β moves by at most 1.024%
    assert abs(mult - 1.0) <= 0.01024 + 1e-12


def test_direction_and_fixed_point() -> None:
    assert adaptive_kl_update(BETA, TARGET * 1.1, TARGET, N, HORIZON) > BETA  # KL too high: β up
    assert adaptive_kl_update(BETA, TARGET * 0.9, TARGET, N, HORIZON) < BETA  # too low: β down
    assert adaptive_kl_update(BETA, TARGET, TARGET, N, HORIZON) == BETA  # exact fixed point
    # a negative k1 estimate (e.g. a sampler/temperature mismatch) pushes β down, never up
    assert adaptive_kl_update(BETA, -2.0, TARGET, N, HORIZON) < BETA


def test_update_is_multiplicative_log_space() -> None:
    """The multiplier does not depend on β: the controller acts on log β."""
    ratios = [adaptive_kl_update(b, 7.0, TARGET, N, HORIZON) / b for b in (1e-3, 0.15, 5.0)]
    assert_close(ratios, [ratios[0]] * 3, rtol=1e-12, atol=0)


def test_change_per_update_is_linear_in_n_steps() -> None:
    """Passing 1 (one update) instead of 512 (samples) makes every change 512 times smaller."""
    per_sample = adaptive_kl_update(1.0, 12.0, TARGET, 1, HORIZON) - 1.0
    per_batch = adaptive_kl_update(1.0, 12.0, TARGET, N, HORIZON) - 1.0
    assert_close(per_batch, N * per_sample, rtol=1e-9, atol=0)  # float cancellation in β − 1


def test_horizon_samples_at_the_clip_change_beta_by_about_e_to_the_0_2() -> None:
    up, down = AdaptiveKLController(1.0, TARGET, HORIZON), AdaptiveKLController(1.0, TARGET)
    n_updates = round(HORIZON / N)  # 20 batches of 512 ≈ 10000 samples
    for _ in range(n_updates):
        up.update(100.0, N)
        down.update(0.0, N)
    samples = n_updates * N
    assert_close(up.beta, math.exp(0.2 * samples / HORIZON), rtol=5e-3, atol=0)
    assert_close(down.beta, math.exp(-0.2 * samples / HORIZON), rtol=5e-3, atol=0)


@pytest.mark.parametrize("beta0", [0.05, 0.15, 0.6])
def test_toy_loop_converges_to_the_target(beta0: float) -> None:
    """A toy policy whose KL is c / β: β must approach c / target and KL the target."""
    c = 1.2  # KL = 6 at β = 0.2
    ctl = AdaptiveKLController(beta=beta0, target=TARGET, horizon=HORIZON)
    gaps = []
    for _ in range(600):
        kl = c / ctl.beta
        gaps.append(abs(kl - TARGET))
        ctl.update(kl, N)
    assert all(b <= a + 1e-12 for a, b in itertools.pairwise(gaps))  # never worse
    assert gaps[0] > 1.0  # it started far away ...
    assert_close(c / ctl.beta, TARGET, rtol=1e-3, atol=0)  # ... and ends on target
    assert_close(ctl.beta, c / TARGET, rtol=1e-3, atol=0)


def test_toy_loop_with_noise_matches_the_page() -> None:
    """The page's seeded run: adaptive KL averages ≈ 6, fixed β = 0.15 stays ≈ 8."""
    g = torch.Generator().manual_seed(0)
    c = 1.2
    adaptive, fixed = AdaptiveKLController(0.15, TARGET, HORIZON), FixedKLController(0.15)
    kls_a, kls_f = [], []
    for _ in range(300):
        noise = float(torch.exp(0.1 * torch.randn((), generator=g)))
        kls_a.append(c / adaptive.beta * noise)
        kls_f.append(c / fixed.beta * noise)
        adaptive.update(kls_a[-1], N)
        fixed.update(kls_f[-1], N)
    late_a, late_f = sum(kls_a[100:]) / 200, sum(kls_f[100:]) / 200
    assert abs(late_a - TARGET) < 0.15
    assert abs(late_f - 8.0) < 0.2 and fixed.beta == 0.15
    assert_close(adaptive.beta, 0.2, rtol=0.03, atol=0)


def test_fixed_controller_never_moves() -> None:
    ctl = FixedKLController(0.05)
    for kl in (0.0, 100.0, -1.0):
        assert ctl.update(kl, N) == 0.05
    assert FixedKLController(0.0).update(3.0, N) == 0.0  # β = 0 is allowed: no KL penalty


def test_measured_kl_units() -> None:
    old = torch.tensor(
        [[-0.5, -2.0, -0.5, 9.9], [-0.3, -0.7, 9.9, 9.9], [9.9, 9.9, 9.9, 9.9]],
        dtype=torch.float64,
    )  # 9.9: garbage at padding, must be ignored
    ref = torch.tensor(
        [[-1.5, -1.0, -1.0, 0.0], [-0.8, -0.2, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
        dtype=torch.float64,
    )
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0], [0, 0, 0, 0]])  # row 2: no valid token
    # k1 row 0 = [1.0, −1.0, 0.5]: sum 0.5, token mean 1/6; row 1 = [0.5, −0.5]: sum 0, mean 0
    # response: mean(0.5, 0) = 0.25; token: mean(1/6, 0) = 1/12 (the empty row is left out)
    assert_close(measured_kl(old, ref, mask, "response"), 0.25)
    assert_close(measured_kl(old, ref, mask, "token"), 1.0 / 12.0)


def test_response_kl_is_length_times_token_kl_for_equal_lengths() -> None:
    g = torch.Generator().manual_seed(1)
    old = -torch.rand(8, 20, generator=g, dtype=torch.float64)
    ref = old - 0.3 * torch.rand(8, 20, generator=g, dtype=torch.float64)
    mask = torch.ones(8, 20)
    per_response = measured_kl(old, ref, mask, "response")
    per_token = measured_kl(old, ref, mask, "token")
    assert_close(per_response, 20 * per_token)
    assert per_response > 1.0 > per_token  # same batch: a target of 6 vs 0.1 is not a typo


def test_errors_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"target must be > 0"):
        adaptive_kl_update(BETA, 1.0, 0.0, N, HORIZON)
    with pytest.raises(ValueError, match=r"target must be > 0"):
        AdaptiveKLController(BETA, -6.0)
    with pytest.raises(ValueError, match=r"horizon must be > 0"):
        adaptive_kl_update(BETA, 1.0, TARGET, N, 0.0)
    with pytest.raises(ValueError, match=r"horizon must be > 0"):
        AdaptiveKLController(BETA, TARGET, horizon=-1.0)
    with pytest.raises(ValueError, match=r"beta must be > 0"):
        adaptive_kl_update(-0.1, 1.0, TARGET, N, HORIZON)
    with pytest.raises(ValueError, match=r"beta must be > 0"):
        AdaptiveKLController(0.0, TARGET)  # a multiplicative update never leaves 0
    with pytest.raises(ValueError, match=r"beta must be in \[0.0, inf\]"):
        FixedKLController(-0.01)
    for bad_kl in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"current_kl must be finite"):
            adaptive_kl_update(BETA, bad_kl, TARGET, N, HORIZON)
        with pytest.raises(ValueError, match=r"current_kl must be finite"):
            FixedKLController(BETA).update(bad_kl, N)
    with pytest.raises(ValueError, match=r"current_kl must be a real number"):
        AdaptiveKLController(BETA, TARGET).update(torch.tensor(6.0), N)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"n_steps must be > 0"):
        adaptive_kl_update(BETA, 1.0, TARGET, 0, HORIZON)
    with pytest.raises(ValueError, match=r"n_steps must be > 0"):
        FixedKLController(BETA).update(1.0, -5)
    with pytest.raises(ValueError, match=r"n_steps must be < horizon / 0.2 = 50000.0"):
        adaptive_kl_update(BETA, 0.0, TARGET, 50000, HORIZON)  # else 1 − 0.2 · 5 = 0: β = 0
    mask = torch.ones(2, 3)
    with pytest.raises(ValueError, match=r"unit must be one of"):
        measured_kl(torch.zeros(2, 3), torch.zeros(2, 3), mask, "sequence")
    with pytest.raises(ValueError, match=r"ref_logprobs must have the same shape"):
        measured_kl(torch.zeros(2, 3), torch.zeros(2, 4), mask)
    with pytest.raises(ValueError, match=r"old_logprobs must have shape \(B, T\)"):
        measured_kl(torch.zeros(6), torch.zeros(6), torch.ones(6))
    with pytest.raises(ValueError, match=r"mask must contain only 0 and 1"):
        measured_kl(torch.zeros(2, 3), torch.zeros(2, 3), 2 * mask)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_measured_kl_rejects_a_non_finite_logprob_at_a_response_token(bad: float) -> None:
    mask = torch.tensor([[1, 1, 0], [1, 0, 0]])
    old, ref = torch.full((2, 3), -1.0), torch.full((2, 3), -2.0)
    bad_old, bad_ref = old.clone(), ref.clone()
    bad_old[1, 0] = bad  # a valid position: the KL would be NaN or ±inf
    bad_ref[0, 1] = bad
    with pytest.raises(ValueError, match=r"old_logprobs must be finite, found 1 NaN/inf"):
        measured_kl(bad_old, ref, mask)
    with pytest.raises(ValueError, match=r"ref_logprobs must be finite, found 1 NaN/inf"):
        measured_kl(old, bad_ref, mask, "token")
    # at padding the value is never read: no error, and the KL of the valid tokens
    old[:, 2], ref[:, 2] = bad, bad
    assert measured_kl(old, ref, mask, "response") == pytest.approx(1.5)  # mean(2, 1)
    assert measured_kl(old, ref, mask, "token") == pytest.approx(1.0)


def test_a_failed_update_leaves_the_controller_unchanged() -> None:
    ctl = AdaptiveKLController(BETA, TARGET)
    with pytest.raises(ValueError):
        ctl.update(float("nan"), N)
    assert ctl.beta == BETA
