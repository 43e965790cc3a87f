"""Tensors: creation, dtypes, devices, views vs copies, reshaping, indexing, broadcasting.

Every demo is seeded, prints what the reader should see, and returns the key numbers.
"""

from __future__ import annotations

import numpy as np
import torch

from snippets._checks import check_float, check_same_shape

__all__ = [
    "mse_broadcast_bug",
    "mse_checked",
    "shares_storage",
    "tensor_basics",
    "tensor_operations",
]


# --8<-- [start:basics]
def tensor_basics() -> dict[str, object]:
    """Creation, dtype rules, the device idiom and the NumPy bridge."""
    torch.manual_seed(0)
    a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # (2, 3) float32
    zeros = torch.zeros(2, 3)  # (2, 3)
    ones = torch.ones_like(a)  # (2, 3), same dtype and device as a
    steps = torch.arange(0, 10, 3)  # (4,) int64: 0, 3, 6, 9
    grid = torch.linspace(0.0, 1.0, 5)  # (5,) both ends included
    noise = torch.randn(2, 3)  # (2, 3) ~ N(0, 1), reproducible after manual_seed
    print("a", tuple(a.shape), a.dtype, "| zeros", zeros.sum().item(), "| ones", ones.sum().item())
    print("arange", steps.tolist(), steps.dtype, "| linspace", grid.tolist())
    print("randn[0]", [round(v, 4) for v in noise[0].tolist()])

    # dtype rules: Python ints -> int64, Python floats -> float32 (the default dtype)
    ints = torch.tensor([1, 2, 3])  # (3,) int64
    promoted = ints + 0.5  # (3,) float32: int + float promotes
    true_div = ints / 2  # (3,) float32: `/` is true division even on ints
    floor_div = ints // 2  # (3,) int64
    print(
        "int64 + 0.5 ->",
        promoted.dtype,
        "| int / 2 ->",
        true_div.dtype,
        "| int // 2 ->",
        floor_div.dtype,
    )

    # precision of the low-bit float types: eps = gap between 1 and the next float
    eps = {str(dt): torch.finfo(dt).eps for dt in (torch.float32, torch.bfloat16, torch.float16)}
    third = torch.tensor(1 / 3, dtype=torch.bfloat16).item()
    print("eps", eps, "| 1/3 in bf16 =", third)

    # device idiom: write code once, pick the device at run time
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    on_device = a.to(device)  # (2, 3); a no-op (same tensor) if already there
    print("device", on_device.device)

    # NumPy bridge: from_numpy and .numpy() share memory on CPU; torch.tensor copies
    arr = np.arange(3.0)
    shared = torch.from_numpy(arr)  # (3,) float64, same buffer as arr
    copied = torch.tensor(arr)  # (3,) float64, own buffer
    arr[0] = 100.0
    print(
        "from_numpy sees the edit:", shared[0].item(), "| torch.tensor does not:", copied[0].item()
    )
    return {
        "int_dtype": ints.dtype,
        "promoted_dtype": promoted.dtype,
        "true_div_dtype": true_div.dtype,
        "bf16_eps": eps["torch.bfloat16"],
        "bf16_third": third,
        "from_numpy_shared": shared[0].item() == 100.0,
        "tensor_copied": copied[0].item() == 0.0,
    }


# --8<-- [end:basics]


# --8<-- [start:shares-storage]
def shares_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    """True if ``a`` and ``b`` read the same memory (a view and its base do; a copy does not)."""
    return a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr()


# --8<-- [end:shares-storage]


# --8<-- [start:broadcast-bug]
def mse_broadcast_bug(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The silent bug: ``pred (N, 1) − target (N,)`` broadcasts to ``(N, N)``, not ``(N,)``.

    The result is still a scalar, so nothing crashes; it is just the wrong number.
    """
    diff = pred - target  # (N, 1) − (N,) -> (N, 1) − (1, N) -> (N, N)  ← the bug
    return (diff**2).mean()  # ()


def mse_checked(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error that refuses mismatched shapes instead of broadcasting them.

    | Argument    | Shape | Meaning     |
    |-------------|-------|-------------|
    | pred        | (N,)  | predictions |
    | target      | (N,)  | true values |
    | **returns** | ()    | the MSE     |
    """
    check_float("pred", pred)
    check_same_shape("pred", pred, "target", target)
    # MSE = (1/N) Σ (ŷ − y)²
    return ((pred - target) ** 2).mean()  # ()


# --8<-- [end:broadcast-bug]


# --8<-- [start:operations]
def tensor_operations() -> dict[str, object]:
    """Views vs copies, reshape/permute/contiguous, indexing, broadcasting and its silent bug."""
    torch.manual_seed(0)
    x = torch.arange(12.0).view(3, 4)  # (3, 4): a view of the arange's storage

    # views share storage: writing through one is visible through the other
    v = x.view(4, 3)  # (4, 3) view
    row = x[1]  # (4,) basic indexing (ints, slices) -> view
    picked = x[[0, 2]]  # (2, 4) advanced indexing (lists, tensors, masks) -> copy
    cloned = x.clone()  # (3, 4) copy
    v[0, 0] = -1.0
    print("x[0,0] after writing v[0,0]:", x[0, 0].item())
    print(
        "shares storage with x: view", shares_storage(v, x), "| x[1]", shares_storage(row, x),
        "| x[[0,2]]", shares_storage(picked, x), "| clone", shares_storage(cloned, x),
    )  # fmt: skip

    # transpose/permute change strides, not memory: the result is not contiguous
    t = x.t()  # (4, 3) view, strides (1, 4)
    try:
        t.view(12)
        view_error = ""
    except RuntimeError as err:
        view_error = str(err).split(".")[0]
    flat = t.reshape(12)  # (12,) reshape copies when a view is impossible
    flat_c = t.contiguous().view(12)  # (12,) same values, explicit copy first
    print("t.is_contiguous():", t.is_contiguous(), "| t.view(12) ->", view_error)
    print(
        "t.reshape(12) copies:", not shares_storage(flat, x), "| equal:", torch.equal(flat, flat_c)
    )

    # (B, T, C) -> (B, C, T): permute names the new order of the old dims
    btc = torch.randn(2, 5, 3)  # (B, T, C)
    bct = btc.permute(0, 2, 1)  # (B, C, T)
    print("permute", tuple(btc.shape), "->", tuple(bct.shape), "strides", bct.stride())

    # indexing: boolean masks, gather (the RL log-prob idiom), keepdim reductions
    positive = btc[btc > 0]  # (n_pos,) 1-D: a mask flattens
    idx = torch.tensor([[2], [0]])  # (2, 1)
    gathered = torch.gather(x[:2], dim=1, index=idx)  # (2, 1): out[i, 0] = x[i, idx[i, 0]]
    row_max = x.amax(dim=1, keepdim=True)  # (3, 1) keepdim: broadcasts back against x
    centred = x - row_max  # (3, 4) − (3, 1) -> (3, 4)
    print(
        "mask ->",
        tuple(positive.shape),
        "| gather",
        gathered.flatten().tolist(),
        "| centred",
        tuple(centred.shape),
    )

    # broadcasting: align shapes from the right; a dim of 1 stretches
    col = torch.arange(3.0).view(3, 1)  # (3, 1)
    table = col + torch.arange(4.0)  # (3, 1) + (4,) -> (3, 4)
    print("(3,1) + (4,) ->", tuple(table.shape))

    # the silent bug: (N, 1) predictions against (N,) targets
    pred = torch.randn(5, 1)  # (N, 1): e.g. the output of nn.Linear(d, 1)
    target = torch.randn(5)  # (N,)
    bug_shape = tuple((pred - target).shape)  # (5, 5), not (5,)
    wrong = mse_broadcast_bug(pred, target).item()
    right = mse_checked(pred.squeeze(-1), target).item()  # squeeze(-1): (N, 1) -> (N,)
    print(f"pred - target shape {bug_shape}: buggy MSE {wrong:.4f} vs right MSE {right:.4f}")
    return {
        "view_shares": shares_storage(v, x),
        "basic_index_shares": shares_storage(row, x),
        "advanced_index_shares": shares_storage(picked, x),
        "clone_shares": shares_storage(cloned, x),
        "transpose_contiguous": t.is_contiguous(),
        "view_error": view_error,
        "bug_shape": bug_shape,
        "buggy_mse": wrong,
        "right_mse": right,
    }


# --8<-- [end:operations]

if __name__ == "__main__":
    tensor_basics()
    tensor_operations()
