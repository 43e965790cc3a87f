"""A toy token bandit: a 3-token "response" from a 4-token vocabulary, small enough to
enumerate and fast enough to train every algorithm family on in well under a second.

The policy is a table of logits, one row per position, so π(y) = Π_t softmax(θ_t)(y_t): it
produces (B, T, V) logits exactly like a language model would, and every snippet consumes
them unchanged. Each token has a fixed reward; a response's reward is the mean over its
tokens, in [0, 1]. The uniform initial policy earns 0.4375 on average; the best response
(token 3 everywhere) earns 1. There are no prompts: a "group" of G responses is G samples
from the same policy, which is all RLOO and GRPO need.
"""

from __future__ import annotations

import torch
from torch import nn

from snippets.rl.bradley_terry import preference_probability
from snippets.rl.logprobs import token_logprobs

__all__ = [
    "SEQ_LEN",
    "TOKEN_REWARD",
    "TablePolicy",
    "expected_reward",
    "preference_pairs",
    "sample",
    "sequence_reward",
    "token_rewards",
]

# --8<-- [start:bandit]
TOKEN_REWARD = torch.tensor([0.0, 0.25, 0.5, 1.0])  # (V,) reward of each vocabulary token
SEQ_LEN = 3  # T: tokens per response


class TablePolicy(nn.Module):
    """π(y_t) = softmax(θ_t): one row of logits per position, uniform at initialisation."""

    def __init__(self, seq_len: int = SEQ_LEN, vocab: int = len(TOKEN_REWARD)) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(seq_len, vocab))  # (T, V)

    def forward(self, batch: int) -> torch.Tensor:
        """Logits for a batch of responses, shaped like a language model's output."""
        return self.logits.expand(batch, -1, -1)  # (B, T, V)

    def logprobs(self, tokens: torch.Tensor) -> torch.Tensor:
        """log π(y_t) of given responses (with gradient)."""
        return token_logprobs(self(tokens.shape[0]), tokens)  # (B, T)


def sample(policy: TablePolicy, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Draw ``batch`` responses y ~ π (no gradient): integer tokens of shape (B, T)."""
    with torch.no_grad():
        probs = torch.softmax(policy.logits, dim=-1)  # (T, V)
        draws = torch.multinomial(probs, batch, replacement=True, generator=generator)  # (T, B)
    return draws.T.contiguous()  # (B, T)


def token_rewards(tokens: torch.Tensor) -> torch.Tensor:
    """Dense per-token rewards R(y_t) / T, which sum to the response reward: (B, T)."""
    return TOKEN_REWARD[tokens] / tokens.shape[1]  # (B, T)


def sequence_reward(tokens: torch.Tensor) -> torch.Tensor:
    """Reward of each response, the mean of its token rewards, in [0, 1]: (B,)."""
    return TOKEN_REWARD[tokens].mean(dim=1)  # (B,)


def expected_reward(policy: TablePolicy) -> float:
    """E_{y~π}[R(y)] computed exactly: Σ_t Σ_v π_t(v) R(v) / T."""
    with torch.no_grad():
        probs = torch.softmax(policy.logits, dim=-1)  # (T, V)
        return float((probs * TOKEN_REWARD).sum(dim=-1).mean())


# --8<-- [end:bandit]


# --8<-- [start:preferences]
def preference_pairs(
    n: int, generator: torch.Generator, reward_scale: float = 4.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Synthetic preference data: pairs of uniform responses, labelled by Bradley-Terry.

    Response a is preferred to b with probability σ(s·(R(a) − R(b))), s = ``reward_scale``,
    so the labels are noisy the way human labels are. Returns (chosen, rejected) tokens.

    | Argument     | Shape  | Meaning                                      |
    |--------------|--------|----------------------------------------------|
    | n            | int    | number of comparisons                        |
    | generator    | -      | torch.Generator for reproducibility          |
    | reward_scale | float  | s: larger means less noisy labels            |
    | **returns**  | (n, T), (n, T) | chosen and rejected responses        |
    """
    vocab = len(TOKEN_REWARD)
    a = torch.randint(0, vocab, (n, SEQ_LEN), generator=generator)  # (n, T)
    b = torch.randint(0, vocab, (n, SEQ_LEN), generator=generator)  # (n, T)
    p_a = preference_probability(
        reward_scale * sequence_reward(a), reward_scale * sequence_reward(b)
    )  # (n,)
    a_wins = (torch.rand(n, generator=generator) < p_a).unsqueeze(1)  # (n, 1)
    return torch.where(a_wins, a, b), torch.where(a_wins, b, a)


# --8<-- [end:preferences]
