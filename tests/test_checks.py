"""snippets/_checks.py: every check names the argument and what it expected."""

from __future__ import annotations

import pytest
import torch

from snippets import _checks as c


def test_tensor_checks_name_the_argument_and_shape() -> None:
    x = torch.zeros(2, 3)
    c.check_float("x", x)
    c.check_shape("x", x, (2, 3), "(B, T)")
    with pytest.raises(ValueError, match=r"ids must be a floating-point tensor"):
        c.check_float("ids", torch.zeros(2, dtype=torch.long))
    with pytest.raises(
        ValueError, match=r"x must have shape \(B, T\) = \(2, 4\), got shape \(2, 3\)"
    ):
        c.check_shape("x", x, (2, 4), "(B, T)")
    with pytest.raises(ValueError, match=r"y must have the same shape as x \(2, 3\)"):
        c.check_same_shape("y", torch.zeros(3), "x", x)
    with pytest.raises(ValueError, match=r"r must be finite, found 1 NaN/inf"):
        c.check_finite("r", torch.tensor([1.0, float("nan")]))


def test_masks_accept_bool_int_float_and_reject_other_values() -> None:
    for mask in (torch.tensor([[1, 0]]), torch.tensor([[1.0, 0.0]]), torch.tensor([[True, False]])):
        assert c.check_mask("mask", mask, (1, 2), "(B, T)").tolist() == [[True, False]]
    with pytest.raises(ValueError, match=r"mask must contain only 0 and 1"):
        c.check_mask("mask", torch.tensor([[1, 2]]), (1, 2), "(B, T)")


def test_scalar_checks() -> None:
    assert c.check_positive("beta", 0.1) == 0.1
    assert c.check_interval("gamma", 1, 0.0, 1.0) == 1.0
    assert c.check_choice("mode", "a", {"a", "b"}) == "a"
    with pytest.raises(ValueError, match=r"beta must be > 0, got 0.0"):
        c.check_positive("beta", 0.0)
    with pytest.raises(ValueError, match=r"beta must be a real number, got bool"):
        c.check_positive("beta", True)
    with pytest.raises(ValueError, match=r"dual_clip must be > 1, got 1.0"):
        c.check_greater("dual_clip", 1.0, 1)
    with pytest.raises(ValueError, match=r"gamma must be in \[0.0, 1.0\], got 1.5"):
        c.check_interval("gamma", 1.5, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"mode must be one of \['a', 'b'\], got 'c'"):
        c.check_choice("mode", "c", {"a", "b"})
    with pytest.raises(ValueError, match=r"lr must be finite"):
        c.check_real("lr", float("inf"))


def test_int_check_rejects_bools_floats_and_small_values() -> None:
    from snippets._checks import check_int

    assert check_int("n", 3) == 3 and check_int("n", 0, low=0) == 0
    with pytest.raises(ValueError, match=r"n must be a positive int, got 0"):
        check_int("n", 0)
    with pytest.raises(ValueError, match=r"n must be a positive int, got True"):
        check_int("n", True)
    with pytest.raises(ValueError, match=r"n must be a positive int, got 2.0"):
        check_int("n", 2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"seed must be an int >= 0, got -1"):
        check_int("seed", -1, low=0)
