"""Claims of docs/pytorch/tensors.md that tests/pytorch/test_tensors.py does not check."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snippets.pytorch.tensors import shares_storage


def test_mse_loss_warns_when_shapes_would_broadcast() -> None:
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(torch.zeros(4, 1), torch.zeros(4))


def test_expand_is_a_zero_stride_view_and_repeat_copies() -> None:
    col = torch.arange(3.0).view(3, 1)
    wide = col.expand(3, 4)
    assert wide.stride() == (1, 0) and shares_storage(wide, col)
    tiled = col.repeat(1, 4)
    assert torch.equal(tiled, wide) and not shares_storage(tiled, col)


def test_gather_picks_one_entry_per_row() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5, 7, generator=gen)
    idx = torch.randint(0, 7, (5, 1), generator=gen)
    loop = torch.stack([x[i, idx[i, 0]] for i in range(5)]).unsqueeze(1)
    assert torch.equal(x.gather(1, idx), loop)
    assert torch.equal(x.gather(1, idx).squeeze(1), x[torch.arange(5), idx[:, 0]])


def test_in_place_write_through_a_slice_changes_the_base() -> None:
    x = torch.zeros(2, 3)
    x[:, 1].add_(5.0)
    assert x.sum().item() == 10.0


def test_sequence_advantage_times_token_logprobs_needs_a_column() -> None:
    adv, logp = torch.randn(3), torch.randn(3, 5)
    with pytest.raises(RuntimeError):
        adv * logp  # (3,) against (3, 5): align-right pairs 3 with 5
    square = torch.randn(4, 4)
    col = torch.arange(4.0)
    assert not torch.equal(col * square, col[:, None] * square)  # B == T: wrong axis, no error


def test_buggy_broadcast_mse_is_minimised_by_the_mean_target() -> None:
    target = torch.tensor([1.0, 2.0, 6.0], dtype=torch.float64)
    pred = torch.full((3, 1), target.mean().item(), dtype=torch.float64, requires_grad=True)
    (((pred - target) ** 2).mean()).backward()
    torch.testing.assert_close(pred.grad, torch.zeros_like(pred))


def test_mask_assignment_writes_but_a_masked_copy_does_not() -> None:
    x = torch.arange(4.0)
    x[x > 1] = 0.0
    assert x.tolist() == [0.0, 1.0, 0.0, 0.0]
    y = torch.arange(4.0)
    selected = y[y > 1]
    selected[:] = 0.0
    assert y.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_float_ids_and_dtype_mismatches_raise() -> None:
    with pytest.raises(RuntimeError):
        torch.nn.Embedding(5, 2)(torch.tensor([1.0, 2.0]))
    with pytest.raises(RuntimeError):
        F.cross_entropy(torch.randn(2, 3), torch.tensor([0.0, 1.0]))  # (B,) float ids
    # a float target of the input's shape is read as class probabilities, not ids
    soft = F.cross_entropy(torch.zeros(2, 3), torch.full((2, 3), 1 / 3))
    torch.testing.assert_close(soft, torch.log(torch.tensor(3.0)))
    with pytest.raises(RuntimeError):
        torch.nn.Linear(3, 2)(torch.randn(4, 3, dtype=torch.float64))


def test_to_returns_the_same_tensor_when_nothing_changes() -> None:
    a = torch.zeros(2)
    assert a.to("cpu") is a and a.to(torch.float32) is a
    assert a.to(torch.float64) is not a


def test_boolean_mask_flattens_only_the_dimensions_it_covers() -> None:
    x = torch.randn(4, 5)
    full = x > 0  # (4, 5): x's full shape
    assert x[full].shape == (int(full.sum()),)
    rows = torch.tensor([True, False, True, True])  # (B,) on (B, T)
    assert x[rows].shape == (3, 5)
    assert torch.equal(x[rows], x[[0, 2, 3]])  # whole rows, in order


def test_sequence_advantage_times_a_single_token_column_broadcasts_to_b_by_b() -> None:
    adv, logp = torch.randn(3), torch.randn(3, 1)  # T = 1
    assert (adv * logp).shape == (3, 3)  # no error: every advantage times every row
