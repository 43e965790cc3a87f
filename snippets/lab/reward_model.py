"""Stage 2: a Bradley-Terry reward model, the stand-in for a verifier we would not have.

Trunk: a copy of the SFT GPT; head: a scalar read on the hidden state of the response's last
token (its end token, or its 5th token if it has none). Trained with
``snippets.rl.bradley_terry_loss`` on pairs sampled from the SFT policy and ranked by the
verifier (``preference.preference_pairs``); evaluated by its pairwise accuracy on pairs
from HELD-OUT prompts. RL against it (``rl.train_rl`` with ``reward='model'``) shows what
optimising a learned proxy does to the true reward.

| Name   | Shape        | Meaning                                   |
|--------|--------------|-------------------------------------------|
| seq    | (B, 13) long | prompt + response                         |
| mask   | (B, 5) bool  | response tokens up to the first EOS       |
| h      | (B, 13, d)   | trunk hidden states                       |
| reward | (B,)         | scalar score of each response             |
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from snippets.lab.config import RMConfig
from snippets.lab.policy import Timer, hidden_states
from snippets.lab.preference import Pairs, preference_pairs
from snippets.lab.task import PROMPT_LEN
from snippets.pytorch.gpt import GPT
from snippets.rl import bradley_terry_loss

__all__ = ["RewardModel", "pairwise_accuracy", "train_reward_model"]

Row = dict[str, float]


# --8<-- [start:model]
class RewardModel(nn.Module):
    """r_φ(x, y): GPT trunk + linear head on the last response token. (B, 13), (B, 5) -> (B,)."""

    def __init__(self, start: GPT) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(start)
        self.head = nn.Linear(start.config.n_embd, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, seq: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        h = hidden_states(self.trunk, seq)  # (B, 13, d)
        last = PROMPT_LEN + mask.long().sum(1) - 1  # (B,) position of the last response token
        h_last = h[torch.arange(seq.shape[0]), last]  # (B, d)
        return self.head(h_last).squeeze(-1)  # (B,)


# --8<-- [end:model]


@torch.no_grad()
def pairwise_accuracy(rm: RewardModel, pairs: Pairs) -> float:
    """Share of pairs where r(chosen) > r(rejected); a tie counts one half."""
    rm.eval()
    rc = rm(pairs.chosen, pairs.chosen_mask)  # (N,)
    rr = rm(pairs.rejected, pairs.rejected_mask)  # (N,)
    return ((rc > rr).float() + 0.5 * (rc == rr).float()).mean().item()


def train_reward_model(
    cfg: RMConfig, start: GPT, on_step: Callable[[int], None] | None = None
) -> tuple[RewardModel, list[Row]]:
    """Sample pairs from ``start``, fit r_φ by Bradley-Terry, log held-out pairwise accuracy."""
    g = torch.Generator().manual_seed(cfg.seed)
    timer = Timer()
    train = preference_pairs(start, cfg.pair_prompts, cfg.group, g, split="train")
    heldout = preference_pairs(start, 256, cfg.group, g, split="heldout")
    torch.manual_seed(cfg.seed)
    rm = RewardModel(start)
    opt = torch.optim.AdamW(rm.parameters(), lr=cfg.lr, weight_decay=0.0)
    rows: list[Row] = [
        {
            "step": 0,
            "pairs": len(train),
            "heldout_pairs": len(heldout),
            "heldout_pair_acc": pairwise_accuracy(rm, heldout),
            "wall_s": timer.seconds(),
        }
    ]
    for step in range(1, cfg.steps + 1):
        rm.train()
        idx = torch.randint(len(train), (cfg.batch_size,), generator=g)  # (b,)
        batch = train.subset(idx)
        rc = rm(batch.chosen, batch.chosen_mask)  # (b,)
        rr = rm(batch.rejected, batch.rejected_mask)  # (b,)
        # L = −mean log σ(r_c − r_r)
        loss = bradley_terry_loss(rc, rr)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        row: Row = {
            "step": step,
            "loss": loss.item(),
            "train_pair_acc": (rc > rr).float().mean().item(),
        }
        if step % 25 == 0 or step == cfg.steps:
            with timer.paused():
                row["heldout_pair_acc"] = pairwise_accuracy(rm, heldout)
        row["wall_s"] = timer.seconds()
        rows.append(row)
        if on_step is not None:
            on_step(step)
    return rm, rows
