"""REINFORCE: discounted returns and the score-function (log-derivative) loss.

The policy-gradient theorem (Williams 1992; Sutton et al. 1999) writes the gradient of the
expected reward as an expectation we can sample:

    ∇_θ E_{y~π_θ}[R(y)] = E_{y~π_θ}[R(y) ∇_θ log π_θ(y)],   log π_θ(y) = Σ_t log π_θ(y_t | y_<t)

so minimising L = −A · Σ_t log π_θ(y_t) over sampled y, with A held constant, follows it.
Subtracting a baseline b from R keeps the expectation (E[∇ log π] = 0) and can cut the
variance: that is all RLOO, GRPO and a critic do.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_choice,
    check_finite,
    check_float,
    check_interval,
    check_mask,
    check_ndim,
)
from snippets.rl.aggregation import AGGREGATIONS, aggregate, mask_out

__all__ = ["discounted_returns", "expand_advantages", "reinforce_loss"]


# --8<-- [start:returns]
def discounted_returns(rewards: torch.Tensor, mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """Return-to-go G_t = r_t + γ G_{t+1} over the valid tokens of each row.

    Positions with mask == 0 are not time steps: their rewards are ignored and the recursion
    skips them, so nothing after the last valid token is ever bootstrapped. The output is 0
    there. The loop runs backwards over T and is vectorised over the batch.

    | Argument    | Shape  | Meaning                                              |
    |-------------|--------|------------------------------------------------------|
    | rewards     | (B, T) | per-token rewards (often 0 except at the last token) |
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding          |
    | gamma       | float  | discount γ in [0, 1]                                 |
    | **returns** | (B, T) | G_t at valid positions, 0 elsewhere (a constant)     |
    """
    check_float("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(B, T)")
    if rewards.shape[1] == 0:
        raise ValueError(
            f"rewards must have shape (B, T) with T >= 1, got shape {tuple(rewards.shape)}"
        )
    mask = check_mask("mask", mask, rewards.shape, "(B, T)")
    gamma = check_interval("gamma", gamma, 0.0, 1.0)
    rewards = mask_out(rewards.detach(), mask)  # (B, T)
    check_finite("rewards", rewards)
    # a padded position is not a time step: it adds no reward and passes G_{t+1} on undiscounted
    decay = torch.full_like(rewards, gamma).masked_fill(~mask, 1.0)  # (B, T)
    running = torch.zeros_like(rewards[:, 0])  # (B,) G_{t+1}: 0 past the last valid token
    reversed_returns = []
    for reward_t, decay_t in zip(rewards.unbind(1)[::-1], decay.unbind(1)[::-1], strict=True):
        # G_t = r_t + γ G_{t+1}
        running = reward_t + decay_t * running  # (B,)
        reversed_returns.append(running)
    return mask_out(torch.stack(reversed_returns[::-1], dim=1), mask)  # (B, T)


# --8<-- [end:returns]


def expand_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Detach (B,) or (B, T) advantages, check them at valid tokens, and broadcast to (B, T).

    A (B,) advantage is one number per sequence (RLOO, GRPO); a (B, T) advantage has one per
    token (GAE, REINFORCE++). Garbage at mask == 0 is replaced by 0.

    | Argument    | Shape          | Meaning                                  |
    |-------------|----------------|------------------------------------------|
    | advantages  | (B,) or (B, T) | advantage estimates (constants)          |
    | mask        | (B, T)         | bool mask of valid tokens                |
    | **returns** | (B, T)         | detached advantages, 0 at padding        |
    """
    check_float("advantages", advantages)
    batch, steps = mask.shape
    if advantages.shape == (batch,):
        advantages = advantages.unsqueeze(1).expand(batch, steps)  # (B, T)
    elif advantages.shape != (batch, steps):
        raise ValueError(
            f"advantages must have shape (B,) = ({batch},) or (B, T) = {(batch, steps)}, "
            f"got shape {tuple(advantages.shape)}"
        )
    advantages = mask_out(advantages.detach(), mask)  # (B, T)
    check_finite("advantages", advantages)
    return advantages


# --8<-- [start:reinforce]
def reinforce_loss(
    logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    aggregation: str = "seq-mean-token-sum",
    max_len: int | None = None,
) -> torch.Tensor:
    """Score-function loss −A_{b,t} log π_θ(y_{b,t}), aggregated over tokens and sequences.

    With the default "seq-mean-token-sum", L = −(1/B) Σ_b A_b log π_θ(y_b), whose gradient is
    the textbook Monte-Carlo estimate of −∇E[R]. Other modes (``snippets.rl.aggregation``)
    re-weight tokens and so change the estimator; the loss *value* has no meaning, only its
    gradient does. ``advantages`` are constants (detached inside).

    | Argument    | Shape          | Meaning                                           |
    |-------------|----------------|---------------------------------------------------|
    | logprobs    | (B, T)         | log π_θ of the sampled tokens (with gradient)     |
    | advantages  | (B,) or (B, T) | per-sequence or per-token advantage / return      |
    | mask        | (B, T)         | 1 on response tokens, 0 on prompt / padding       |
    | aggregation | str            | loss aggregation mode                             |
    | max_len     | int            | constant of seq-mean-token-sum-norm (default: T)  |
    | **returns** | ()             | scalar loss                                       |
    """
    check_float("logprobs", logprobs)
    check_ndim("logprobs", logprobs, 2, "(B, T)")
    mask = check_mask("mask", mask, logprobs.shape, "(B, T)")
    check_choice("aggregation", aggregation, AGGREGATIONS)
    advantages = expand_advantages(advantages, mask)  # (B, T)
    logprobs = mask_out(logprobs, mask)  # (B, T)
    # ℓ_t = −A_t log π_θ(y_t)
    per_token = -advantages * logprobs  # (B, T)
    return aggregate(per_token, mask, aggregation, max_len)  # ()


# --8<-- [end:reinforce]
