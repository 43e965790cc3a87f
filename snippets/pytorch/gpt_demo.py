"""Train the minimal GPT for a few seconds on a generated task: reverse a string of digits.

A sequence is ``d1 … dn | dn … d1`` (``|`` is token 10). The model reads the whole sequence
but is scored only where it must produce the reversed half: the other targets are ``-1``,
which ``F.cross_entropy(ignore_index=-1)`` skips, exactly as a prompt is masked in SFT.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from snippets.pytorch.gpt import GPT, GPTConfig

__all__ = ["SEP", "ReverseTaskConfig", "gpt_example", "make_reverse_batch", "train_reverse"]

SEP = 10
"""Separator token between the digits and their reversal; digits are tokens 0-9."""


# --8<-- [start:config]
@dataclass
class ReverseTaskConfig:
    """Settings of the reversal run."""

    n_digits: int = 5
    """Digits per string; a sequence is 2·n_digits + 1 tokens long."""
    steps: int = 300
    """Optimizer steps (one fresh batch each)."""
    batch_size: int = 64
    """Sequences per batch."""
    lr: float = 3e-3
    """AdamW learning rate."""
    n_layer: int = 2
    """Transformer blocks."""
    n_head: int = 4
    """Attention heads per block."""
    n_embd: int = 64
    """Width of the residual stream."""
    n_eval: int = 256
    """Fresh prompts on which greedy decoding is scored."""
    seed: int = 0
    """Seed of the model's initialisation and of the data generator."""


# --8<-- [end:config]


# --8<-- [start:data]
def make_reverse_batch(
    batch_size: int, n_digits: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(x, y)``, both ``(B, 2n)`` long: inputs and next-token targets.

    ``y`` is ``-1`` on the first ``n`` positions (predicting the input digits is not the task).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if n_digits < 1:
        raise ValueError(f"n_digits must be >= 1, got {n_digits}")
    digits = torch.randint(0, 10, (batch_size, n_digits), generator=generator)  # (B, n)
    sep = torch.full((batch_size, 1), SEP)  # (B, 1)
    seq = torch.cat([digits, sep, digits.flip(1)], dim=1)  # (B, 2n + 1)
    x = seq[:, :-1]  # (B, 2n): what the model reads
    y = seq[:, 1:].clone()  # (B, 2n): the token after each position
    y[:, :n_digits] = -1  # (B, 2n): score only the positions from the separator on
    return x, y


# --8<-- [end:data]


def _exact_match(model: GPT, cfg: ReverseTaskConfig, generator: torch.Generator) -> float:
    x, _ = make_reverse_batch(cfg.n_eval, cfg.n_digits, generator)  # (N, 2n)
    prompt = x[:, : cfg.n_digits + 1]  # (N, n + 1): digits and separator
    out = model.generate(prompt, cfg.n_digits, temperature=0.0)  # (N, 2n + 1)
    answer = out[:, cfg.n_digits + 1 :]  # (N, n)
    return (answer == prompt[:, : cfg.n_digits].flip(1)).all(dim=1).float().mean().item()


# --8<-- [start:example]
def train_reverse(cfg: ReverseTaskConfig) -> tuple[GPT, list[float], torch.Generator]:
    """Train a GPT on the reversal task; return it in eval mode, its losses and the generator
    (in the state training left it, so later sampling is reproducible)."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    config = GPTConfig(
        vocab_size=11,
        block_size=2 * cfg.n_digits,
        n_layer=cfg.n_layer,
        n_head=cfg.n_head,
        n_embd=cfg.n_embd,
    )
    model = GPT(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01)
    model.train()
    losses: list[float] = []
    for _ in range(cfg.steps):
        x, y = make_reverse_batch(cfg.batch_size, cfg.n_digits, gen)  # (B, 2n) each
        _, loss = model(x, y)  # ()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    model.eval()
    return model, losses, gen


def gpt_example(cfg: ReverseTaskConfig | None = None) -> dict[str, float]:
    """Train on the reversal task, then decode greedily and sample; return the key numbers."""
    cfg = cfg or ReverseTaskConfig()
    model, losses, gen = train_reverse(cfg)
    accuracy = _exact_match(model, cfg, gen)
    digits = [int(c) for c in "31415926535897932384626433832795"[: cfg.n_digits]]
    prompt = torch.tensor([[*digits, SEP]])  # (1, n + 1)
    greedy = model.generate(prompt, cfg.n_digits, temperature=0.0)  # (1, 2n + 1)
    sampled = model.generate(prompt, cfg.n_digits, temperature=1.0, generator=gen)
    print(f"{model.num_params():,} parameters, {cfg.steps} steps of {cfg.batch_size} strings")
    print(f"loss: first {losses[0]:.3f}, last {losses[-1]:.3f}")
    print(f"greedy exact-match on {cfg.n_eval} fresh strings: {accuracy:.3f}")
    print(f"greedy  {prompt[0].tolist()} -> {greedy[0, cfg.n_digits + 1 :].tolist()}")
    print(f"sampled {prompt[0].tolist()} -> {sampled[0, cfg.n_digits + 1 :].tolist()}")
    return {
        "first_loss": losses[0],
        "final_loss": losses[-1],
        "exact_match": accuracy,
        "num_params": float(model.num_params()),
    }


# --8<-- [end:example]

if __name__ == "__main__":
    gpt_example()
