"""RL post-training algorithms, written from scratch and tested (tour: ``python -m snippets.rl``).

Shapes: B batch, T response tokens, V vocabulary, P prompts, G responses per prompt.
``mask`` is 1 on response tokens and 0 on prompt / padding (bool, int or float).
"""

from snippets.rl.advantages import (
    grpo_advantages,
    masked_whiten,
    reinforce_pp_advantages,
    rloo_advantages,
)
from snippets.rl.aggregation import (
    AGGREGATIONS,
    aggregate,
    aggregation_weights,
    mask_out,
    masked_mean,
)
from snippets.rl.best_of_n import (
    best_of_n_indices,
    best_of_n_kl,
    best_of_n_kl_bound,
    best_of_n_probs,
    filtered_sft_loss,
    normal_best_of_n_mean,
    rejection_sample_mask,
)
from snippets.rl.bradley_terry import bradley_terry_loss, preference_probability
from snippets.rl.dpo import dpo_loss, ipo_loss
from snippets.rl.gae import gae, gae_reference, next_valid_values
from snippets.rl.grpo import KL_ESTIMATORS, grpo_loss
from snippets.rl.grpo_variants import (
    dapo_overlong_penalty,
    gspo_loss,
    gspo_sequence_ratio,
    mixed_group_mask,
)
from snippets.rl.kl import exact_kl, kl_k1, kl_k2, kl_k3
from snippets.rl.logprobs import (
    entropy_from_logits,
    sequence_logprobs,
    shift_for_next_token,
    token_logprobs,
)
from snippets.rl.policy_gradient import discounted_returns, expand_advantages, reinforce_loss
from snippets.rl.ppo import clipped_surrogate, policy_stats, ppo_policy_loss, ppo_value_loss

__all__ = [
    "AGGREGATIONS",
    "KL_ESTIMATORS",
    "aggregate",
    "aggregation_weights",
    "best_of_n_indices",
    "best_of_n_kl",
    "best_of_n_kl_bound",
    "best_of_n_probs",
    "bradley_terry_loss",
    "clipped_surrogate",
    "dapo_overlong_penalty",
    "discounted_returns",
    "dpo_loss",
    "entropy_from_logits",
    "exact_kl",
    "expand_advantages",
    "filtered_sft_loss",
    "gae",
    "gae_reference",
    "grpo_advantages",
    "grpo_loss",
    "gspo_loss",
    "gspo_sequence_ratio",
    "ipo_loss",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "mask_out",
    "masked_mean",
    "masked_whiten",
    "mixed_group_mask",
    "next_valid_values",
    "normal_best_of_n_mean",
    "policy_stats",
    "ppo_policy_loss",
    "ppo_value_loss",
    "preference_probability",
    "reinforce_loss",
    "reinforce_pp_advantages",
    "rejection_sample_mask",
    "rloo_advantages",
    "sequence_logprobs",
    "shift_for_next_token",
    "token_logprobs",
]
