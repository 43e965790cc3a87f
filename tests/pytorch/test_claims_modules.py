"""Claims of docs/pytorch/modules.md that tests/pytorch/test_modules.py does not check."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from snippets.pytorch.gpt import GPT, GPTConfig


def test_linear_is_x_w_transpose_plus_b_with_uniform_init() -> None:
    torch.manual_seed(0)
    layer = nn.Linear(50, 7)
    assert layer.weight.shape == (7, 50)
    bound = 1 / math.sqrt(50)
    assert layer.weight.abs().max() <= bound and layer.bias.abs().max() <= bound
    x = torch.randn(3, 50)
    torch.testing.assert_close(layer(x), x @ layer.weight.T + layer.bias)


def test_layernorm_matches_its_formula_with_biased_variance() -> None:
    torch.manual_seed(0)
    ln = nn.LayerNorm(6)
    with torch.no_grad():
        ln.weight.uniform_(0.5, 1.5)
        ln.bias.uniform_(-1, 1)
    x = torch.randn(4, 6, dtype=torch.float32) * 3 + 2
    mean = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    manual = (x - mean) / torch.sqrt(var + 1e-5) * ln.weight + ln.bias
    torch.testing.assert_close(ln(x), manual)
    assert ln.eps == 1e-5


def test_module_to_is_in_place_tensor_to_is_not() -> None:
    layer = nn.Linear(2, 2)
    assert layer.to(torch.float64) is layer and layer.weight.dtype == torch.float64
    t = torch.zeros(2)
    assert t.to(torch.float64) is not t and t.dtype == torch.float32


def test_tied_weight_is_listed_twice_in_state_dict_once_in_parameters() -> None:
    model = GPT(GPTConfig(vocab_size=7, block_size=4, n_layer=1, n_head=1, n_embd=4))
    sd = model.state_dict()
    assert "tok_emb.weight" in sd and "lm_head.weight" in sd
    assert sd["tok_emb.weight"].data_ptr() == sd["lm_head.weight"].data_ptr()
    names = [n for n, _ in model.named_parameters()]
    assert "tok_emb.weight" in names and "lm_head.weight" not in names


def test_dropout_scales_kept_units_by_one_over_one_minus_p() -> None:
    torch.manual_seed(0)
    drop = nn.Dropout(0.25)
    out = drop(torch.ones(10_000))
    kept = out[out != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.75))
    assert abs(out.mean().item() - 1.0) < 0.03


def test_assigning_a_submodule_before_super_init_fails() -> None:
    class Bad(nn.Module):
        def __init__(self) -> None:
            self.fc = nn.Linear(2, 2)
            super().__init__()

    try:
        Bad()
    except AttributeError as err:
        assert "before Module.__init__() call" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_a_plain_tensor_attribute_is_not_moved_but_a_buffer_is() -> None:
    class Holder(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.plain = torch.zeros(2)
            self.register_buffer("buf", torch.zeros(2))

    holder = Holder().to(torch.float64)
    assert holder.buf.dtype == torch.float64 and holder.plain.dtype == torch.float32


def test_embedding_gradient_touches_only_looked_up_rows() -> None:
    emb = nn.Embedding(6, 3)
    emb(torch.tensor([1, 4, 4])).sum().backward()
    touched = (emb.weight.grad != 0).any(dim=1)
    assert touched.tolist() == [False, True, False, False, True, False]
    torch.testing.assert_close(emb.weight.grad[4], torch.full((3,), 2.0))


def test_layernorm_is_the_same_in_train_and_eval() -> None:
    torch.manual_seed(0)
    ln, x = nn.LayerNorm(5), torch.randn(3, 5)
    assert torch.equal(ln.train()(x), ln.eval()(x))


def test_strict_false_still_raises_on_a_shape_mismatch() -> None:
    with pytest.raises(RuntimeError, match="size mismatch"):
        nn.Linear(3, 2).load_state_dict({"weight": torch.zeros(4, 3)}, strict=False)


def test_a_new_head_with_the_old_key_names_loads_after_dropping_those_keys() -> None:
    torch.manual_seed(0)
    old = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 10))  # backbone + 10-class head
    new = nn.Sequential(nn.Linear(4, 8), nn.Linear(8, 3))  # same names, 3 classes
    with pytest.raises(RuntimeError, match="size mismatch"):
        new.load_state_dict(old.state_dict(), strict=False)
    backbone = {k: v for k, v in old.state_dict().items() if not k.startswith("1.")}
    report = new.load_state_dict(backbone, strict=False)
    assert report.missing_keys == ["1.weight", "1.bias"] and report.unexpected_keys == []
    assert torch.equal(new[0].weight, old[0].weight)


def test_an_ema_momentum_above_one_overshoots_the_batch_mean() -> None:
    mu, batch_mean = torch.zeros(3), torch.ones(3)
    assert mu.lerp(batch_mean, 5.0).tolist() == [5.0, 5.0, 5.0]  # past the target 1.0
    assert mu.lerp(batch_mean, 1.0).tolist() == [1.0, 1.0, 1.0]  # m = 1: exactly the mean
