"""Stage 4: offline preference optimisation (DPO, IPO) on pairs sampled from the SFT policy.

Pairs are built ONCE, before training, from the starting policy: for each prompt sample G
responses, keep the first correct one as chosen and the first wrong one as rejected (prompts
whose samples all agree give no pair). The verifier ranks them, so the labels are exact. The
policy then never samples again: that is what "offline" means, and what separates DPO from
the online RL of ``rl.py``, which keeps scoring fresh samples of the current policy.

| Name           | Shape        | Meaning                                            |
|----------------|--------------|----------------------------------------------------|
| chosen         | (N, 13) long | prompt + preferred response                        |
| rejected       | (N, 13) long | prompt + dispreferred response                     |
| chosen_mask    | (N, 5) bool  | response tokens of chosen (up to the first EOS)    |
| ref_chosen     | (N,)         | log π_ref(y_c ∣ x), summed over response tokens    |
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass

import torch

from snippets.lab.config import PrefConfig
from snippets.lab.policy import Timer, evaluate, policy_logprobs, rollout
from snippets.lab.task import sample_problems, verify
from snippets.pytorch.gpt import GPT
from snippets.rl import dpo_loss, ipo_loss

__all__ = ["Pairs", "preference_pairs", "train_preference"]

Row = dict[str, float]


@dataclass
class Pairs:
    """Preference pairs (chosen better than rejected) with their masks."""

    chosen: torch.Tensor  # (N, 13)
    rejected: torch.Tensor  # (N, 13)
    chosen_mask: torch.Tensor  # (N, 5)
    rejected_mask: torch.Tensor  # (N, 5)

    def __len__(self) -> int:
        return self.chosen.shape[0]

    def subset(self, idx: torch.Tensor) -> Pairs:
        return Pairs(
            self.chosen[idx], self.rejected[idx], self.chosen_mask[idx], self.rejected_mask[idx]
        )


# --8<-- [start:pairs]
@torch.no_grad()
def preference_pairs(
    gpt: GPT, n_prompts: int, group: int, generator: torch.Generator, split: str = "train"
) -> Pairs:
    """Sample ``group`` responses for each of ``n_prompts`` prompts and pair, per prompt, the
    first correct with the first wrong response (verifier-ranked); ``n_prompts x group``
    samples in all, in chunks of 64 prompts."""
    out: list[Pairs] = []
    for start in range(0, n_prompts, 64):
        n = min(64, n_prompts - start)
        problems = sample_problems(n, generator, split).repeat_interleave(group, 0)  # (n·G, 2)
        ro = rollout(gpt, problems, 1.0, generator)
        correct = verify(problems, ro.responses).bool().view(n, group)  # (n, G)
        keep = correct.any(1) & ~correct.all(1)  # (n,) prompts with both kinds
        first_good = correct.float().argmax(1)  # (n,) index of the first correct sample
        first_bad = (~correct).float().argmax(1)  # (n,) index of the first wrong sample
        rows = torch.arange(n) * group  # (n,) offset of each prompt's group
        good, bad = (rows + first_good)[keep], (rows + first_bad)[keep]  # (k,), (k,)
        out.append(Pairs(ro.seq[good], ro.seq[bad], ro.mask[good], ro.mask[bad]))
    return Pairs(
        *(
            torch.cat([getattr(p, f) for p in out])
            for f in ("chosen", "rejected", "chosen_mask", "rejected_mask")
        )
    )


# --8<-- [end:pairs]


@torch.no_grad()
def _sample_stats(gpt: GPT, reference: GPT, generator: torch.Generator) -> Row:
    """Sampled exact match, KL to π_ref, length and entropy on 256 fresh training prompts."""
    problems = sample_problems(256, generator)  # (256, 2)
    ro = rollout(gpt, problems, 1.0, generator)
    ref = policy_logprobs(reference, ro.seq, ro.mask)  # (256, 5)
    return {
        "true_reward": verify(problems, ro.responses).mean().item(),
        "kl_ref": (ro.logprobs - ref).sum(1).mean().item(),
        "resp_len": ro.mask.sum(1).float().mean().item(),
        "entropy": ro.entropy,
    }


def train_preference(
    cfg: PrefConfig, start: GPT, on_step: Callable[[int], None] | None = None
) -> tuple[GPT, list[Row]]:
    """DPO or IPO from ``start`` (also the reference) on pairs sampled once from it."""
    policy, reference = copy.deepcopy(start), copy.deepcopy(start).eval()
    g = torch.Generator().manual_seed(cfg.seed)
    # a separate stream for the logged samples, so evaluating more often changes no update
    g_stats = torch.Generator().manual_seed(cfg.seed + 1_000)
    timer = Timer()
    pairs = preference_pairs(start, cfg.pair_prompts, cfg.group, g)
    with torch.no_grad():  # log π_ref of every pair, once
        ref_c = policy_logprobs(reference, pairs.chosen, pairs.chosen_mask).sum(1)  # (N,)
        ref_r = policy_logprobs(reference, pairs.rejected, pairs.rejected_mask).sum(1)  # (N,)
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    row0 = {
        "step": 0,
        "samples": cfg.pair_prompts * cfg.group,
        "pairs": len(pairs),
        "heldout_acc": evaluate(start),
        **_sample_stats(start, reference, g_stats),
    }
    row0["wall_s"] = timer.seconds()  # sampling the pairs, plus the step-0 evaluation
    rows: list[Row] = [row0]
    for step in range(1, cfg.steps + 1):
        policy.train()
        idx = torch.randint(len(pairs), (cfg.batch_size,), generator=g)  # (b,)
        batch = pairs.subset(idx)
        pc = policy_logprobs(policy, batch.chosen, batch.chosen_mask).sum(1)  # (b,)
        pr = policy_logprobs(policy, batch.rejected, batch.rejected_mask).sum(1)  # (b,)
        if cfg.algo == "dpo":
            # L = −log σ(β [(log π_θ − log π_ref)(y_c) − (log π_θ − log π_ref)(y_r)])
            loss, rc, rr = dpo_loss(pc, pr, ref_c[idx], ref_r[idx], cfg.beta)
        else:
            # L = (Δ − 1/(2β))², Δ the same log-ratio difference
            loss, rc, rr = ipo_loss(pc, pr, ref_c[idx], ref_r[idx], cfg.beta)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        row: Row = {
            "step": step,
            "samples": cfg.pair_prompts * cfg.group,
            "loss": loss.item(),
            "pref_acc": (rc > rr).float().mean().item(),  # implicit reward ranks the pair
            "chosen_logp": pc.mean().item(),
            "rejected_logp": pr.mean().item(),
        }
        if step % cfg.eval_every == 0 or step == cfg.steps:
            with timer.paused():
                row["heldout_acc"] = evaluate(policy)
                row.update(_sample_stats(policy, reference, g_stats))
        row["wall_s"] = timer.seconds()
        rows.append(row)
        if on_step is not None:
            on_step(step)
    return policy, rows
