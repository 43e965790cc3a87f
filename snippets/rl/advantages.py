"""Critic-free advantages: RLOO, GRPO and REINFORCE++.

All three replace a learned value function by statistics of sampled rewards. RLOO and GRPO
sample G responses per prompt and compare each with its siblings; REINFORCE++ compares each
token's return with every valid token of the batch. All outputs are constants.

Conventions, and where the libraries disagree:

* RLOO (Ahmadian et al. 2024, arXiv 2402.14740): baseline = mean of the other G − 1 rewards,
  which equals G/(G−1)·(r − mean). verl ``compute_rloo_outcome_advantage``, TRL's RLOO
  trainer and OpenRLHF ("rloo") agree.
* GRPO (DeepSeekMath, arXiv 2402.03300): (r − mean) / (std + eps) with the unbiased (n − 1)
  std and eps added *outside* the square root, as verl ``compute_grpo_outcome_advantage``
  (eps = 1e-6, our default) and TRL (eps = 1e-4) do. OpenRLHF "group_norm" uses 1e-9.
  ``scale_by_std=False`` is Dr. GRPO (arXiv 2503.20783): the mean is still subtracted.
* REINFORCE++ (arXiv 2501.03262): discounted return-to-go, then whitened over *all* valid
  tokens of the batch with the population variance clamped at 1e-8, as OpenRLHF
  ``experience_maker`` does. verl ``masked_whiten`` (``utils/torch_functional.py``) uses the
  unbiased variance and rsqrt(var + 1e-8) instead; the two differ by a factor
  sqrt(n / (n − 1)), negligible for thousands of tokens.
"""

from __future__ import annotations

import torch

from snippets._checks import check_finite, check_float, check_mask, check_ndim, check_positive
from snippets.rl._args import check_rewards_group
from snippets.rl.aggregation import mask_out, masked_mean
from snippets.rl.policy_gradient import discounted_returns

__all__ = ["grpo_advantages", "masked_whiten", "reinforce_pp_advantages", "rloo_advantages"]


# --8<-- [start:rloo]
def rloo_advantages(rewards: torch.Tensor) -> torch.Tensor:
    """REINFORCE Leave-One-Out: A_i = r_i − mean_{j≠i} r_j = G/(G−1) · (r_i − mean_j r_j).

    The baseline of sample i never sees r_i, so it adds no bias; it is an unbiased version
    of "subtract the group mean".

    | Argument    | Shape  | Meaning                                              |
    |-------------|--------|------------------------------------------------------|
    | rewards     | (P, G) | one scalar reward per response, G ≥ 2 per prompt     |
    | **returns** | (P, G) | advantages; each row sums to 0                       |
    """
    check_rewards_group("rewards", rewards)
    rewards = rewards.detach()  # (P, G)
    group = rewards.shape[1]
    # b_i = (Σ_j r_j − r_i) / (G − 1)
    baseline = (rewards.sum(dim=1, keepdim=True) - rewards) / (group - 1)  # (P, G)
    return rewards - baseline  # (P, G)


# --8<-- [end:rloo]


# --8<-- [start:grpo]
def grpo_advantages(
    rewards: torch.Tensor, scale_by_std: bool = True, eps: float = 1e-6
) -> torch.Tensor:
    """Group-normalised advantage A_i = (r_i − mean(r)) / (std(r) + eps), std with n − 1.

    A group whose rewards are all equal gets exactly 0 (it carries no learning signal). That
    is enforced, not left to arithmetic: in float32 the mean of seven rewards of 0.1 is not
    exactly 0.1, and verl's and TRL's plain (r − mean) / (std + eps) turn that rounding error
    into advantages of about −0.0074 (eps = 1e-6).
    ``scale_by_std=False`` gives Dr. GRPO's r_i − mean(r), without the per-prompt scaling
    that up-weights prompts that are almost always solved or almost always failed.

    | Argument     | Shape  | Meaning                                              |
    |--------------|--------|------------------------------------------------------|
    | rewards      | (P, G) | one scalar reward per response, G ≥ 2 per prompt     |
    | scale_by_std | bool   | divide by the group std (GRPO) or not (Dr. GRPO)     |
    | eps          | float  | > 0, added to the std (outside the square root)      |
    | **returns**  | (P, G) | advantages; zero mean per group                      |
    """
    check_rewards_group("rewards", rewards)
    eps = check_positive("eps", eps)
    rewards = rewards.detach()  # (P, G)
    mean = rewards.mean(dim=1, keepdim=True)  # (P, 1)
    # a group of equal rewards is centred to exactly 0, whatever the rounding of its mean
    same = (rewards == rewards[:, :1]).all(dim=1, keepdim=True)  # (P, 1)
    centred = (rewards - mean).masked_fill(same, 0.0)  # (P, G)
    if not scale_by_std:
        return centred
    # std with Bessel's correction: sqrt(Σ (r − mean)² / (G − 1))
    std = rewards.std(dim=1, keepdim=True, correction=1)  # (P, 1)
    # A_i = (r_i − mean) / (std + eps)
    return centred / (std + eps)  # (P, G)


# --8<-- [end:grpo]


def masked_whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """(x − μ) / σ over the valid positions of the whole tensor, 0 at padding.

    μ and σ² are the mean and the population variance over all positions with mask true;
    σ² is clamped at ``eps`` (OpenRLHF) so a batch of identical values gives 0, not NaN.

    | Argument    | Shape     | Meaning                                  |
    |-------------|-----------|------------------------------------------|
    | x           | any       | values to whiten                         |
    | mask        | same as x | bool mask of valid positions             |
    | eps         | float     | floor of the variance                    |
    | **returns** | same as x | whitened values, 0 at padding            |
    """
    x = mask_out(x, mask)  # same shape as x
    mean = masked_mean(x, mask)  # ()
    var = masked_mean((x - mean).square(), mask)  # () population variance
    # x̂ = (x − μ) / sqrt(max(σ², eps))
    return mask_out((x - mean) * var.clamp(min=eps).rsqrt(), mask)


# --8<-- [start:reinforce_pp]
def reinforce_pp_advantages(
    token_rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0
) -> torch.Tensor:
    """REINFORCE++: discounted return-to-go, whitened over all valid tokens of the batch.

    Token rewards are usually the outcome reward at the last valid token minus a per-token
    KL penalty. Whitening over the batch (not per group) is what distinguishes it from GRPO.

    | Argument      | Shape  | Meaning                                              |
    |---------------|--------|------------------------------------------------------|
    | token_rewards | (B, T) | per-token rewards (garbage allowed at padding)       |
    | mask          | (B, T) | 1 on response tokens, 0 on prompt / padding          |
    | gamma         | float  | discount γ in [0, 1]                                 |
    | **returns**   | (B, T) | advantages: mean 0, variance 1 over valid tokens     |
    """
    check_float("token_rewards", token_rewards)
    check_ndim("token_rewards", token_rewards, 2, "(B, T)")
    mask = check_mask("mask", mask, token_rewards.shape, "(B, T)")
    check_finite("token_rewards", mask_out(token_rewards, mask))
    # G_t = Σ_{k ≥ t} γ^{k−t} r_k
    returns = discounted_returns(token_rewards, mask, gamma)  # (B, T)
    # A_t = (G_t − μ_batch) / σ_batch over every valid token of the batch (OpenRLHF)
    return masked_whiten(returns, mask)  # (B, T)


# --8<-- [end:reinforce_pp]
