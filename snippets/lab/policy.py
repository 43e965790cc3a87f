"""What every stage shares: build the GPT, sample responses, score them, evaluate greedily.

The policy is ``snippets.pytorch.gpt.GPT`` unchanged; a response is the 5 tokens generated
after the 8-token prompt, of which those up to the first end token count (``mask``).

| Name      | Shape          | Meaning                                                   |
|-----------|----------------|-----------------------------------------------------------|
| seq       | (B, 13) long   | prompt (8) + response (5)                                 |
| responses | (B, 5) long    | seq[:, 8:]                                                |
| mask      | (B, 5) bool    | response tokens up to and including the first EOS         |
| logits    | (B, 5, V)      | scores of the 5 response tokens (positions 7..11 of seq)  |
| logprobs  | (B, 5)         | log π(y_t | x, y_<t) of the sampled tokens                |
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch

from snippets._checks import check_mask, check_ndim, check_positive, check_shape
from snippets.lab.config import ModelConfig
from snippets.lab.task import (
    PROMPT_LEN,
    RESPONSE_LEN,
    VOCAB,
    heldout_problems,
    make_prompts,
    response_mask,
    verify,
)
from snippets.pytorch.gpt import GPT, GPTConfig
from snippets.rl import entropy_from_logits, token_logprobs

__all__ = [
    "Rollout",
    "Timer",
    "build_gpt",
    "evaluate",
    "hidden_states",
    "policy_logprobs",
    "response_logits",
    "rollout",
]

SEQ_LEN = PROMPT_LEN + RESPONSE_LEN  # 13


def build_gpt(model: ModelConfig, seed: int) -> GPT:
    """A freshly initialised GPT for the task's vocabulary and context, seeded."""
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=len(VOCAB),
        block_size=SEQ_LEN,
        n_layer=model.n_layer,
        n_head=model.n_head,
        n_embd=model.n_embd,
    )
    return GPT(config)


def hidden_states(gpt: GPT, idx: torch.Tensor) -> torch.Tensor:
    """The GPT's final residual stream, after ``ln_f`` (what the LM head reads).

    The same modules as ``GPT.forward``, stopping before the head, so a scalar head (value,
    reward) can sit on the trunk. ``(B, T) -> (B, T, d)``.
    """
    pos = torch.arange(idx.shape[1])  # (T,)
    x = gpt.drop(gpt.tok_emb(idx) + gpt.pos_emb(pos))  # (B, T, d)
    for block in gpt.blocks:
        x = block(x)  # (B, T, d)
    return gpt.ln_f(x)  # (B, T, d)


def response_logits(gpt: GPT, seq: torch.Tensor) -> torch.Tensor:
    """Logits that score the response tokens: position t predicts t + 1. (B, 13) -> (B, 5, V)."""
    logits, _ = gpt(seq)  # (B, 13, V)
    return logits[:, PROMPT_LEN - 1 : -1]  # (B, 5, V)


@dataclass
class Rollout:
    """One batch of sampled responses with everything a loss needs (all constants)."""

    problems: torch.Tensor  # (B, 2)
    seq: torch.Tensor  # (B, 13)
    mask: torch.Tensor  # (B, 5) bool
    logprobs: torch.Tensor  # (B, 5) log π_old, 0 at padding
    entropy: float  # mean next-token entropy over response tokens

    @property
    def responses(self) -> torch.Tensor:
        return self.seq[:, PROMPT_LEN:]  # (B, 5)


@torch.no_grad()
def rollout(
    gpt: GPT, problems: torch.Tensor, temperature: float, generator: torch.Generator
) -> Rollout:
    """Sample one response per row of ``problems`` (repeat rows for groups) and score it.

    ``logprobs`` are those of the distribution sampled from (logits / ``temperature``).
    """
    check_positive("temperature", temperature)
    gpt.eval()
    seq = gpt.generate(make_prompts(problems), RESPONSE_LEN, temperature, generator=generator)
    responses = seq[:, PROMPT_LEN:]  # (B, 5)
    mask = response_mask(responses)  # (B, 5)
    logits = _tempered(response_logits(gpt, seq), temperature)  # (B, 5, V)
    logprobs = token_logprobs(logits, responses).masked_fill(~mask, 0.0)  # (B, 5)
    entropy = entropy_from_logits(logits)[mask].mean().item()
    return Rollout(problems, seq, mask, logprobs, entropy)


def _tempered(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Logits of the distribution the rollouts are sampled from: ``logits / temperature``.

    At temperature 1 the logits are returned untouched (not divided by 1.0), so runs at
    temperature 1, every committed run among them, take the same code path as greedy scoring.
    """
    return logits if temperature == 1.0 else logits / temperature


def policy_logprobs(
    gpt: GPT, seq: torch.Tensor, mask: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """log π of the response tokens at ``temperature``, with gradient; 0 at padding.

    Use the rollout's temperature for π_θ and π_ref alike: ``rollout`` stores log π_old of
    the tempered distribution, so the ratio π_θ / π_old is exactly 1 before the first update
    only if π_θ is tempered the same way.

    | Argument    | Shape        | Meaning                                  |
    |-------------|--------------|------------------------------------------|
    | seq         | (B, 13) long | prompt + response                        |
    | mask        | (B, 5) bool  | response tokens up to the first EOS      |
    | temperature | float > 0    | sampling temperature of the rollouts     |
    | **returns** | (B, 5)       | log-probabilities, 0 at padding          |
    """
    check_ndim("seq", seq, 2, "(B, 13)")
    check_shape("seq", seq, (seq.shape[0], SEQ_LEN), "(B, 13)")
    mask = check_mask("mask", mask, (seq.shape[0], RESPONSE_LEN), "(B, 5)")
    temperature = check_positive("temperature", temperature)
    logits = _tempered(response_logits(gpt, seq), temperature)  # (B, 5, V)
    return token_logprobs(logits, seq[:, PROMPT_LEN:]).masked_fill(~mask, 0.0)  # (B, 5)


_EVAL_SET: dict[int, torch.Tensor] = {}


@torch.no_grad()
def evaluate(gpt: GPT, n: int = 512) -> float:
    """Held-out exact match of greedy decoding on the fixed held-out set of ``n`` problems."""
    if n not in _EVAL_SET:
        _EVAL_SET[n] = heldout_problems(n)
    problems = _EVAL_SET[n]  # (n, 2)
    gpt.eval()
    seq = gpt.generate(make_prompts(problems), RESPONSE_LEN, temperature=0.0)  # (n, 13)
    return verify(problems, seq[:, PROMPT_LEN:]).mean().item()


class Timer:
    """Wall-clock seconds since creation, excluding time spent inside ``paused()`` blocks."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.excluded = 0.0

    def seconds(self) -> float:
        return time.perf_counter() - self.start - self.excluded

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Leave the enclosed block (held-out evaluation) out of the training time."""
        paused_at = time.perf_counter()
        try:
            yield
        finally:
            self.excluded += time.perf_counter() - paused_at
