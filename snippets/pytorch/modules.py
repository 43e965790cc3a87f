"""nn.Module: parameters vs buffers, containers (and the plain-list pitfall), state_dict."""

from __future__ import annotations

import io

import torch
from torch import nn

from snippets._checks import (
    check_float,
    check_int,
    check_interval,
    check_ndim,
    check_positive,
    check_shape,
)

__all__ = ["BrokenStack", "RunningNorm", "count_params", "module_demo"]


# --8<-- [start:params-buffers]
class RunningNorm(nn.Module):
    """Normalise features with running statistics (a cut-down BatchNorm).

    | Argument    | Shape  | Meaning                    |
    |-------------|--------|----------------------------|
    | x           | (N, D) | input batch                |
    | **returns** | (N, D) | (x − running_mean) · scale |

    ``scale`` is a Parameter (trained by the optimizer); ``running_mean`` is a buffer (state
    that moves with ``.to()`` and is saved, but gets no gradient); ``steps`` is a
    non-persistent buffer (moves with ``.to()``, not saved).
    """

    def __init__(self, dim: int, momentum: float = 0.1) -> None:
        check_int("dim", dim)
        check_positive("momentum", momentum)  # 0 would freeze the statistics at zero
        check_interval("momentum", momentum, 0.0, 1.0)  # above 1 the average overshoots
        super().__init__()
        self.momentum = momentum  # a plain attribute: neither trained nor saved
        self.scale = nn.Parameter(torch.ones(dim))  # (D,)
        self.register_buffer("running_mean", torch.zeros(dim))  # (D,)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_float("x", x)
        check_ndim("x", x, 2, "(N, D)")
        check_shape("x", x, (x.shape[0], self.running_mean.numel()), "(N, D)")  # D = dim
        if self.training:  # statistics are updated in train mode only
            with torch.no_grad():
                # μ ← (1 − m) μ + m · mean(x)
                self.running_mean.lerp_(x.mean(dim=0), self.momentum)  # (D,)
                self.steps += 1
        return (x - self.running_mean) * self.scale  # (N, D)


# --8<-- [end:params-buffers]


# --8<-- [start:containers]
class BrokenStack(nn.Module):
    """The pitfall: layers kept in a plain Python list are invisible to PyTorch.

    ``parameters()``, ``.to()``, ``state_dict()`` and the optimizer never see them.
    """

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.layers = [nn.Linear(dim, dim) for _ in range(depth)]  # BUG: use nn.ModuleList

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)  # (N, D)
        return x


class Stack(nn.Module):
    """The fix: ``nn.ModuleList`` registers every layer (and you still write the loop)."""

    def __init__(self, dim: int, depth: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(dim, dim) for _ in range(depth)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = torch.relu(layer(x))  # (N, D)
        return x


# --8<-- [end:containers]


def count_params(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalars in ``module``'s parameters (shared ones once)."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


# --8<-- [start:demo]
def module_demo() -> dict[str, object]:
    """Parameters vs buffers, ModuleList/Sequential/ModuleDict, and a state_dict round trip."""
    torch.manual_seed(0)
    norm = RunningNorm(3)
    print("parameters:", [n for n, _ in norm.named_parameters()])
    print("buffers:   ", [n for n, _ in norm.named_buffers()])
    print("state_dict:", list(norm.state_dict()))  # steps is missing: persistent=False
    norm(torch.randn(8, 3) + 5.0)  # train mode: running_mean moves toward 5
    norm.eval()
    before = norm.running_mean.clone()  # (3,)
    norm(torch.randn(8, 3))  # eval mode: statistics frozen
    frozen = torch.equal(before, norm.running_mean)
    print(
        "running_mean after one batch:",
        [round(v, 3) for v in before.tolist()],
        "| frozen in eval:",
        frozen,
    )
    as_double = norm.to(torch.float64)  # .to() moves parameters AND buffers (in place)
    print("after .to(float64):", as_double.scale.dtype, as_double.running_mean.dtype)

    # containers: ModuleList (you loop), Sequential (it loops), ModuleDict (by name)
    broken, fixed = BrokenStack(4, 3), Stack(4, 3)
    seq = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    heads = nn.ModuleDict({"policy": nn.Linear(4, 5), "value": nn.Linear(4, 1)})
    counts = {
        "plain list": count_params(broken),
        "ModuleList": count_params(fixed),
        "Sequential": count_params(seq),
        "ModuleDict": count_params(heads),
    }
    print("parameter counts:", counts)  # plain list: 0 -- the optimizer would train nothing
    x = torch.randn(2, 4)  # (N, 4)
    print("seq(x):", tuple(seq(x).shape), "| heads['value'](x):", tuple(heads["value"](x).shape))

    # state_dict: an ordered dict name -> tensor; save/load round trip through bytes
    buffer = io.BytesIO()
    torch.save(seq.state_dict(), buffer)
    buffer.seek(0)
    clone = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))  # fresh random init
    clone.load_state_dict(torch.load(buffer, weights_only=True))
    same = torch.equal(clone(x), seq(x))
    print("state_dict keys:", list(seq.state_dict()), "| reloaded output equal:", same)
    # strict=False reports what did not line up instead of raising
    report = fixed.load_state_dict({"layers.0.weight": torch.zeros(4, 4)}, strict=False)
    print("missing:", len(report.missing_keys), "| unexpected:", report.unexpected_keys)
    return {
        "param_names": [n for n, _ in norm.named_parameters()],
        "buffer_names": [n for n, _ in norm.named_buffers()],
        "state_dict_keys": list(norm.state_dict()),
        "frozen_in_eval": frozen,
        "counts": counts,
        "reload_equal": same,
        "missing_keys": len(report.missing_keys),
    }


# --8<-- [end:demo]

if __name__ == "__main__":
    module_demo()
