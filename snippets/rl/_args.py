"""The group-of-samples check of the RL snippets (every other check is in ``snippets/_checks``)."""

from __future__ import annotations

import torch

from snippets._checks import check_finite, check_float, check_ndim


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
