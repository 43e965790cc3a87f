"""Linear regression twice: by hand (tensors + autograd + a manual SGD step), then with
nn.Linear, an optimizer and a loss module. Both are checked against least squares."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from snippets._checks import check_float, check_int, check_ndim, check_shape

__all__ = [
    "RegressionConfig",
    "least_squares",
    "linear_regression_manual",
    "linear_regression_module",
    "make_linear_data",
]


# --8<-- [start:config]
@dataclass
class RegressionConfig:
    """Settings of both regression runs."""

    w_true: list[float] = field(default_factory=lambda: [1.5, -2.0, 0.5])
    """True weights; their count is the number of features D."""
    b_true: float = 0.7
    """True intercept."""
    n_samples: int = 256
    """Number of generated examples N."""
    noise: float = 0.1
    """Standard deviation of the Gaussian noise added to y."""
    lr: float = 0.1
    """Step size of (full-batch) gradient descent."""
    steps: int = 100
    """Gradient steps."""
    seed: int = 0
    """Seeds the data and the initialisation."""

    def __post_init__(self) -> None:
        check_int("steps", self.steps)  # 0 steps would leave no loss to report


# --8<-- [end:config]


def make_linear_data(cfg: RegressionConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``X (N, D)`` ~ N(0, 1) and ``y (N,) = X w_true + b_true + noise``."""
    if cfg.n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {cfg.n_samples}")
    if not cfg.w_true:
        raise ValueError("w_true must hold at least one weight, got []")
    gen = torch.Generator().manual_seed(cfg.seed)
    w = torch.tensor(cfg.w_true)  # (D,)
    X = torch.randn(cfg.n_samples, len(w), generator=gen)  # (N, D)
    # y = X w + b + σ ε
    y = X @ w + cfg.b_true + cfg.noise * torch.randn(cfg.n_samples, generator=gen)  # (N,)
    return X, y


def least_squares(X: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Closed-form fit ``argmin ‖[X 1] θ − y‖²``: the reference the loops must reach.

    ``X (N, D)``, ``y (N,)`` -> ``(w (D,), b)``.
    """
    check_float("X", X)
    check_ndim("X", X, 2, "(N, D)")
    check_float("y", y)
    check_shape("y", y, (X.shape[0],), "(N,)")
    A = torch.cat([X, torch.ones(len(X), 1, dtype=X.dtype)], dim=1)  # (N, D + 1)
    theta = torch.linalg.lstsq(A, y.unsqueeze(1)).solution.squeeze(1)  # (D + 1,)
    return theta[:-1], theta[-1].item()


# --8<-- [start:manual]
def linear_regression_manual(cfg: RegressionConfig | None = None) -> dict[str, object]:
    """Gradient descent written out: forward, loss, ``backward()``, update under no_grad, zero."""
    cfg = cfg or RegressionConfig()
    X, y = make_linear_data(cfg)  # (N, D), (N,)
    torch.manual_seed(cfg.seed)
    w = torch.randn(X.shape[1], requires_grad=True)  # (D,) leaf
    b = torch.zeros((), requires_grad=True)  # () leaf
    for step in range(cfg.steps):
        pred = X @ w + b  # (N,)
        # L = (1/N) Σ (x_i·w + b − y_i)²
        loss = ((pred - y) ** 2).mean()  # ()
        loss.backward()  # w.grad = (2/N) Xᵀ(pred − y), b.grad = (2/N) Σ (pred − y)
        with torch.no_grad():  # the update itself must not be recorded in the graph
            # θ ← θ − η ∇L
            w -= cfg.lr * w.grad  # (D,) in place: w stays the same leaf tensor
            b -= cfg.lr * b.grad  # ()
        w.grad.zero_()  # or the next backward adds to this one
        b.grad.zero_()
        if step % 25 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    w_ls, b_ls = least_squares(X, y)
    print(
        "w",
        [round(v, 3) for v in w.tolist()],
        "b",
        round(b.item(), 3),
        "| true",
        cfg.w_true,
        cfg.b_true,
    )
    return {
        "w": w.detach().tolist(),
        "b": b.item(),
        "w_lstsq": w_ls.tolist(),
        "b_lstsq": b_ls,
        "final_loss": loss.item(),
    }


# --8<-- [end:manual]


# --8<-- [start:module]
def linear_regression_module(cfg: RegressionConfig | None = None) -> dict[str, object]:
    """The same fit with ``nn.Linear``, ``torch.optim.SGD`` and ``nn.MSELoss``."""
    cfg = cfg or RegressionConfig()
    X, y = make_linear_data(cfg)  # (N, D), (N,)
    torch.manual_seed(cfg.seed)
    model = nn.Linear(X.shape[1], 1)  # weight (1, D), bias (1,)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr)
    loss_fn = nn.MSELoss()
    for step in range(cfg.steps):
        pred = model(X).squeeze(-1)  # (N, 1) -> (N,): without squeeze, (N,1) − (N,) is (N,N)
        loss = loss_fn(pred, y)  # ()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 25 == 0:
            print(f"step {step:3d}  loss {loss.item():.4f}")
    w, b = model.weight.detach().squeeze(0), model.bias.item()  # (D,), float
    print(
        "w", [round(v, 3) for v in w.tolist()], "b", round(b, 3), "| true", cfg.w_true, cfg.b_true
    )
    return {"w": w.tolist(), "b": b, "final_loss": loss.item()}


# --8<-- [end:module]

if __name__ == "__main__":
    linear_regression_manual()
    linear_regression_module()
