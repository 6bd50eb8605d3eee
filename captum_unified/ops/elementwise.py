r"""Element-wise nonlinearities :math:`y = f(z)` of the default op table.

Each is listed once with every function object through which a model can call
it (``torch.relu``, ``F.relu``, ``Tensor.relu``, the in-place ``relu_``
variants), an optional closed-form derivative (used where the Rescale rule
falls back to :math:`f'(z)` and by the gradient rule; autograd otherwise), and
whether its output acts as a gate (sigmoid-like: read by the ``"gate"``
product policy).

Functions with extra arguments (``F.leaky_relu(z, 0.1)``, ``torch.clamp(z, 0,
1)``, ``F.prelu(z, weight)``) are element-wise in their first argument with the
others held fixed. Integer-valued functions (``floor``, ``sign``, ...) have
derivative zero; DeepLIFT's Rescale rule gives them their secant slope.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.table import OpEntry, OpKind

__all__ = ["ELEMENTWISE", "elementwise_entries"]


def _relu_d(z: Tensor, out: Tensor) -> Tensor:
    return torch.sign(out)  # out = relu(z) >= 0: 1 where z > 0, else 0 (a float op; boolean masks are slow)


def _tanh_d(z: Tensor, out: Tensor) -> Tensor:
    return 1 - out * out


def _sigmoid_d(z: Tensor, out: Tensor) -> Tensor:
    return out * (1 - out)


def _exp_d(z: Tensor, out: Tensor) -> Tensor:
    return out


def _zero_d(z: Tensor, out: Tensor) -> Tensor:
    return torch.zeros_like(z)


# name, derivative, gate, function names: torch.<n>, Tensor.<n>, F.<n>, torch.special.<n>
_SPEC: list[tuple[str, Callable | None, bool, tuple[str, ...]]] = [
    ("relu", _relu_d, False, ("relu",)),
    ("tanh", _tanh_d, False, ("tanh",)),
    ("sigmoid", _sigmoid_d, True, ("sigmoid", "expit")),
    ("softplus", None, False, ("softplus",)),
    ("elu", None, False, ("elu",)),
    ("selu", None, False, ("selu",)),
    ("celu", None, False, ("celu",)),
    ("leaky_relu", None, False, ("leaky_relu",)),
    ("prelu", None, False, ("prelu",)),
    ("rrelu", None, False, ("rrelu",)),
    ("gelu", None, False, ("gelu",)),
    ("silu", None, False, ("silu",)),
    ("mish", None, False, ("mish",)),
    ("hardswish", None, False, ("hardswish",)),
    ("hardsigmoid", None, True, ("hardsigmoid",)),
    ("relu6", None, False, ("relu6",)),
    ("hardtanh", None, False, ("hardtanh",)),
    ("softsign", None, False, ("softsign",)),
    ("logsigmoid", None, False, ("logsigmoid",)),
    ("tanhshrink", None, False, ("tanhshrink",)),
    ("softshrink", None, False, ("softshrink",)),
    ("hardshrink", None, False, ("hardshrink",)),
    ("threshold", None, False, ("threshold",)),
    ("exp", _exp_d, False, ("exp",)),
    ("exp2", None, False, ("exp2",)),
    ("expm1", None, False, ("expm1",)),
    ("log", None, False, ("log",)),
    ("log2", None, False, ("log2",)),
    ("log10", None, False, ("log10",)),
    ("log1p", None, False, ("log1p",)),
    ("sqrt", None, False, ("sqrt",)),
    ("rsqrt", None, False, ("rsqrt",)),
    ("reciprocal", None, False, ("reciprocal",)),
    ("square", None, False, ("square",)),
    ("abs", None, False, ("abs", "absolute", "__abs__")),
    ("sin", None, False, ("sin",)),
    ("cos", None, False, ("cos",)),
    ("tan", None, False, ("tan",)),
    ("asin", None, False, ("asin", "arcsin")),
    ("acos", None, False, ("acos", "arccos")),
    ("atan", None, False, ("atan", "arctan")),
    ("sinh", None, False, ("sinh",)),
    ("cosh", None, False, ("cosh",)),
    ("asinh", None, False, ("asinh", "arcsinh")),
    ("acosh", None, False, ("acosh", "arccosh")),
    ("atanh", None, False, ("atanh", "arctanh")),
    ("erf", None, False, ("erf",)),
    ("erfc", None, False, ("erfc",)),
    ("erfinv", None, False, ("erfinv",)),
    ("logit", None, False, ("logit",)),
    ("ndtr", None, False, ("ndtr",)),
    ("log_ndtr", None, False, ("log_ndtr",)),
    ("sinc", None, False, ("sinc",)),
    ("nan_to_num", None, False, ("nan_to_num",)),
    ("clamp", None, False, ("clamp", "clip")),
    ("clamp_min", None, False, ("clamp_min",)),
    ("clamp_max", None, False, ("clamp_max",)),
    ("sign", _zero_d, False, ("sign", "sgn")),
    ("floor", _zero_d, False, ("floor",)),
    ("ceil", _zero_d, False, ("ceil",)),
    ("round", _zero_d, False, ("round",)),
    ("trunc", _zero_d, False, ("trunc", "fix")),
    ("frac", None, False, ("frac",)),
]

#: Functions whose tensor arguments after the first are element-wise
#: parameters (held fixed); if such a parameter depends on the inputs the op
#: is not element-wise in one tensor and is handled as a composite or unknown.
_MULTI_TENSOR = {"clamp", "clamp_min", "clamp_max", "prelu", "threshold"}


def _namespaces():
    return (
        ("torch", torch),
        ("Tensor", torch.Tensor),
        ("F", F),
        ("special", torch.special),
    )


def elementwise_entries() -> dict[Callable, OpEntry]:
    """Every element-wise function object of this torch version -> its entry."""
    out: dict[Callable, OpEntry] = {}
    for name, derivative, gate, fnames in _SPEC:
        canonical: Callable | None = None
        found: list[tuple[Callable, bool]] = []
        for fname in fnames:
            for ns_name, ns in _namespaces():
                for candidate, inplace in ((fname, False), (fname + "_", True)):
                    if ns_name == "special" and inplace:
                        continue
                    f = getattr(ns, candidate, None)
                    if f is None or not callable(f):
                        continue
                    found.append((f, inplace))
                    if canonical is None and not inplace and ns_name in ("torch", "F"):
                        canonical = f
        if canonical is None and found:
            canonical = found[0][0]
        for f, inplace in found:
            # out-of-place twin of an in-place variant: the canonical function
            function = canonical if inplace else f
            out[f] = OpEntry(name, OpKind.ELEMENTWISE, function, inplace=inplace, derivative=derivative, gate=gate)
    return out


ELEMENTWISE = frozenset(name for name, *_ in _SPEC)
