r"""Bilinear ops of the default op table: :math:`y = a \star b`.

When both factors depend on the explained inputs the backend differentiates
the op by the rule's product policy (:mod:`captum_unified.rules.products`);
when only one does, the op is linear in it and keeps its gradient. Each row
says where the factors sit in a call, whether an additive bias comes with
them (``F.linear``, convolutions) and whether the partial derivatives have a
closed form (``mul``; ``matmul`` of two at-least-2-d factors).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.rows import ProductOp
from captum_unified.ops.table import OpEntry, ProductCall

__all__ = ["PRODUCT_OPS", "product_entries", "split_factors"]


def split_factors(entry: OpEntry, args: tuple, kwargs: dict[str, Any]) -> ProductCall:
    """Split a (normalised) call of a product op into its factors, at
    ``entry.factors`` / ``entry.factor_keyword``, and its bias at ``entry.bias``."""
    i, j = entry.factors
    a = args[i] if len(args) > i else kwargs.get("input")
    b = args[j] if len(args) > j else kwargs.get(entry.factor_keyword)
    function = entry.function
    if entry.bias is None:
        bias, rest = None, args[j + 1 :]
        kw = {k: v for k, v in kwargs.items() if k != entry.factor_keyword}

        def bilinear(u: Tensor, v: Tensor) -> Tensor:
            assert function is not None  # a product entry calls its function
            return function(u, v, *rest, **kw)
    else:
        bias = args[entry.bias] if len(args) > entry.bias else kwargs.get("bias")
        rest = args[entry.bias + 1 :]
        kw = {k: v for k, v in kwargs.items() if k not in (entry.factor_keyword, "bias")}

        def bilinear(u: Tensor, v: Tensor) -> Tensor:
            assert function is not None
            return function(u, v, None, *rest, **kw)

    return ProductCall((a, b), bilinear, bias)


def _split_einsum(entry: OpEntry, args: tuple, kwargs: dict[str, Any]) -> ProductCall:
    """``einsum(equation, a, b)`` or ``einsum(equation, [a, b])``."""
    equation = args[0]
    operands = tuple(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else tuple(args[1:])
    if len(operands) != 2:
        return ProductCall(operands, None)

    def bilinear(u: Tensor, v: Tensor) -> Tensor:
        return torch.einsum(equation, u, v)

    return ProductCall(operands, bilinear)


def _rmatmul(u: Tensor, v: Tensor) -> Tensor:
    """``Tensor.__rmatmul__(u, v)`` is ``v @ u``."""
    return torch.matmul(v, u)


def _linear_bias(out: Tensor, bias: Tensor) -> Tensor:
    return out + bias


def _channel_bias(out: Tensor, bias: Tensor) -> Tensor:
    return out + bias.reshape((-1,) + (1,) * (out.dim() - 2))


T, TT = torch, torch.Tensor

#: The product ops, one row each.
PRODUCT_OPS: tuple[ProductOp, ...] = (
    ProductOp(
        "mul",
        (T.mul, T.multiply, TT.mul, TT.multiply, TT.__mul__, TT.__rmul__),
        closed_form="mul",
    ),
    ProductOp("mul_", (TT.mul_, TT.multiply_, TT.__imul__), function=torch.mul, closed_form="mul"),
    ProductOp("matmul", (T.matmul, TT.matmul, TT.__matmul__, T.mm, TT.mm, T.bmm, TT.bmm), closed_form="matmul"),
    ProductOp(
        "matmul",
        (
            T.mv,
            TT.mv,
            T.dot,
            TT.dot,
            T.inner,
            TT.inner,
            T.outer,
            TT.outer,
            T.ger,
            TT.ger,
            T.vdot,
            TT.vdot,
            T.kron,
            TT.kron,
            T.tensordot,
        ),
    ),
    ProductOp("rmatmul", (TT.__rmatmul__,), function=_rmatmul),
    ProductOp("einsum", (T.einsum,), split=_split_einsum),
    ProductOp("linear", (F.linear,), factor_keyword="weight", bias=2, add_bias=_linear_bias),
    ProductOp(
        "conv",
        (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d),
        factor_keyword="weight",
        bias=2,
        add_bias=_channel_bias,
    ),
)


@lru_cache(maxsize=1)
def product_entries() -> Mapping[Callable, OpEntry]:
    """Every product function object -> its entry (built once)."""
    out: dict[Callable, OpEntry] = {}
    for row in PRODUCT_OPS:
        out.update(row.entries())
    return MappingProxyType(out)
