"""Autograd against finite differences, gradcheck, and closed-form derivatives."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from snippets.pytorch.autograd import (
    TanhLinear,
    autograd_demo,
    finite_difference_grad,
    tanh_linear,
)


def _inputs(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(5, 3, dtype=torch.float64, generator=gen, requires_grad=True)
    w = torch.randn(3, 4, dtype=torch.float64, generator=gen, requires_grad=True)
    return x, w


def test_manual_backward_passes_gradcheck() -> None:
    x, w = _inputs()
    assert torch.autograd.gradcheck(tanh_linear, (x, w))


def test_manual_backward_equals_autograd_of_the_same_formula() -> None:
    x, w = _inputs(1)
    g = torch.randn(5, 4, dtype=torch.float64)
    gx, gw = torch.autograd.grad(tanh_linear(x, w), (x, w), g)
    rx, rw = torch.autograd.grad(torch.tanh(x @ w), (x, w), g)
    torch.testing.assert_close(gx, rx)
    torch.testing.assert_close(gw, rw)


class _WrongBackward(TanhLinear):
    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w, y = ctx.saved_tensors
        grad_pre = grad_out * (1 - y)  # wrong: tanh' is 1 − y², not 1 − y
        return grad_pre @ w.T, x.T @ grad_pre


def test_gradcheck_catches_a_wrong_backward() -> None:
    x, w = _inputs()
    assert not torch.autograd.gradcheck(_WrongBackward.apply, (x, w), raise_exception=False)


def test_finite_differences_match_a_known_gradient() -> None:
    x = torch.linspace(-2, 2, 7, dtype=torch.float64)

    def f(t: torch.Tensor) -> torch.Tensor:
        return (t**3).sum() + torch.exp(t).prod()

    expected = 3 * x**2 + torch.exp(x).prod()  # ∂/∂x_i of Π e^{x_j} = Π e^{x_j}
    torch.testing.assert_close(finite_difference_grad(f, x), expected, rtol=1e-7, atol=1e-7)
    # and the input is left untouched
    assert torch.equal(x, torch.linspace(-2, 2, 7, dtype=torch.float64))


def test_autograd_demo_numbers() -> None:
    out = autograd_demo()
    assert out["first_grad"] == 14.0  # 3·2² + 2
    assert out["accumulated_grad"] == 28.0  # two backward calls add up
    assert "Inference tensors" in out["inference_error"]
    assert out["fd_max_error"] < 1e-6
    assert out["autograd_matches_formula"] and out["gradcheck"]


def test_bad_arguments_name_themselves() -> None:
    x, w = _inputs()
    with pytest.raises(ValueError, match="x must be float64"):
        finite_difference_grad(lambda t: t.sum(), x.float())
    with pytest.raises(ValueError, match="eps"):
        finite_difference_grad(lambda t: t.sum(), x.detach(), eps=0.0)
    with pytest.raises(ValueError, match="w must have D=3"):
        tanh_linear(x, w.T)
    with pytest.raises(ValueError, match="x"):
        tanh_linear(x[0], w)
