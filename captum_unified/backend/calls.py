r"""Call normalisation: one form for the many ways a model calls an op.

``torch.tanh(input=z)`` and ``torch.tanh(z)``, ``F.relu(h, inplace=True)``,
``h.relu_()`` and ``torch.relu(h)`` reach the same op-table entry; the
dispatcher sees them in one form (the input first, positional; the in-place
flag separate) so that the rule treats them alike. Also here: which tensor a
call writes into (for the reference tape's copy on write), and the body of a
Python-level torch function run op by op.
"""

from __future__ import annotations

import inspect
import types
import weakref
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from captum_unified.ops import OpEntry

__all__ = ["split_inplace", "write_target", "required", "unwrapped", "python_torch_function"]

#: Python's in-place operators and item assignment: they write into their first argument.
INPLACE_DUNDERS = frozenset(
    "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __imatmul__ __iand__ __ior__ "
    "__ixor__ __ilshift__ __irshift__ __setitem__".split()
)

_UNWRAPPED: weakref.WeakKeyDictionary[Callable, Callable] = weakref.WeakKeyDictionary()


@lru_cache(maxsize=4096)
def _signature(fn: Callable) -> inspect.Signature | None:
    """``inspect.signature(fn)``, cached (``None`` where there is none)."""
    try:
        return inspect.signature(fn)
    except (TypeError, ValueError):
        return None


def split_inplace(entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict, bool]:
    """Normalise a call: ``input=`` / ``self=`` keyword to the first position,
    an ``inplace`` flag off (returned separately, or'ed with ``entry.inplace``)."""
    if not args and "input" in kwargs:
        kwargs = dict(kwargs)
        args = (kwargs.pop("input"),)
    elif not args and "self" in kwargs:
        kwargs = dict(kwargs)
        args = (kwargs.pop("self"),)
    inplace = entry.inplace
    sig = _signature(func) if "inplace" in kwargs or len(args) > 1 else None
    if "inplace" in kwargs:
        kwargs = dict(kwargs)
        inplace = bool(kwargs.pop("inplace")) or inplace
    elif sig is not None and "inplace" in sig.parameters:
        pos = list(sig.parameters).index("inplace")
        if len(args) > pos:
            inplace = bool(args[pos]) or inplace
            args = args[:pos] + args[pos + 1 :]
    return args, kwargs, inplace


def write_target(func: Callable, args: tuple, kwargs: dict) -> Any:
    """The tensor (or tuple of tensors) a call writes into: its ``out=``, or
    its first argument for in-place methods and operators; else ``None``."""
    target = kwargs.get("out")
    if target is None:
        name = getattr(func, "__name__", "")
        if not (name in INPLACE_DUNDERS or (name.endswith("_") and not name.endswith("__"))):
            return None
        target = args[0] if args else None
    return target


def required(value: Callable[..., Any] | None, entry: OpEntry, field_name: str) -> Callable[..., Any]:
    """``entry.<field_name>``, which the entry's kind needs (an ELEMENTWISE or
    PRODUCT entry calls ``function``, a COMPOSITE one ``decompose``)."""
    if value is None:
        raise TypeError(f"op table entry {entry.name!r} ({entry.kind.value}) has no {field_name}")
    return value


def _no_torch_function(*args: Any, **kwargs: Any) -> bool:
    return False


def unwrapped(func: Callable) -> Callable:
    """A copy of a Python-level torch function whose own ``has_torch_function``
    check is off, so that its body runs (and is followed op by op) under the
    mode instead of dispatching to the mode again. Built once per function."""
    body = _UNWRAPPED.get(func)
    if body is None:
        scope = dict(func.__globals__)
        scope.update(
            has_torch_function=_no_torch_function,
            has_torch_function_unary=_no_torch_function,
            has_torch_function_variadic=_no_torch_function,
        )
        body = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__, func.__closure__)
        body.__kwdefaults__ = func.__kwdefaults__
        _UNWRAPPED[func] = body
    return body


def python_torch_function(func: Callable) -> bool:
    """Whether ``func`` is a Python function of ``torch.nn.functional`` /
    ``torch.functional`` (its body can be followed op by op)."""
    module = getattr(func, "__module__", "") or ""
    return isinstance(func, types.FunctionType) and module in ("torch.nn.functional", "torch.functional")
