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

``clamp`` with a bound that depends on the inputs is not element-wise in one
tensor: its row's ``fallback`` decomposes it into maxima.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.maxima import clamp_tensor
from captum_unified.ops.rows import ElementwiseOp
from captum_unified.ops.table import OpEntry

__all__ = ["ELEMENTWISE_OPS", "ELEMENTWISE", "elementwise_entries"]


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


#: The element-wise ops, one row each (function names: torch.<n>, Tensor.<n>, F.<n>, torch.special.<n>).
ELEMENTWISE_OPS: tuple[ElementwiseOp, ...] = (
    ElementwiseOp("relu", ("relu",), derivative=_relu_d),
    ElementwiseOp("tanh", ("tanh",), derivative=_tanh_d),
    ElementwiseOp("sigmoid", ("sigmoid", "expit"), derivative=_sigmoid_d, gate=True),
    ElementwiseOp("softplus", ("softplus",)),
    ElementwiseOp("elu", ("elu",)),
    ElementwiseOp("selu", ("selu",)),
    ElementwiseOp("celu", ("celu",)),
    ElementwiseOp("leaky_relu", ("leaky_relu",)),
    ElementwiseOp("prelu", ("prelu",)),
    ElementwiseOp("rrelu", ("rrelu",)),
    ElementwiseOp("gelu", ("gelu",)),
    ElementwiseOp("silu", ("silu",)),
    ElementwiseOp("mish", ("mish",)),
    ElementwiseOp("hardswish", ("hardswish",)),
    ElementwiseOp("hardsigmoid", ("hardsigmoid",), gate=True),
    ElementwiseOp("relu6", ("relu6",)),
    ElementwiseOp("hardtanh", ("hardtanh",)),
    ElementwiseOp("softsign", ("softsign",)),
    ElementwiseOp("logsigmoid", ("logsigmoid",)),
    ElementwiseOp("tanhshrink", ("tanhshrink",)),
    ElementwiseOp("softshrink", ("softshrink",)),
    ElementwiseOp("hardshrink", ("hardshrink",)),
    ElementwiseOp("threshold", ("threshold",)),
    ElementwiseOp("exp", ("exp",), derivative=_exp_d),
    ElementwiseOp("exp2", ("exp2",)),
    ElementwiseOp("expm1", ("expm1",)),
    ElementwiseOp("log", ("log",)),
    ElementwiseOp("log2", ("log2",)),
    ElementwiseOp("log10", ("log10",)),
    ElementwiseOp("log1p", ("log1p",)),
    ElementwiseOp("sqrt", ("sqrt",)),
    ElementwiseOp("rsqrt", ("rsqrt",)),
    ElementwiseOp("reciprocal", ("reciprocal",)),
    ElementwiseOp("square", ("square",)),
    ElementwiseOp("abs", ("abs", "absolute", "__abs__")),
    ElementwiseOp("sin", ("sin",)),
    ElementwiseOp("cos", ("cos",)),
    ElementwiseOp("tan", ("tan",)),
    ElementwiseOp("asin", ("asin", "arcsin")),
    ElementwiseOp("acos", ("acos", "arccos")),
    ElementwiseOp("atan", ("atan", "arctan")),
    ElementwiseOp("sinh", ("sinh",)),
    ElementwiseOp("cosh", ("cosh",)),
    ElementwiseOp("asinh", ("asinh", "arcsinh")),
    ElementwiseOp("acosh", ("acosh", "arccosh")),
    ElementwiseOp("atanh", ("atanh", "arctanh")),
    ElementwiseOp("erf", ("erf",)),
    ElementwiseOp("erfc", ("erfc",)),
    ElementwiseOp("erfinv", ("erfinv",)),
    ElementwiseOp("logit", ("logit",)),
    ElementwiseOp("ndtr", ("ndtr",)),
    ElementwiseOp("log_ndtr", ("log_ndtr",)),
    ElementwiseOp("sinc", ("sinc",)),
    ElementwiseOp("nan_to_num", ("nan_to_num",)),
    ElementwiseOp("clamp", ("clamp", "clip"), fallback=clamp_tensor),
    ElementwiseOp("clamp_min", ("clamp_min",), fallback=clamp_tensor),
    ElementwiseOp("clamp_max", ("clamp_max",), fallback=clamp_tensor),
    ElementwiseOp("sign", ("sign", "sgn"), derivative=_zero_d),
    ElementwiseOp("floor", ("floor",), derivative=_zero_d),
    ElementwiseOp("ceil", ("ceil",), derivative=_zero_d),
    ElementwiseOp("round", ("round",), derivative=_zero_d),
    ElementwiseOp("trunc", ("trunc", "fix"), derivative=_zero_d),
    ElementwiseOp("frac", ("frac",)),
)

_NAMESPACES = (("torch", torch), ("Tensor", torch.Tensor), ("F", F), ("special", torch.special))


@lru_cache(maxsize=1)
def elementwise_entries() -> Mapping[Callable, OpEntry]:
    """Every element-wise function object of this torch version -> its entry
    (built once: the fused kernels compare a table's entries with these)."""
    out: dict[Callable, OpEntry] = {}
    for row in ELEMENTWISE_OPS:
        out.update(row.entries(_NAMESPACES))
    return MappingProxyType(out)


ELEMENTWISE = frozenset(row.name for row in ELEMENTWISE_OPS)
