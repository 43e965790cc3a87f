"""The loop's invariants: accumulation = one big batch, resume = never stopped, the schedule."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from snippets.pytorch.training import (
    SineDataset,
    TrainConfig,
    accumulate_gradients,
    evaluate,
    load_checkpoint,
    make_run,
    save_checkpoint,
    train_epochs,
    training_loop_demo,
    warmup_cosine,
)

SMALL = TrainConfig(n_samples=96, batch_size=16, epochs=4, warmup_steps=3)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 2)).double()


def _grads(model: nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("k", [1, 2, 4, 8])
def test_accumulated_micro_batches_equal_one_big_batch(k: int) -> None:
    model = _model()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(32, 3, dtype=torch.float64, generator=gen)
    y = torch.randn(32, 2, dtype=torch.float64, generator=gen)
    F.mse_loss(model(x), y).backward()
    full = _grads(model)
    model.zero_grad()
    loss = accumulate_gradients(model, x, y, micro_batches=k)
    for a, b in zip(full, _grads(model), strict=True):
        torch.testing.assert_close(a, b)
    assert loss == pytest.approx(F.mse_loss(model(x), y).item())


def test_without_the_one_over_k_scaling_gradients_are_k_times_too_big() -> None:
    model = _model()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 2, dtype=torch.float64)
    F.mse_loss(model(x), y).backward()
    full = _grads(model)
    model.zero_grad()
    accumulate_gradients(model, x, y, 4, loss_fn=lambda p, t: 4 * F.mse_loss(p, t))
    assert all(torch.allclose(4 * a, b) for a, b in zip(full, _grads(model), strict=True))


def _params(run) -> list[torch.Tensor]:
    return [p.detach().clone() for p in run.model.parameters()]


def _resume(path: Path, cfg: TrainConfig, restore_rng: bool) -> list[torch.Tensor]:
    resumed = make_run(cfg)  # fresh objects, as in a new process
    torch.manual_seed(999)  # a different global RNG state than at save time
    if restore_rng:
        start = load_checkpoint(path, resumed)
    else:  # everything except the two RNG states
        state = torch.load(path, weights_only=True)
        resumed.model.load_state_dict(state["model"])
        resumed.optimizer.load_state_dict(state["optimizer"])
        resumed.scheduler.load_state_dict(state["scheduler"])
        start = state["epoch"] + 1
    train_epochs(resumed, start, cfg.epochs)
    return _params(resumed)


def test_resumed_run_is_bit_for_bit_the_uninterrupted_run(tmp_path: Path) -> None:
    uninterrupted = make_run(SMALL)
    train_epochs(uninterrupted, 0, SMALL.epochs)
    first = make_run(SMALL)
    train_epochs(first, 0, 2)
    save_checkpoint(tmp_path / "ckpt.pt", first, epoch=1)
    resumed = _resume(tmp_path / "ckpt.pt", SMALL, restore_rng=True)
    assert all(torch.equal(a, b) for a, b in zip(_params(uninterrupted), resumed, strict=True))


def test_resuming_without_rng_state_diverges(tmp_path: Path) -> None:
    # the control: dropout masks and shuffles depend on RNG state, so it must be saved
    uninterrupted = make_run(SMALL)
    train_epochs(uninterrupted, 0, SMALL.epochs)
    first = make_run(SMALL)
    train_epochs(first, 0, 2)
    save_checkpoint(tmp_path / "ckpt.pt", first, epoch=1)
    resumed = _resume(tmp_path / "ckpt.pt", SMALL, restore_rng=False)
    assert not all(torch.equal(a, b) for a, b in zip(_params(uninterrupted), resumed, strict=True))


def test_warmup_cosine_shape() -> None:
    W, S, r = 4, 21, 0.1
    c = [warmup_cosine(s, W, S, r) for s in range(S)]
    assert c[:W] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert c[W] == pytest.approx(1.0) and c[-1] == pytest.approx(r)
    assert all(a >= b for a, b in zip(c[W:], c[W + 1 :], strict=False))
    # halfway through the decay (s = W + (S − 1 − W)/2 = 12) cos = 0: r + (1 − r)/2
    assert c[12] == pytest.approx(r + (1 - r) / 2)
    assert warmup_cosine(100, W, S, r) == pytest.approx(r)  # stays at the floor after S


def test_scheduler_follows_warmup_cosine() -> None:
    run = make_run(SMALL)
    total = SMALL.epochs * len(run.loader)
    train_epochs(run, 0, 1)
    steps = len(run.loader)
    expected = SMALL.lr * warmup_cosine(steps, SMALL.warmup_steps, total, SMALL.min_lr_ratio)
    assert run.optimizer.param_groups[0]["lr"] == pytest.approx(expected)


def test_eval_mode_is_deterministic_and_restored() -> None:
    run = make_run(SMALL)
    x = run.loader.dataset.x
    run.model.train()
    assert not torch.equal(run.model(x), run.model(x))  # dropout
    a = evaluate(run.model, x, run.loader.dataset.y)
    assert a == evaluate(run.model, x, run.loader.dataset.y)
    assert run.model.training  # evaluate put train mode back


def test_training_loop_demo_learns_and_resumes() -> None:
    out = training_loop_demo(TrainConfig(epochs=10))
    assert out["eval_after"] < 0.1 * out["eval_before"]
    assert out["resume_identical"] is True
    assert out["accumulation_gap"] < 1e-6
    assert out["lrs"][-1] == pytest.approx(0.1 * 1e-2)
    assert out["lrs"][0] == pytest.approx(1e-2 / 10)  # before any step: c(0) = 1/W of the peak


def test_bad_arguments_name_themselves() -> None:
    model = _model()
    x, y = torch.zeros(6, 3, dtype=torch.float64), torch.zeros(6, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match="micro_batches"):
        accumulate_gradients(model, x, y, micro_batches=4)
    with pytest.raises(ValueError, match="micro_batches"):
        accumulate_gradients(model, x, y, micro_batches=0)
    with pytest.raises(ValueError, match="n must"):
        SineDataset(0, torch.Generator())
    with pytest.raises(ValueError, match="warmup_steps"):
        warmup_cosine(0, warmup_steps=10, total_steps=10)


def test_warmup_cosine_rejects_arguments_it_cannot_use() -> None:
    with pytest.raises(ValueError, match="step must be an int >= 0"):
        warmup_cosine(-5, 0, 10)
    with pytest.raises(ValueError, match="total_steps must be a positive int"):
        warmup_cosine(0, 0, 0)
    with pytest.raises(ValueError, match="warmup_steps must be an int >= 0"):
        warmup_cosine(0, -1, 10)
    with pytest.raises(ValueError, match=r"min_ratio must be in \[0.0, 1.0\]"):
        warmup_cosine(9, 0, 10, min_ratio=2.0)
    # the last step, S − 1, is at the floor even when it is the only step after the warm-up
    assert warmup_cosine(0, 0, 1) == pytest.approx(0.1)
    assert [warmup_cosine(s, 2, 3) for s in range(3)] == pytest.approx([0.5, 1.0, 0.1])


def test_evaluate_refuses_a_target_that_would_broadcast() -> None:
    model = _model()  # 3 -> 2
    x = torch.zeros(8, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"y must have the same shape as model\(x\) \(8, 2\)"):
        evaluate(model, x, torch.zeros(8, dtype=torch.float64))
    model.train()
    with pytest.raises(ValueError):
        evaluate(model, x, torch.zeros(8, 1, dtype=torch.float64))
    assert model.training  # the mode is restored even when the check fails


def test_accumulate_gradients_refuses_mismatched_targets() -> None:
    model = _model()  # 3 -> 2
    x = torch.zeros(8, 3, dtype=torch.float64)
    for n in (6, 12):  # y shorter or longer than x
        with pytest.raises(ValueError, match=r"y must have shape \(N, \.\.\.\) with x's N"):
            accumulate_gradients(model, x, torch.zeros(n, 2, dtype=torch.float64), 4)
    with pytest.raises(ValueError, match=r"y micro-batch must have the same shape"):
        accumulate_gradients(model, x, torch.zeros(8, dtype=torch.float64), 4)
    # a custom loss may compare different shapes (class ids against logits): not refused
    ids = torch.tensor([0, 1] * 4)
    assert accumulate_gradients(model, x, ids, 4, loss_fn=F.cross_entropy) > 0
