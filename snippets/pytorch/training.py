"""The canonical training loop: Dataset/DataLoader, train/eval, an LR schedule, gradient
clipping and accumulation, and a checkpoint that resumes bit-for-bit."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from snippets._checks import check_int, check_interval, check_same_shape, check_shape

__all__ = [
    "Run",
    "SineDataset",
    "TrainConfig",
    "accumulate_gradients",
    "evaluate",
    "load_checkpoint",
    "make_run",
    "save_checkpoint",
    "train_epochs",
    "training_loop_demo",
    "warmup_cosine",
]


# --8<-- [start:config]
@dataclass
class TrainConfig:
    """Settings of the demo run (fit y = sin(x) + noise with a small MLP)."""

    n_samples: int = 256
    """Size of the generated training set."""
    batch_size: int = 32
    """Examples per optimizer step."""
    epochs: int = 20
    """Passes over the data."""
    lr: float = 1e-2
    """Peak learning rate, reached at the end of the warm-up."""
    weight_decay: float = 0.01
    """AdamW's decoupled weight decay."""
    warmup_steps: int = 10
    """Steps of linear warm-up up to ``lr``."""
    min_lr_ratio: float = 0.1
    """The cosine decays to ``min_lr_ratio * lr`` at the last step."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this value."""
    dropout: float = 0.1
    """Dropout between hidden layers (makes train and eval mode differ)."""
    seed: int = 0
    """Seeds the data, the initialisation, the shuffling and dropout."""


# --8<-- [end:config]


# --8<-- [start:dataset]
class SineDataset(Dataset):
    """``(x, y)`` pairs, x ~ U(−π, π), y = sin(x) + 0.1·ε; each item is ``((1,), (1,))``."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.x = (torch.rand(n, 1, generator=generator) * 2 - 1) * math.pi  # (N, 1)
        self.y = torch.sin(self.x) + 0.1 * torch.randn(n, 1, generator=generator)  # (N, 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]  # (1,), (1,); the DataLoader stacks them to (B, 1)


# --8<-- [end:dataset]


# --8<-- [start:schedule]
def warmup_cosine(step: int, warmup_steps: int, total_steps: int, min_ratio: float = 0.1) -> float:
    """Multiplier of the peak LR at ``step``: linear warm-up, then cosine decay to ``min_ratio``.

    With W = warmup_steps, S = total_steps and r = min_ratio::

        c(s) = (s + 1) / W                                     for s < W
        c(s) = r + (1 − r) · ½ (1 + cos(π (s − W) / (S − 1 − W)))  for W ≤ s

    Step 0 already has a non-zero LR; the last step, S − 1, has exactly r (and so do later ones).
    """
    check_int("step", step, low=0)
    check_int("total_steps", total_steps)
    check_int("warmup_steps", warmup_steps, low=0)
    if warmup_steps >= total_steps:
        raise ValueError(
            f"warmup_steps must be in [0, total_steps={total_steps}), got {warmup_steps}"
        )
    check_interval("min_ratio", min_ratio, 0.0, 1.0)  # a floor above 1 would exceed the peak
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    span = total_steps - 1 - warmup_steps  # decay steps after the first one
    progress = 1.0 if span == 0 else min(1.0, (step - warmup_steps) / span)  # span 0: at the floor
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# --8<-- [end:schedule]


@dataclass
class Run:
    """Everything a training run mutates, i.e. everything a checkpoint must hold."""

    model: nn.Module
    """The network (its parameters and buffers)."""
    optimizer: torch.optim.Optimizer
    """AdamW and its moment estimates."""
    scheduler: torch.optim.lr_scheduler.LRScheduler
    """The LR schedule and its step counter."""
    loader: DataLoader
    """Shuffling loader over the training set."""
    loader_generator: torch.Generator
    """The loader's own RNG: it decides each epoch's order."""
    config: TrainConfig
    """The settings the run was made from."""


def make_run(cfg: TrainConfig) -> Run:
    """Build data, model, optimizer, scheduler and loader, all seeded from ``cfg.seed``."""
    torch.manual_seed(cfg.seed)  # initialisation and dropout use the global RNG
    dataset = SineDataset(cfg.n_samples, torch.Generator().manual_seed(cfg.seed))
    loader_generator = torch.Generator().manual_seed(cfg.seed + 1)
    loader = DataLoader(dataset, cfg.batch_size, shuffle=True, generator=loader_generator)
    model = nn.Sequential(
        nn.Linear(1, 64), nn.Tanh(), nn.Dropout(cfg.dropout),
        nn.Linear(64, 64), nn.Tanh(), nn.Dropout(cfg.dropout),
        nn.Linear(64, 1),
    )  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    total = cfg.epochs * len(loader)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: warmup_cosine(s, cfg.warmup_steps, total, cfg.min_lr_ratio)
    )
    return Run(model, optimizer, scheduler, loader, loader_generator, cfg)


# --8<-- [start:loop]
def train_epochs(run: Run, start_epoch: int, stop_epoch: int) -> list[float]:
    """Train epochs ``[start_epoch, stop_epoch)``; return each epoch's mean training loss."""
    model, optimizer, scheduler = run.model, run.optimizer, run.scheduler
    history = []
    for _ in range(start_epoch, stop_epoch):
        model.train()  # dropout on (and BatchNorm would use batch statistics)
        total, count = 0.0, 0
        for x, y in run.loader:  # (B, 1), (B, 1)
            pred = model(x)  # (B, 1)
            loss = F.mse_loss(pred, y)  # () shapes match: no broadcasting surprise
            optimizer.zero_grad(set_to_none=True)  # 1. clear the accumulated .grad
            loss.backward()  # 2. fill .grad
            nn.utils.clip_grad_norm_(model.parameters(), run.config.grad_clip)  # 3. clip
            optimizer.step()  # 4. update the parameters
            scheduler.step()  # 5. then move the LR (after optimizer.step)
            total, count = total + loss.item() * len(x), count + len(x)
        history.append(total / count)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """MSE of ``model`` on ``x (N, 1)``, ``y (N, 1)`` in eval mode, without building a graph."""
    was_training = model.training
    model.eval()  # dropout off: deterministic predictions
    pred = model(x)  # (N, 1)
    model.train(was_training)
    check_same_shape("y", y, "model(x)", pred)  # a (N,) y would broadcast to (N, N)
    return F.mse_loss(pred, y).item()


# --8<-- [end:loop]


# --8<-- [start:checkpoint]
def save_checkpoint(path: str | Path, run: Run, epoch: int) -> None:
    """Save everything needed to continue after ``epoch`` exactly as if never stopped."""
    torch.save(
        {
            "epoch": epoch,
            "model": run.model.state_dict(),
            "optimizer": run.optimizer.state_dict(),  # Adam's m and v, per parameter
            "scheduler": run.scheduler.state_dict(),  # its step counter
            "torch_rng": torch.get_rng_state(),  # dropout masks to come
            "loader_rng": run.loader_generator.get_state(),  # next epochs' shuffles
        },
        path,
    )


def load_checkpoint(path: str | Path, run: Run) -> int:
    """Restore ``run`` in place from ``path``; return the epoch to start from."""
    state = torch.load(path, weights_only=True)  # tensors and plain containers only: safe
    run.model.load_state_dict(state["model"])
    run.optimizer.load_state_dict(state["optimizer"])
    run.scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["torch_rng"])
    run.loader_generator.set_state(state["loader_rng"])
    return state["epoch"] + 1


# --8<-- [end:checkpoint]


# --8<-- [start:accumulation]
def accumulate_gradients(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batches: int,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = F.mse_loss,
) -> float:
    """Backward ``micro_batches`` equal slices of ``(x, y)``, each loss scaled by 1/k.

    | Argument      | Shape    | Meaning                                         |
    |---------------|----------|-------------------------------------------------|
    | x             | (N, ...) | inputs of the whole batch                       |
    | y             | (N, ...) | targets of the whole batch (for the default MSE: |
    |               |          | the shape of model(x))                          |
    | micro_batches | int      | k, must divide N                                |
    | **returns**   | float    | the mean loss over the whole batch              |

    Adds to ``.grad`` the gradient of the mean loss over the whole batch, as one backward
    of the full batch would (zero the grads first). Needs a loss that is a mean.
    """
    n = x.shape[0]
    check_shape("y", y, (n, *y.shape[1:]), "(N, ...) with x's N")
    if not isinstance(micro_batches, int) or micro_batches < 1 or n % micro_batches:
        raise ValueError(f"micro_batches must be an int >= 1 dividing N={n}, got {micro_batches}")
    total = 0.0
    for xb, yb in zip(x.chunk(micro_batches), y.chunk(micro_batches), strict=True):
        pred = model(xb)  # (N / k, ...)
        if loss_fn is F.mse_loss:  # elementwise: a (N,) y against (N, 1) would broadcast
            check_same_shape("y micro-batch", yb, "model(x micro-batch)", pred)
        # ∇ (1/N) Σ_i ℓ_i = Σ_k (1/k) ∇ (k/N) Σ_{i ∈ slice k} ℓ_i
        loss = loss_fn(pred, yb) / micro_batches  # ()
        loss.backward()  # .grad += ∇ loss
        total += loss.item()
    return total


# --8<-- [end:accumulation]


# --8<-- [start:demo]
def training_loop_demo(cfg: TrainConfig | None = None) -> dict[str, object]:
    """Train, evaluate, show the LR schedule, resume from a checkpoint, accumulate gradients."""
    cfg = cfg or TrainConfig()
    run = make_run(cfg)
    data = run.loader.dataset
    # fresh points from the same distribution; seed + 2 is used by nothing else
    held_out = SineDataset(cfg.n_samples, torch.Generator().manual_seed(cfg.seed + 2))
    lrs = [run.optimizer.param_groups[0]["lr"]]  # lrs[0]: before any step; lrs[e]: after epoch e
    before = evaluate(run.model, held_out.x, held_out.y)
    history = []
    for epoch in range(cfg.epochs):
        history += train_epochs(run, epoch, epoch + 1)
        lrs.append(run.optimizer.param_groups[0]["lr"])
    after = evaluate(run.model, held_out.x, held_out.y)
    print(f"held-out MSE (eval mode) before {before:.4f} -> after {after:.4f} (noise floor 0.01)")
    print(f"lr before the first step: {lrs[0]:.4f}")
    for e in range(1, cfg.epochs + 1, 3):  # every third epoch, 1-based
        loss, lr = history[e - 1], lrs[e]
        print(f"epoch {e:2d}: mean train loss (dropout on) {loss:.4f}, lr after {lr:.4f}")

    # stop after half the epochs, save, rebuild from scratch, load, finish: identical weights
    half = cfg.epochs // 2
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ckpt.pt"
        first = make_run(cfg)
        train_epochs(first, 0, half)
        save_checkpoint(path, first, epoch=half - 1)
        resumed = make_run(cfg)  # a fresh process would start here
        torch.manual_seed(12345)  # whatever the global RNG is now, the checkpoint restores it
        start = load_checkpoint(path, resumed)
        train_epochs(resumed, start, cfg.epochs)
    identical = all(
        torch.equal(a, b)
        for a, b in zip(run.model.parameters(), resumed.model.parameters(), strict=True)
    )
    print(f"resumed at epoch {start} of {cfg.epochs}: weights bit-for-bit equal:", identical)

    # 4 micro-batches of 8 give the gradient of one batch of 32
    run.model.eval()  # no dropout, so both computations see the same function
    x, y = data.x[:32], data.y[:32]  # (32, 1) each
    run.model.zero_grad()
    F.mse_loss(run.model(x), y).backward()
    full = [p.grad.clone() for p in run.model.parameters()]
    run.model.zero_grad()
    accumulate_gradients(run.model, x, y, micro_batches=4)
    gap = max(
        (a - p.grad).abs().max().item() for a, p in zip(full, run.model.parameters(), strict=True)
    )
    print(f"accumulated vs full-batch gradient: max |Δ| = {gap:.1e}")
    return {
        "eval_before": before,
        "eval_after": after,
        "lrs": lrs,
        "resume_identical": identical,
        "accumulation_gap": gap,
    }


# --8<-- [end:demo]

if __name__ == "__main__":
    training_loop_demo()
