"""Claims of docs/pytorch/training.md that tests/pytorch/test_training.py does not check."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snippets.pytorch.training import SineDataset


def test_adamw_matches_the_written_update() -> None:
    gen = torch.Generator().manual_seed(0)
    theta0 = torch.randn(5, dtype=torch.float64, generator=gen)
    grads = [torch.randn(5, dtype=torch.float64, generator=gen) for _ in range(3)]
    lr, (b1, b2), eps, wd = 0.1, (0.9, 0.999), 1e-8, 0.05
    p = nn.Parameter(theta0.clone())
    optimizer = torch.optim.AdamW([p], lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd)
    theta, m, v = theta0.clone(), torch.zeros(5, dtype=torch.float64), torch.zeros(5).double()
    for t, g in enumerate(grads, start=1):
        p.grad = g.clone()
        optimizer.step()
        theta = theta * (1 - lr * wd)  # decoupled decay
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g**2
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - lr * m_hat / (v_hat.sqrt() + eps)
        torch.testing.assert_close(p.detach(), theta)


def test_adamw_defaults() -> None:
    defaults = torch.optim.AdamW([nn.Parameter(torch.zeros(1))]).defaults
    assert defaults["lr"] == 1e-3 and defaults["betas"] == (0.9, 0.999)
    assert defaults["eps"] == 1e-8 and defaults["weight_decay"] == 1e-2


def test_scheduler_before_optimizer_step_warns() -> None:
    p = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    with pytest.warns(UserWarning, match="before `optimizer.step"):
        scheduler.step()


def test_eval_mode_still_builds_a_graph_and_no_grad_does_not() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.Dropout(0.5), nn.Linear(8, 1)).eval()
    x = torch.randn(4, 3)
    assert model(x).requires_grad
    with torch.no_grad():
        assert not model(x).requires_grad


def test_dataloader_length_and_last_batch() -> None:
    data = torch.utils.data.TensorDataset(torch.arange(10.0))
    loader = torch.utils.data.DataLoader(data, batch_size=4)
    assert len(loader) == math.ceil(10 / 4) == 3
    assert [len(b[0]) for b in loader] == [4, 4, 2]
    dropped = torch.utils.data.DataLoader(data, batch_size=4, drop_last=True)
    assert len(dropped) == 2


def test_lambda_lr_multiplies_the_initial_lr() -> None:
    p = nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([p], lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1 / (s + 1))
    seen = []
    for _ in range(3):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert seen == pytest.approx([0.5, 0.25, 0.5 / 3])


def test_adam_is_nearly_invariant_to_the_gradient_scale_and_sgd_is_not() -> None:
    gen = torch.Generator().manual_seed(1)
    grads = [torch.randn(4, dtype=torch.float64, generator=gen) for _ in range(3)]

    def run(opt_cls: type, scale: float) -> torch.Tensor:
        p = nn.Parameter(torch.zeros(4, dtype=torch.float64))
        optimizer = opt_cls([p], lr=0.01)
        for g in grads:
            p.grad = scale * g
            optimizer.step()
        return p.detach()

    torch.testing.assert_close(run(torch.optim.AdamW, 4.0), run(torch.optim.AdamW, 1.0))
    torch.testing.assert_close(run(torch.optim.SGD, 4.0), 4 * run(torch.optim.SGD, 1.0))


class _RandomDraws(torch.utils.data.Dataset):
    """Each item is one draw from torch's and NumPy's global RNGs of the process that loads it."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int) -> torch.Tensor:
        import numpy as np

        legacy = np.random.rand()  # noqa: NPY002 - the global RNG is what DataLoader seeds
        return torch.tensor([torch.rand(()).item(), float(legacy)], dtype=torch.float64)


def test_dataloader_workers_get_different_torch_and_numpy_seeds() -> None:
    loader = torch.utils.data.DataLoader(
        _RandomDraws(), batch_size=1, num_workers=2, generator=torch.Generator().manual_seed(0)
    )
    draws = torch.cat(list(loader))  # (4, 2): items 0, 2 from worker 0 and 1, 3 from worker 1
    # the first draw of each worker differs, for torch and for NumPy
    assert draws[0, 0] != draws[1, 0] and draws[0, 1] != draws[1, 1]
    again = torch.cat(list(loader))
    assert not torch.equal(draws, again)  # a new base seed each epoch, from the generator


def test_adamw_decay_is_scaled_by_the_scheduled_lr() -> None:
    p = nn.Parameter(torch.ones(4, dtype=torch.float64))
    optimizer = torch.optim.AdamW([p])  # defaults: lr 1e-3, weight_decay 1e-2
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0 if s == 0 else 0.5)
    p.grad = torch.zeros_like(p)  # no gradient: only the decay moves the weight
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.full_like(p, 1 - 1e-5))
    scheduler.step()  # the schedule halves the learning rate
    optimizer.step()
    torch.testing.assert_close(p.detach(), torch.full_like(p, (1 - 1e-5) * (1 - 0.5e-5)))


def test_other_modules_read_the_training_flag() -> None:
    torch.manual_seed(0)
    x = torch.full((1000,), -1.0)
    rrelu = nn.RReLU()
    assert rrelu(x).unique().numel() > 1  # train: a random slope per element
    rrelu.eval()
    assert rrelu(x).unique().numel() == 1  # eval: one fixed slope
    lstm = nn.LSTM(4, 8, num_layers=2, dropout=0.5)
    seq = torch.randn(5, 1, 4)
    assert not torch.equal(lstm(seq)[0], lstm(seq)[0])  # dropout between the layers
    lstm.eval()
    assert torch.equal(lstm(seq)[0], lstm(seq)[0])


def test_the_true_function_scores_about_the_noise_variance_on_held_out_points() -> None:
    held_out = SineDataset(256, torch.Generator().manual_seed(2))  # the demo's held-out set
    mse = ((torch.sin(held_out.x) - held_out.y) ** 2).mean().item()
    assert mse == pytest.approx(0.1**2, rel=0.2)
