"""Generalized Advantage Estimation (Schulman et al., arXiv 1506.02438).

With the TD error δ_t = r_t + γ V(s_{t+1}) − V(s_t), GAE is the exponentially weighted sum

    A_t = Σ_{l ≥ 0} (γλ)^l δ_{t+l}  =  δ_t + γλ A_{t+1}

λ = 0 gives the one-step TD error (low variance, biased by V); λ = 1 gives the Monte-Carlo
return minus V (unbiased, high variance). The value target is R_t = A_t + V(s_t).

Masking convention (verl ``compute_gae_advantage_return``; CleanRL ``ppo.py`` uses ``dones``
for the same purpose): a position with mask == 0 is not a time step. The recursion skips it,
carrying V_{t+1} and A_{t+1} through unchanged, so after the last valid token both are 0:
no bootstrapping past the end of a response, whatever the padding holds. TRL and OpenRLHF
multiply values by the mask and read V_{t+1} from the next column, which gives the same
numbers for right-padded responses. Unlike verl we do not whiten the advantages here; do
it in the trainer (``snippets.rl.advantages.masked_whiten``) if you want it.
"""

from __future__ import annotations

import torch

from snippets._checks import (
    check_finite,
    check_float,
    check_interval,
    check_mask,
    check_ndim,
    check_same_shape,
)
from snippets.rl.aggregation import mask_out

__all__ = ["gae", "gae_reference", "next_valid_values"]


def _check_inputs(
    rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float, lam: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float, float]:
    check_float("rewards", rewards)
    check_ndim("rewards", rewards, 2, "(B, T)")
    check_float("values", values)
    check_same_shape("values", values, "rewards", rewards)
    mask = check_mask("mask", mask, rewards.shape, "(B, T)")
    gamma = check_interval("gamma", gamma, 0.0, 1.0)
    lam = check_interval("lam", lam, 0.0, 1.0)
    rewards = mask_out(rewards.detach(), mask)  # (B, T)
    values = mask_out(values.detach(), mask)  # (B, T)
    check_finite("rewards", rewards)
    check_finite("values", values)
    return rewards, values, mask, gamma, lam


# --8<-- [start:next_value]
def next_valid_values(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """V_{t+1} for every t at once: the value at the next valid position of the row, else 0.

    | Argument    | Shape  | Meaning                                               |
    |-------------|--------|-------------------------------------------------------|
    | values      | (B, T) | V(s_t)                                                |
    | mask        | (B, T) | bool mask of valid tokens                             |
    | **returns** | (B, T) | V at the first valid position after t (0 if none)     |
    """
    batch, steps = values.shape
    positions = torch.arange(steps, device=values.device).expand(batch, steps)  # (B, T)
    # index of each valid position; the sentinel T (one past the end) elsewhere
    index = torch.where(mask, positions, torch.full_like(positions, steps))  # (B, T)
    # n(t) = min{k ≥ t : mask_k}, a running minimum from the right
    first_from = index.flip(1).cummin(dim=1).values.flip(1)  # (B, T)
    sentinel = torch.full((batch, 1), steps, dtype=index.dtype, device=index.device)  # (B, 1)
    next_index = torch.cat([first_from[:, 1:], sentinel], dim=1)  # (B, T) min{k > t : mask_k}
    zero = torch.zeros(batch, 1, dtype=values.dtype, device=values.device)  # (B, 1)
    # column T holds V = 0: nothing is bootstrapped past the last valid token
    return torch.cat([values, zero], dim=1).gather(1, next_index)  # (B, T)


# --8<-- [end:next_value]


# --8<-- [start:gae]
def gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """GAE(γ, λ) advantages and value targets: δ for all t at once, then one reverse loop
    over T that is vectorised over the batch.

    | Argument    | Shape  | Meaning                                                   |
    |-------------|--------|-----------------------------------------------------------|
    | rewards     | (B, T) | per-token rewards (constant; garbage allowed at padding)  |
    | values      | (B, T) | V(s_t) from the critic at rollout time (constant)         |
    | mask        | (B, T) | 1 on response tokens, 0 on prompt / padding               |
    | gamma       | float  | discount γ in [0, 1]                                      |
    | lam         | float  | GAE λ in [0, 1]                                           |
    | **returns** | (B, T), (B, T) | advantages A_t and returns R_t = A_t + V_t, 0 at padding |
    """
    rewards, values, mask, gamma, lam = _check_inputs(rewards, values, mask, gamma, lam)
    # δ_t = r_t + γ V_{t+1} − V_t, with V_{t+1} read at the next valid position
    deltas = rewards + gamma * next_valid_values(values, mask) - values  # (B, T)
    # a padded position is not a time step: it adds no δ and passes A_{t+1} on undiscounted
    deltas = mask_out(deltas, mask)  # (B, T)
    decay = torch.full_like(deltas, gamma * lam).masked_fill(~mask, 1.0)  # (B, T)
    running = torch.zeros_like(deltas[:, 0])  # (B,) A_{t+1}: 0 past the last valid token
    reversed_advantages = []
    for delta_t, decay_t in zip(deltas.unbind(1)[::-1], decay.unbind(1)[::-1], strict=True):
        # A_t = δ_t + γλ A_{t+1}
        running = delta_t + decay_t * running  # (B,)
        reversed_advantages.append(running)
    advantages = mask_out(torch.stack(reversed_advantages[::-1], dim=1), mask)  # (B, T)
    # R_t = A_t + V_t  (the critic's regression target)
    returns = mask_out(advantages + values, mask)  # (B, T)
    return advantages, returns


# --8<-- [end:gae]


# --8<-- [start:reference]
def gae_reference(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The same GAE as ``gae``, one Python loop per row over its valid tokens only.

    Slow on purpose: it is the readable definition that tests and the benchmark compare
    the vectorised version with. Same arguments, shapes and outputs as ``gae``.

    | Argument    | Shape  | Meaning                                   |
    |-------------|--------|-------------------------------------------|
    | rewards     | (B, T) | per-token rewards                         |
    | values      | (B, T) | V(s_t)                                    |
    | mask        | (B, T) | 1 on response tokens                      |
    | gamma, lam  | float  | γ and λ in [0, 1]                         |
    | **returns** | (B, T), (B, T) | advantages and returns, 0 at padding |
    """
    rewards, values, mask, gamma, lam = _check_inputs(rewards, values, mask, gamma, lam)
    r, v, m = rewards.tolist(), values.tolist(), mask.tolist()
    adv = [[0.0] * len(row) for row in r]
    for b in range(len(r)):
        steps = [t for t in range(len(r[b])) if m[b][t]]  # valid positions, in order
        next_value, next_adv = 0.0, 0.0  # nothing after the last valid token
        for t in reversed(steps):
            delta = r[b][t] + gamma * next_value - v[b][t]
            next_adv = delta + gamma * lam * next_adv
            next_value = v[b][t]
            adv[b][t] = next_adv
    advantages = torch.tensor(adv, dtype=rewards.dtype)  # (B, T)
    return advantages, mask_out(advantages + values, mask)


# --8<-- [end:reference]
