"""Claims of docs/pytorch/linear-regression.md beyond tests/pytorch/test_regression.py."""

from __future__ import annotations

import torch

from snippets.pytorch.regression import RegressionConfig, least_squares, make_linear_data


def _design() -> tuple[torch.Tensor, torch.Tensor]:
    X, y = make_linear_data(RegressionConfig(noise=0.3))
    A = torch.cat([X, torch.ones(len(X), 1)], dim=1).double()
    return A, y.double()


def test_mse_gradient_formula_equals_autograd() -> None:
    A, y = _design()
    theta = torch.randn(A.shape[1], dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    theta.requires_grad_(True)
    ((A @ theta - y) ** 2).mean().backward()
    formula = 2 / len(A) * A.T @ (A @ theta.detach() - y)
    torch.testing.assert_close(theta.grad, formula)


def test_least_squares_solves_the_normal_equations() -> None:
    X, y = make_linear_data(RegressionConfig(noise=0.3))
    w, b = least_squares(X.double(), y.double())
    A, yd = _design()
    theta = torch.cat([w, torch.tensor([b], dtype=torch.float64)])
    torch.testing.assert_close(A.T @ A @ theta, A.T @ yd, rtol=1e-9, atol=1e-9)


def _loss_after(lr: float, steps: int) -> float:
    A, y = _design()
    theta = torch.zeros(A.shape[1], dtype=torch.float64)
    for _ in range(steps):
        theta -= lr * 2 / len(A) * A.T @ (A @ theta - y)
    return ((A @ theta - y) ** 2).mean().item()


def test_gradient_descent_is_stable_below_two_over_the_largest_curvature() -> None:
    A, y = _design()
    lam_max = torch.linalg.eigvalsh(2 / len(A) * A.T @ A).max().item()
    floor = ((A @ torch.linalg.lstsq(A, y.unsqueeze(1)).solution.squeeze(1) - y) ** 2).mean()
    assert abs(_loss_after(0.95 * 2 / lam_max, 2000) - floor.item()) < 1e-6
    assert _loss_after(1.05 * 2 / lam_max, 2000) > 1e6


def test_in_place_update_of_a_leaf_needs_no_grad() -> None:
    w = torch.ones(3, requires_grad=True)
    (w**2).sum().backward()
    try:
        w -= 0.1 * w.grad
    except RuntimeError as err:
        assert "leaf Variable that requires grad" in str(err)
    else:
        raise AssertionError("expected RuntimeError")
    with torch.no_grad():
        w -= 0.1 * w.grad  # allowed: w stays the same leaf
    assert w.is_leaf and w.requires_grad


def test_out_of_place_update_under_no_grad_loses_the_leaf() -> None:
    w = torch.ones(3, requires_grad=True)
    (w**2).sum().backward()
    with torch.no_grad():
        w = w - 0.1 * w.grad
    assert not w.requires_grad  # the next loss would not reach it


def _hessian_of_features(X: torch.Tensor) -> torch.Tensor:
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)  # (N, D + 1)
    return 2 / len(A) * A.T @ A


def test_standardised_but_correlated_features_still_spread_the_curvature() -> None:
    gen = torch.Generator().manual_seed(0)
    Z = torch.randn(4096, 3, generator=gen, dtype=torch.float64)
    Z = Z - Z.mean(0)
    Z = Z @ torch.linalg.inv(torch.linalg.cholesky(Z.T @ Z / len(Z))).T  # exactly white
    rho = 0.9
    C = torch.full((3, 3), rho, dtype=torch.float64).fill_diagonal_(1.0)
    X = Z @ torch.linalg.cholesky(C).T  # mean 0, variance 1, pairwise correlation rho
    torch.testing.assert_close(X.T @ X / len(X), C)  # standardised, yet correlated
    eig = torch.linalg.eigvalsh(_hessian_of_features(X))
    expected = torch.tensor([2 * (1 - rho), 2 * (1 - rho), 2.0, 2 * (1 + 2 * rho)]).double()
    torch.testing.assert_close(eig, expected)  # 0.2, 0.2, 2 (bias), 5.6
    assert round(2 / eig.max().item(), 2) == 0.36
    # whitening (Z itself) removes the correlations: every eigenvalue 2, threshold 1
    torch.testing.assert_close(
        torch.linalg.eigvalsh(_hessian_of_features(Z)), 2 * torch.ones(4).double()
    )
