"""Autograd: the graph, backward, accumulation, no_grad vs inference_mode, detach, leaves,
and checking gradients against finite differences (by hand and with ``gradcheck``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from snippets._checks import check_float, check_ndim

__all__ = ["TanhLinear", "autograd_demo", "finite_difference_grad", "tanh_linear"]


# --8<-- [start:finite-difference]
def finite_difference_grad(
    f: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    """Central-difference gradient of a scalar function ``f`` at ``x``.

    | Argument    | Shape        | Meaning                                     |
    |-------------|--------------|---------------------------------------------|
    | f           | any -> ()    | the function, called on tensors shaped as x |
    | x           | any, float64 | the point                                   |
    | **returns** | same as x    | the estimated gradient                      |

    ∂f/∂x_i ≈ (f(x + ε e_i) − f(x − ε e_i)) / 2ε, error O(ε²). Costs 2·x.numel() calls of f.
    """
    check_float("x", x)
    if x.dtype != torch.float64:
        raise ValueError(f"x must be float64 (float32 rounding swamps ε), got {x.dtype}")
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    grad = torch.zeros_like(x)  # same shape as x
    flat_x, flat_g = x.detach().clone().view(-1), grad.view(-1)  # (n,), (n,)
    with torch.no_grad():
        for i in range(flat_x.numel()):
            old = flat_x[i].item()
            flat_x[i] = old + eps
            up = f(flat_x.view_as(x)).item()
            flat_x[i] = old - eps
            down = f(flat_x.view_as(x)).item()
            flat_x[i] = old
            # (f(x + εe_i) − f(x − εe_i)) / 2ε
            flat_g[i] = (up - down) / (2 * eps)
    return grad


# --8<-- [end:finite-difference]


# --8<-- [start:custom-function]
class TanhLinear(torch.autograd.Function):
    """y = tanh(x W) with a hand-written backward.

    Forward: x (N, D), W (D, K) -> y (N, K). Backward, with g = ∂L/∂y (N, K):
    ∂L/∂(xW) = g ⊙ (1 − y²);  ∂L/∂x = (g ⊙ (1 − y²)) Wᵀ;  ∂L/∂W = xᵀ (g ⊙ (1 − y²)).
    """

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = torch.tanh(x @ w)  # (N, K)
        ctx.save_for_backward(x, w, y)  # keep what backward needs
        return y

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, w, y = ctx.saved_tensors
        # tanh' = 1 − tanh²
        grad_pre = grad_out * (1 - y**2)  # (N, K)
        grad_x = grad_pre @ w.T  # (N, K) @ (K, D) -> (N, D)
        grad_w = x.T @ grad_pre  # (D, N) @ (N, K) -> (D, K)
        return grad_x, grad_w


def tanh_linear(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Checked entry point of ``TanhLinear``: ``x (N, D)``, ``w (D, K)`` -> ``(N, K)``."""
    check_float("x", x)
    check_ndim("x", x, 2, "(N, D)")
    check_float("w", w)
    check_ndim("w", w, 2, "(D, K)")
    if x.shape[1] != w.shape[0]:
        raise ValueError(f"w must have D={x.shape[1]} rows to match x, got {w.shape[0]}")
    return TanhLinear.apply(x, w)


# --8<-- [end:custom-function]


def _f(x: torch.Tensor) -> torch.Tensor:
    # f(x) = Σ sin(x) x²  ->  ∂f/∂x = cos(x) x² + 2x sin(x)
    return (torch.sin(x) * x**2).sum()


# --8<-- [start:demo]
def autograd_demo() -> dict[str, object]:
    """Walk through the autograd mechanics an interviewer asks about; return the key numbers."""
    torch.manual_seed(0)
    # 1. the graph: every op on a requires_grad tensor records a grad_fn node
    x = torch.tensor(2.0, requires_grad=True)  # () leaf
    y = x**3 + 2 * x  # () non-leaf, y.grad_fn = AddBackward0
    y.backward()  # dy/dx = 3x² + 2 = 14
    print("y.grad_fn:", type(y.grad_fn).__name__, "| dy/dx at 2:", x.grad.item())
    first_grad = x.grad.item()

    # 2. gradients ACCUMULATE into .grad: a second backward adds, it does not overwrite
    (x**3 + 2 * x).backward()
    accumulated = x.grad.item()  # 14 + 14
    x.grad = None  # what optimizer.zero_grad(set_to_none=True) does
    print("after a second backward:", accumulated, "| after zeroing:", x.grad)

    # 3. leaves vs intermediates: only leaves keep .grad unless you ask with retain_grad()
    w = torch.randn(3, requires_grad=True)  # (3,) leaf
    h = w * 2  # (3,) intermediate
    h.retain_grad()
    (h**2).sum().backward()  # dL/dh = 2h, dL/dw = 2h · 2 = 8w
    print(
        "w.is_leaf",
        w.is_leaf,
        "| h.is_leaf",
        h.is_leaf,
        "| dL/dw == 8w:",
        torch.allclose(w.grad, 8 * w),
    )

    # 4. detach: same memory, cut from the graph (a stop-gradient)
    d = h.detach()  # (3,) requires_grad=False, shares h's storage
    print(
        "detached requires_grad:", d.requires_grad, "| same storage:", d.data_ptr() == h.data_ptr()
    )

    # 5. no_grad vs inference_mode: neither records a graph; an inference tensor cannot be saved
    #    for a later backward (clone it first to use it in a graph)
    with torch.no_grad():
        a = w * 2  # (3,) requires_grad=False, an ordinary tensor
    with torch.inference_mode():
        b = w * 2  # (3,) an inference tensor: faster, but no op may save it for backward
    try:
        (b * w).sum().backward()
        inference_error = ""
    except RuntimeError as err:
        inference_error = str(err).split(".")[0]
    print(
        "no_grad:", a.requires_grad, "| inference:", b.is_inference(), "| reuse ->", inference_error
    )

    # 6. check autograd against central finite differences (float64!)
    x64 = torch.randn(5, dtype=torch.float64, requires_grad=True)  # (5,)
    _f(x64).backward()
    numeric = finite_difference_grad(_f, x64.detach())  # (5,)
    analytic = torch.cos(x64) * x64**2 + 2 * x64 * torch.sin(x64)  # (5,)
    fd_error = (x64.grad - numeric).abs().max().item()
    print(f"autograd vs finite differences: max |Δ| = {fd_error:.1e}")

    # 7. a hand-written backward, verified by torch.autograd.gradcheck (float64, Jacobians)
    xs = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)  # (N, D)
    ws = torch.randn(3, 2, dtype=torch.float64, requires_grad=True)  # (D, K)
    ok = torch.autograd.gradcheck(tanh_linear, (xs, ws))
    print("gradcheck(TanhLinear):", ok)
    return {
        "first_grad": first_grad,
        "accumulated_grad": accumulated,
        "inference_error": inference_error,
        "fd_max_error": fd_error,
        "autograd_matches_formula": torch.allclose(x64.grad, analytic),
        "gradcheck": ok,
    }


# --8<-- [end:demo]

if __name__ == "__main__":
    autograd_demo()
