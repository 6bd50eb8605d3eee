r"""The registry of element-wise nonlinearities the backend intercepts.

A model can apply an activation in many ways: ``nn.ReLU()(z)``, ``F.relu(z)``,
``torch.relu(z)``, ``z.relu()``, ``nn.Sigmoid`` (which calls ``torch.sigmoid``),
``F.sigmoid`` (which calls ``z.sigmoid()``), in place or not. Inside
:class:`~captum_unified.backend.ModifiedGradientContext` every one of them is
seen by a :class:`torch.overrides.TorchFunctionMode` at the outermost call, so the
registry is keyed by the *function objects* that reach the mode.

Each entry maps such a function to its out-of-place twin and a short name. To
make the backend treat another element-wise function as a nonlinearity, call
:func:`register_nonlinearity`.
"""
from __future__ import annotations

from typing import Callable, Dict, NamedTuple, Optional

import torch
import torch.nn.functional as F

__all__ = ["Nonlinearity", "register_nonlinearity", "lookup", "registered_names"]


class Nonlinearity(NamedTuple):
    """A registered element-wise nonlinearity: ``name`` is its short name
    (``"relu"``, ``"tanh"``, ...) used in warnings; ``function`` the out-of-place
    function, called as ``function(z, *args, **kwargs)`` with the arguments of
    the original call (``inplace`` turned off)."""

    name: str
    function: Callable


_REGISTRY: Dict[Callable, Nonlinearity] = {}


def register_nonlinearity(name: str, function: Callable, *aliases: Callable) -> None:
    """Make the backend treat ``function`` (and its ``aliases``) as an element-wise
    nonlinearity whose derivative a rule replaces.

    Args:
        name (str): short name used in warnings and errors.
        function (Callable): out-of-place element-wise function ``f(z, ...)``.
            It must be element-wise: output ``i`` depends on input ``i`` only.
        *aliases (Callable): other function objects that compute the same thing
            and may reach a :class:`~torch.overrides.TorchFunctionMode` (tensor
            methods, in-place variants). In-place aliases are computed out of place.

    Example::

        >>> register_nonlinearity("my_act", my_act)   # my_act built from torch ops
    """
    entry = Nonlinearity(name, function)
    for f in (function,) + aliases:
        _REGISTRY[f] = entry


def lookup(func: Callable) -> Optional[Nonlinearity]:
    """Return the registry entry of ``func`` or ``None``."""
    try:
        return _REGISTRY.get(func)
    except TypeError:  # unhashable callables are never registered
        return None


def registered_names() -> list:
    """Names of every registered nonlinearity, sorted."""
    return sorted({e.name for e in _REGISTRY.values()})


def _methods(*names: str) -> tuple:
    return tuple(getattr(torch.Tensor, n) for n in names if hasattr(torch.Tensor, n))


def _torch(*names: str) -> tuple:
    return tuple(getattr(torch, n) for n in names if hasattr(torch, n))


register_nonlinearity("relu", torch.relu, F.relu, F.relu_, *_torch("relu_"), *_methods("relu", "relu_"))
register_nonlinearity("tanh", torch.tanh, F.tanh, *_torch("tanh_"), *_methods("tanh", "tanh_"))
register_nonlinearity(
    "sigmoid", torch.sigmoid, F.sigmoid, torch.special.expit, *_torch("sigmoid_"),
    *_methods("sigmoid", "sigmoid_"),
)
register_nonlinearity("softplus", F.softplus)
register_nonlinearity("elu", F.elu, F.elu_)
register_nonlinearity("leaky_relu", F.leaky_relu, F.leaky_relu_)
register_nonlinearity("gelu", F.gelu)
register_nonlinearity("silu", F.silu)
register_nonlinearity("selu", F.selu, *_torch("selu", "selu_"))
register_nonlinearity("celu", F.celu, *_torch("celu", "celu_"))
register_nonlinearity("relu6", F.relu6)
register_nonlinearity("hardtanh", F.hardtanh, F.hardtanh_)
register_nonlinearity("hardsigmoid", F.hardsigmoid)
register_nonlinearity("hardswish", F.hardswish)
register_nonlinearity("mish", F.mish)
register_nonlinearity("softsign", F.softsign)
register_nonlinearity("logsigmoid", F.logsigmoid)
register_nonlinearity("tanhshrink", F.tanhshrink)
