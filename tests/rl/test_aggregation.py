"""Claims of the aggregation page: the four modes are the formulas of verl/TRL, and they
weight the tokens of short and long answers differently (the length bias)."""

from __future__ import annotations

import pytest
import torch
from torch.testing import assert_close

from snippets.rl.aggregation import (
    AGGREGATIONS,
    aggregate,
    aggregation_weights,
    mask_out,
    masked_mean,
)


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    loss = torch.randn(3, 6, generator=g, dtype=torch.float64)  # (B, T)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0], [0, 1, 1, 0, 0, 0]])  # (B, T)
    return loss, mask


def test_modes_match_the_reference_formulas() -> None:
    loss, mask = _batch()
    m = mask.double()
    per_seq_sum = (loss * m).sum(-1)  # (B,)
    expected = {
        "token-mean": (loss * m).sum() / m.sum(),
        "seq-mean-token-mean": (per_seq_sum / m.sum(-1)).mean(),
        "seq-mean-token-sum": per_seq_sum.mean(),
        "seq-mean-token-sum-norm": per_seq_sum.sum() / (3 * 6),
    }
    for mode in AGGREGATIONS:
        assert_close(aggregate(loss, mask, mode), expected[mode])
        weights = aggregation_weights(mask, mode, dtype=torch.float64)  # (B, T)
        assert_close(aggregate(loss, mask, mode), (weights * loss).sum())


def test_dr_grpo_constant_normaliser() -> None:
    loss, mask = _batch()
    full = aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=8)
    assert_close(aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=16), full / 2)
    assert_close(full, aggregate(loss, mask, "seq-mean-token-sum") / 8)


def test_length_bias_of_each_mode() -> None:
    # Two answers, 2 and 8 tokens long: how much does one token of each count?
    mask = torch.zeros(2, 8)
    mask[0, :2] = 1
    mask[1, :] = 1
    per_token = {}
    per_sequence = {}
    for mode in AGGREGATIONS:
        w = aggregation_weights(mask, mode, dtype=torch.float64)  # (B, T)
        per_token[mode] = float(w[0, 0] / w[1, 0])  # short-answer token / long-answer token
        per_sequence[mode] = w.sum(dim=1).tolist()  # each answer's share of the loss
    # seq-mean-token-mean: each answer gets 1/2, so a short-answer token weighs 8/2 = 4x more
    assert per_token["seq-mean-token-mean"] == pytest.approx(4.0)
    assert per_sequence["seq-mean-token-mean"] == pytest.approx([0.5, 0.5])
    # token-mean and both token-sum modes: every token weighs the same
    for mode in ("token-mean", "seq-mean-token-sum", "seq-mean-token-sum-norm"):
        assert per_token[mode] == pytest.approx(1.0)
    assert per_sequence["token-mean"] == pytest.approx([0.2, 0.8])
    assert per_sequence["seq-mean-token-sum"] == pytest.approx([1.0, 4.0])
    assert per_sequence["seq-mean-token-sum-norm"] == pytest.approx([2 / 16, 8 / 16])


def test_mean_modes_weights_sum_to_one() -> None:
    _, mask = _batch()
    for mode in ("token-mean", "seq-mean-token-mean"):
        assert_close(
            aggregation_weights(mask, mode, dtype=torch.float64).sum(), torch.tensor(1.0).double()
        )


@pytest.mark.parametrize("mode", AGGREGATIONS)
def test_empty_rows_and_padding_garbage_change_nothing(mode: str) -> None:
    loss, mask = _batch()
    clean = loss.clone().requires_grad_(True)
    value = aggregate(clean, mask, mode, max_len=6)
    value.backward()

    padded_loss = torch.cat([loss, torch.full((1, 6), float("nan"))]).clone()  # (B+1, T)
    padded_loss[:3][mask == 0] = float("inf")
    padded_loss.requires_grad_(True)
    padded_mask = torch.cat([mask, torch.zeros(1, 6, dtype=mask.dtype)])  # (B+1, T)
    padded_value = aggregate(padded_loss, padded_mask, mode, max_len=6)
    padded_value.backward()
    assert_close(padded_value, value)
    assert_close(padded_loss.grad[:3], clean.grad)
    assert (padded_loss.grad[3] == 0).all()


def test_all_empty_gives_zero_with_zero_gradient() -> None:
    loss = torch.randn(2, 4, requires_grad=True)
    for mode in AGGREGATIONS:
        value = aggregate(loss, torch.zeros(2, 4, dtype=torch.bool), mode)
        assert float(value.detach()) == 0.0
        (grad,) = torch.autograd.grad(value, loss)
        assert (grad == 0).all()


def test_mask_out_and_masked_mean() -> None:
    x = torch.tensor([1.0, float("nan"), 3.0])
    mask = torch.tensor([True, False, True])
    assert mask_out(x, mask).tolist() == [1.0, 0.0, 3.0]
    assert float(masked_mean(x, mask)) == 2.0
    assert float(masked_mean(x, torch.zeros(3, dtype=torch.bool))) == 0.0


def test_bad_inputs_raise() -> None:
    loss, mask = _batch()
    with pytest.raises(ValueError, match="mode"):
        aggregate(loss, mask, "sum")
    with pytest.raises(ValueError, match=r"loss.*\(B, T\)"):
        aggregate(loss[0], mask[0])
    with pytest.raises(ValueError, match="loss"):
        aggregate(loss.long(), mask)
    with pytest.raises(ValueError, match=r"mask.*\(B, T\)"):
        aggregate(loss, mask[:, :-1])
    with pytest.raises(ValueError, match=r"mask.*0 and 1"):
        aggregate(loss, mask * 0.5)
    with pytest.raises(ValueError, match="max_len"):
        aggregate(loss, mask, "seq-mean-token-sum-norm", max_len=0)
