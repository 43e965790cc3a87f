"""Scalar and group checks used by the RL snippets (tensor checks live in ``snippets/_checks``).

Every check raises ``ValueError`` naming the argument and the value it expected, like the
shared tensor checks, so a wrong ``beta`` fails as loudly as a wrong shape.
"""

from __future__ import annotations

import math
from collections.abc import Collection

import torch

from snippets._checks import check_finite, check_float, check_ndim


def check_real(name: str, value: float) -> float:
    """Require a finite real number (``bool`` is rejected: ``True`` is not a coefficient)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


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


def check_rewards_group(name: str, rewards: torch.Tensor) -> None:
    """Require finite float rewards of shape (P, G) with G >= 2 samples per prompt."""
    check_float(name, rewards)
    check_ndim(name, rewards, 2, "(P, G)")
    if rewards.shape[1] < 2:
        raise ValueError(
            f"{name} must have shape (P, G) with G >= 2 samples per prompt, "
            f"got G = {rewards.shape[1]}"
        )
    check_finite(name, rewards)
