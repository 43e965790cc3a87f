"""The MLP separates the moons on held-out points; the data is what it claims to be."""

from __future__ import annotations

import math

import pytest
import torch

from snippets.pytorch.mlp import MLP2D, MLPConfig, accuracy, make_moons, mlp_classification


def test_mlp_separates_held_out_moons() -> None:
    out = mlp_classification(MLPConfig(steps=200))
    assert out["test_accuracy"] > 0.95
    assert out["train_accuracy"] > 0.95


def test_a_linear_boundary_cannot_separate_them() -> None:
    # the control: a linear classifier stays well below the MLP, so the task needs the MLP
    X, y = make_moons(1024, 0.15, torch.Generator().manual_seed(0))
    A = torch.cat([X, torch.ones(len(X), 1)], dim=1)
    w = torch.linalg.lstsq(A, (2 * y - 1).float().unsqueeze(1)).solution
    linear_acc = ((A @ w).squeeze(1) > 0).long().eq(y).float().mean().item()
    assert linear_acc < 0.9


def test_moons_geometry_without_noise() -> None:
    X, y = make_moons(200, 0.0, torch.Generator().manual_seed(0))
    assert X.shape == (200, 2) and y.shape == (200,) and int(y.sum()) == 100
    upper, lower = X[y == 0], X[y == 1]
    torch.testing.assert_close(upper.norm(dim=1), torch.ones(100))  # unit half-circle
    centre = torch.tensor([1.0, 0.5])
    torch.testing.assert_close((lower - centre).norm(dim=1), torch.ones(100))
    assert (upper[:, 1] >= 0).all() and (lower[:, 1] <= 0.5 + 1e-6).all()
    assert math.isclose(float(upper[:, 0].min()), -1.0, abs_tol=0.05)


def test_make_moons_rejects_bad_arguments() -> None:
    gen = torch.Generator()
    with pytest.raises(ValueError, match="n must"):
        make_moons(1, 0.1, gen)
    with pytest.raises(ValueError, match="noise"):
        make_moons(10, -0.1, gen)


def test_zero_steps_are_refused_by_name() -> None:
    with pytest.raises(ValueError, match="steps must be a positive int"):
        MLPConfig(steps=0)
    with pytest.raises(ValueError, match="n must be an int >= 2"):
        make_moons(2.5, 0.1, torch.Generator())


def test_accuracy_refuses_a_column_of_labels() -> None:
    X, y = make_moons(100, 0.1, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    model = MLP2D(8)
    assert 0.0 <= accuracy(model, X, y) <= 1.0
    with pytest.raises(ValueError, match=r"y must have shape \(N,\)"):
        accuracy(model, X, y.unsqueeze(1))  # (N, 1) == (N,) would compare all N² pairs
    with pytest.raises(ValueError, match=r"X must have shape \(N, 2\)"):
        accuracy(model, X[0], y)


def test_a_column_of_labels_would_broadcast_to_every_pair() -> None:
    # the bug accuracy guards against: (N,) == (N, 1) is an (N, N) table, mean near 1/2
    pred = torch.tensor([0, 1, 0, 1])
    y = pred.clone()
    assert (pred == y).float().mean().item() == 1.0
    assert (pred == y.unsqueeze(1)).shape == (4, 4)
    assert (pred == y.unsqueeze(1)).float().mean().item() == 0.5
