"""Reading a torch call: its arguments by position or keyword, and the
function objects through which a model can reach an op."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from torch import Tensor

__all__ = ["arg", "functions", "scalar_value", "reduced_dims"]


def arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    """Argument ``i`` of a call, given by position or as keyword ``name``."""
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


def functions(*pairs: tuple[Any, str]) -> tuple[Callable, ...]:
    """The function objects ``namespace.<name>`` for every ``(namespace,
    "name1 name2 ...")`` pair that this torch version has."""
    out = []
    for ns, names in pairs:
        for n in names.split():
            f = getattr(ns, n, None)
            if f is not None:
                out.append(f)
    return tuple(out)


def scalar_value(v: Any) -> float | None:
    """A call's scalar argument as a float (a Python number or a 0-d constant tensor), else None."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, Tensor) and v.numel() == 1 and not v.requires_grad and v.dim() == 0:
        return float(v)
    return None


def reduced_dims(dim: Any, ndim: int) -> tuple[int, ...] | None:
    """A reduction's ``dim`` argument as sorted non-negative dims (None if not given)."""
    if dim is None:
        return None
    d = (dim,) if isinstance(dim, int) else tuple(dim)
    return tuple(sorted(x % max(ndim, 1) for x in d))
