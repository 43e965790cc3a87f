"""Argument checks shared by every public snippet function.

Each check raises ``ValueError`` naming the argument and what was expected, so a reader who
passes a ``(B,)`` tensor where ``(B, T)`` was meant learns which argument is wrong and why.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence

import torch

__all__ = [
    "check_choice",
    "check_finite",
    "check_float",
    "check_greater",
    "check_interval",
    "check_mask",
    "check_ndim",
    "check_positive",
    "check_real",
    "check_same_shape",
    "check_shape",
]


def check_float(name: str, x: torch.Tensor) -> None:
    """Require a floating-point tensor."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")


def check_ndim(name: str, x: torch.Tensor, ndim: int, layout: str) -> None:
    """Require ``x.ndim == ndim``; ``layout`` names the dimensions, e.g. ``"(B, T)"``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor of shape {layout}, got {type(x).__name__}")
    if x.ndim != ndim:
        raise ValueError(f"{name} must have shape {layout}, got shape {tuple(x.shape)}")


def check_shape(name: str, x: torch.Tensor, shape: Sequence[int], layout: str) -> None:
    """Require an exact shape; ``layout`` names the dimensions, e.g. ``"(B, T)"``."""
    check_ndim(name, x, len(shape), layout)
    if tuple(x.shape) != tuple(shape):
        raise ValueError(
            f"{name} must have shape {layout} = {tuple(shape)}, got shape {tuple(x.shape)}"
        )


def check_same_shape(name: str, x: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """Require ``x`` to have the shape of ``ref``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.shape != ref.shape:
        raise ValueError(
            f"{name} must have the same shape as {ref_name} {tuple(ref.shape)}, "
            f"got shape {tuple(x.shape)}"
        )


def check_finite(name: str, x: torch.Tensor) -> None:
    """Reject NaN and ±inf (a NaN reward silently poisons every advantage of its group)."""
    if not torch.isfinite(x).all():
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} must be finite, found {bad} NaN/inf value(s)")


def check_mask(name: str, mask: torch.Tensor, shape: Sequence[int], layout: str) -> torch.Tensor:
    """Validate a 0/1 mask (bool, int or float) of ``shape`` and return it as bool.

    1 marks a position that counts (a response token); 0 marks prompt or padding.
    """
    check_shape(name, mask, shape, layout)
    if mask.dtype == torch.bool:
        return mask
    if not ((mask == 0) | (mask == 1)).all():
        raise ValueError(f"{name} must contain only 0 and 1 (or be bool)")
    return mask != 0


# Scalar arguments (beta, clip_eps, gamma, a mode name): the same ValueError style.


def check_real(name: str, value: float) -> float:
    """Require a finite real number (``bool`` is rejected: ``True`` is not a coefficient)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def check_int(name: str, value: int, low: int = 1) -> int:
    """Require an int >= ``low`` (``bool`` is rejected: ``True`` is not a count)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        kind = "a positive int" if low == 1 else f"an int >= {low}"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return value


def check_positive(name: str, value: float) -> float:
    """Require a finite real number > 0 (``beta``, ``clip_eps``, ...)."""
    value = check_real(name, value)
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    return value


def check_greater(name: str, value: float, bound: float) -> float:
    """Require a finite real number strictly greater than ``bound``."""
    value = check_real(name, value)
    if value <= bound:
        raise ValueError(f"{name} must be > {bound}, got {value}")
    return value


def check_interval(name: str, value: float, low: float, high: float) -> float:
    """Require ``low <= value <= high``."""
    value = check_real(name, value)
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")
    return value


def check_choice(name: str, value: str, choices: Collection[str]) -> str:
    """Require one of a fixed set of names (an aggregation mode, a KL estimator...)."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
