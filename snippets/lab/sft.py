"""Stage 1: supervised fine-tuning of a random GPT on noisy demonstrations.

The loss is the next-token cross-entropy on the answer tokens only (prompt positions get
target −1, which ``GPT.forward`` ignores). Because more than half of the demonstrations drop
their carries, the likeliest answer to any problem with a carry is the wrong one: greedy
decoding of the SFT policy plateaus at the share of problems without a carry (about
0.55³ ≈ 17%), however long it trains. ``continue_sft`` is the control that shows it.

| Name    | Shape        | Meaning                                        |
|---------|--------------|------------------------------------------------|
| idx     | (B, 13) long | prompt + answer (+ EOS padding)                |
| targets | (B, 13) long | next token on answer positions, −1 elsewhere   |
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch

from snippets.lab.config import SFTConfig
from snippets.lab.policy import Timer, build_gpt, evaluate
from snippets.lab.task import demo_batch
from snippets.pytorch.gpt import GPT

__all__ = ["continue_sft", "train_sft"]

Row = dict[str, float]


# --8<-- [start:sft]
def sft_steps(
    gpt: GPT,
    cfg: SFTConfig,
    generator: torch.Generator,
    warmup: int = 50,
    on_step: Callable[[int], None] | None = None,
) -> list[Row]:
    """Run ``cfg.steps`` SFT steps on ``gpt`` in place; return one log row per step."""
    opt = torch.optim.AdamW(gpt.parameters(), lr=cfg.lr, weight_decay=0.0)
    timer, rows = Timer(), []
    for step in range(1, cfg.steps + 1):
        for group in opt.param_groups:  # linear warm-up, then constant
            group["lr"] = cfg.lr * min(1.0, step / warmup)
        gpt.train()
        idx, targets = demo_batch(cfg.batch_size, cfg.noise, generator)  # (B, 13), (B, 13)
        # L = −mean over answer tokens of log π(y_t | x, y_<t)
        _, loss = gpt(idx, targets)  # ()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        row: Row = {"step": step, "samples": step * cfg.batch_size, "loss": loss.item()}
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with timer.paused():
                row["heldout_acc"] = evaluate(gpt)
        row["wall_s"] = timer.seconds()
        rows.append(row)
        if on_step is not None:
            on_step(step)
    return rows


# --8<-- [end:sft]


def train_sft(
    cfg: SFTConfig, on_step: Callable[[int], None] | None = None
) -> tuple[GPT, list[Row]]:
    """Random GPT -> starting policy. Returns the trained GPT and the per-step log."""
    gpt = build_gpt(cfg.model, cfg.seed)
    generator = torch.Generator().manual_seed(cfg.seed)
    rows = sft_steps(gpt, cfg, generator, on_step=on_step)
    return gpt, rows


def continue_sft(
    start: GPT, cfg: SFTConfig, on_step: Callable[[int], None] | None = None
) -> tuple[GPT, list[Row]]:
    """The control: keep doing SFT on fresh noisy demos from the starting policy."""
    gpt = copy.deepcopy(start)
    generator = torch.Generator().manual_seed(10_000 + cfg.seed)
    rows = sft_steps(gpt, cfg, generator, warmup=1, on_step=on_step)
    return gpt, rows
