"""Views share storage, copies do not; the broadcasting bug is detected by shape and value."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from snippets.pytorch.tensors import (
    mse_broadcast_bug,
    mse_checked,
    shares_storage,
    tensor_basics,
    tensor_operations,
)


def test_views_share_storage_and_copies_do_not() -> None:
    x = torch.arange(12.0).view(3, 4)
    views = [x.view(4, 3), x[1], x[:, 1:3], x.t(), x.permute(1, 0), x.unsqueeze(0), x.flatten()]
    copies = [x.clone(), x[[0, 2]], x[x > 3], x.t().contiguous(), x.t().reshape(12), x + 0]
    for v in views:
        assert shares_storage(v, x)
    for c in copies:
        assert not shares_storage(c, x)
    # and sharing is observable: a write through a view is seen by the base, not by a copy
    v, c = x.view(12), x.clone()
    v[5] = -7.0
    assert x[1, 1].item() == -7.0 and c[1, 1].item() == 5.0


def test_reshape_views_when_it_can() -> None:
    x = torch.arange(6.0).view(2, 3)
    assert shares_storage(x.reshape(3, 2), x)  # contiguous: reshape is a view
    assert not shares_storage(x.t().reshape(6), x)  # non-contiguous: reshape copies
    with pytest.raises(RuntimeError):
        x.t().view(6)


def test_tensor_operations_reports_the_expected_facts() -> None:
    out = tensor_operations()
    assert out["view_shares"] and out["basic_index_shares"]
    assert not out["advanced_index_shares"] and not out["clone_shares"]
    assert out["transpose_contiguous"] is False
    assert "view size is not compatible" in out["view_error"]
    assert out["bug_shape"] == (5, 5)
    assert out["buggy_mse"] != pytest.approx(out["right_mse"])


def test_broadcasting_bug_gives_the_wrong_shape_and_value() -> None:
    gen = torch.Generator().manual_seed(0)
    pred, target = torch.randn(6, 1, generator=gen), torch.randn(6, generator=gen)
    assert (pred - target).shape == (6, 6)  # the silent (N, N)
    right = F.mse_loss(pred.squeeze(-1), target)
    # the buggy loss is the mean over all N² pairs: check it against that closed form
    pairs = ((pred.squeeze(-1)[:, None] - target[None, :]) ** 2).mean()
    torch.testing.assert_close(mse_broadcast_bug(pred, target), pairs)
    assert not torch.allclose(mse_broadcast_bug(pred, target), right)
    torch.testing.assert_close(mse_checked(pred.squeeze(-1), target), right)


def test_mse_checked_refuses_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="pred"):
        mse_checked(torch.zeros(4, 1), torch.zeros(4))
    with pytest.raises(ValueError, match="pred"):
        mse_checked(torch.zeros(4, dtype=torch.long), torch.zeros(4))


def test_tensor_basics_dtype_rules() -> None:
    out = tensor_basics()
    assert out["int_dtype"] == torch.int64
    assert out["promoted_dtype"] == torch.float32 and out["true_div_dtype"] == torch.float32
    assert out["bf16_eps"] == 2.0**-7  # 7 explicit mantissa bits
    assert out["bf16_third"] == pytest.approx(1 / 3, abs=2.0**-9) and out["bf16_third"] != 1 / 3
    assert out["from_numpy_shared"] and out["tensor_copied"]
