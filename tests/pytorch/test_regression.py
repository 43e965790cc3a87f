"""Both regressions recover the true weights and agree with closed-form least squares."""

from __future__ import annotations

import pytest
import torch

from snippets.pytorch.regression import (
    RegressionConfig,
    least_squares,
    linear_regression_manual,
    linear_regression_module,
    make_linear_data,
)


@pytest.mark.parametrize("fit", [linear_regression_manual, linear_regression_module])
def test_recovers_true_weights(fit) -> None:
    cfg = RegressionConfig(w_true=[2.0, -1.0, 0.0, 3.0], b_true=-0.5, noise=0.05)
    out = fit(cfg)
    torch.testing.assert_close(torch.tensor(out["w"]), torch.tensor(cfg.w_true), atol=0.02, rtol=0)
    assert out["b"] == pytest.approx(cfg.b_true, abs=0.02)
    assert out["final_loss"] == pytest.approx(cfg.noise**2, rel=0.3)  # the noise floor


@pytest.mark.parametrize("fit", [linear_regression_manual, linear_regression_module])
def test_gradient_descent_reaches_the_least_squares_solution(fit) -> None:
    cfg = RegressionConfig(noise=0.5, steps=300)
    w_ls, b_ls = least_squares(*make_linear_data(cfg))
    out = fit(cfg)
    torch.testing.assert_close(torch.tensor(out["w"]), w_ls, atol=1e-4, rtol=0)
    assert out["b"] == pytest.approx(b_ls, abs=1e-4)


def test_least_squares_is_exact_without_noise() -> None:
    cfg = RegressionConfig(noise=0.0)
    w, b = least_squares(*make_linear_data(cfg))
    torch.testing.assert_close(w, torch.tensor(cfg.w_true), atol=1e-5, rtol=0)
    assert b == pytest.approx(cfg.b_true, abs=1e-5)


def test_make_linear_data_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="n_samples"):
        make_linear_data(RegressionConfig(n_samples=0))
    with pytest.raises(ValueError, match="w_true"):
        make_linear_data(RegressionConfig(w_true=[]))


def test_least_squares_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match="y"):
        least_squares(torch.zeros(5, 2), torch.zeros(4))
    with pytest.raises(ValueError, match="X"):
        least_squares(torch.zeros(5), torch.zeros(5))


def test_zero_steps_and_integer_targets_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="steps must be a positive int"):
        RegressionConfig(steps=0)
    with pytest.raises(ValueError, match="y must be a floating-point tensor"):
        least_squares(torch.randn(5, 2), torch.arange(5))
