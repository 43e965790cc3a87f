"""Claims of docs/pytorch/autograd.md that tests/pytorch/test_autograd.py does not check."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import pytest
import torch


@contextlib.contextmanager
def _no_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_backward_of_a_vector_is_a_vector_jacobian_product() -> None:
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(3, 4, dtype=torch.float64, generator=gen)
    x = torch.randn(4, dtype=torch.float64, generator=gen, requires_grad=True)
    v = torch.randn(3, dtype=torch.float64, generator=gen)

    def f(t: torch.Tensor) -> torch.Tensor:
        return torch.tanh(a @ t)  # (3,)

    f(x).backward(v)
    jacobian = torch.autograd.functional.jacobian(f, x.detach())  # (3, 4)
    torch.testing.assert_close(x.grad, jacobian.T @ v)


def test_second_backward_needs_retain_graph_and_then_accumulates() -> None:
    x = torch.tensor(2.0, requires_grad=True)
    y = torch.sin(x) * x
    y.backward()
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()
    x.grad = None
    y = torch.sin(x) * x
    y.backward(retain_graph=True)
    first = x.grad.clone()
    y.backward()
    torch.testing.assert_close(x.grad, 2 * first)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()  # the last call (without retain_graph) freed the graph


def test_three_backwards_need_retain_graph_on_all_but_the_last() -> None:
    x = torch.tensor(0.5, requires_grad=True)
    y = torch.exp(x) * x
    y.backward(retain_graph=True)
    y.backward(retain_graph=True)
    y.backward()
    torch.testing.assert_close(x.grad, 3 * torch.exp(x.detach()) * 1.5)  # 3 · e^x (x + 1)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_requires_grad_false_on_a_leaf_is_reversible() -> None:
    w = torch.ones(2, requires_grad=True)
    w.requires_grad_(False)
    out = (w * 3).sum()
    assert out.grad_fn is None and w.grad is None
    w.requires_grad_(True)
    (w * 3).sum().backward()
    assert torch.equal(w.grad, torch.full((2,), 3.0))


def test_an_intermediate_keeps_its_grad_only_with_retain_grad() -> None:
    for keep in (False, True):
        w = torch.tensor([1.0, -2.0], requires_grad=True)
        h = w * 2
        if keep:
            h.retain_grad()
        (h**2).sum().backward()
        assert torch.equal(w.grad, 8 * w.detach())
        with pytest.warns(UserWarning, match="not a leaf") if not keep else _no_warning():
            h_grad = h.grad
        assert (h_grad is not None) == keep
        if keep:
            assert torch.equal(h_grad, 4 * w.detach())


def test_a_tensor_used_twice_gets_the_sum_of_both_gradients() -> None:
    x = torch.tensor(3.0, requires_grad=True)
    (x * x).backward()  # two uses of x: 3 + 3
    assert x.grad.item() == 6.0


def test_in_place_on_a_saved_tensor_raises_also_through_detach() -> None:
    x = torch.tensor([0.0, 1.0], requires_grad=True)
    s = torch.sigmoid(x)
    s.mul_(2)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        s.sum().backward()
    s = torch.sigmoid(x)
    s.detach().zero_()  # the detached tensor shares storage: s itself is now zero
    assert torch.equal(s, torch.zeros(2))
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        s.sum().backward()


def test_create_graph_gives_second_derivatives() -> None:
    x = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    (dy,) = torch.autograd.grad(x**3, x, create_graph=True)  # 3x²
    (d2y,) = torch.autograd.grad(dy, x)  # 6x
    assert dy.item() == pytest.approx(3 * 1.5**2) and d2y.item() == pytest.approx(9.0)


def test_no_grad_and_inference_mode_record_nothing() -> None:
    w = torch.ones(2, requires_grad=True)
    with torch.no_grad():
        a = w * 2
    with torch.inference_mode():
        b = w * 2
    assert a.grad_fn is None and not a.requires_grad and not a.is_inference()
    assert b.grad_fn is None and b.is_inference()
    (a * w).sum().backward()  # a no_grad result may re-enter a graph as a constant
    assert torch.equal(w.grad, a)


def test_central_differences_in_float32_degrade_as_eps_shrinks() -> None:
    def central(x: torch.Tensor, eps: float) -> float:
        return ((torch.exp(x + eps) - torch.exp(x - eps)) / (2 * eps)).item()

    x32, x64 = torch.tensor(1.0), torch.tensor(1.0, dtype=torch.float64)
    e = torch.exp(x64).item()
    assert abs(central(x32, 1e-6) - e) > 1e-2  # rounding error / ε dominates
    assert abs(central(x64, 1e-6) - e) < 1e-8


def test_inference_tensor_fails_only_where_backward_must_save_it() -> None:
    w = torch.ones(2, requires_grad=True)
    with torch.inference_mode():
        t = torch.full((2,), 3.0)
    with pytest.raises(RuntimeError, match="Inference tensors cannot be saved for backward"):
        (w * t).sum()  # mul saves t to compute dL/dw
    (w + t).sum().backward()  # add saves nothing: allowed
    assert torch.equal(w.grad, torch.ones(2))
    w.grad = None
    (w * t.clone()).sum().backward()  # a clone made outside inference_mode is a normal tensor
    assert torch.equal(w.grad, t)
