"""Reading a torch call: its arguments by position or keyword, and the
function objects through which a model can reach an op."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["arg", "functions"]


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
