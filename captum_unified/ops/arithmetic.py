r"""Quotients, powers and affine ops with a product inside.

``a / b = a * reciprocal(b)``; ``z ** e`` is element-wise in the one of base
and exponent that depends on the inputs (``exp(e * log z)`` when both do);
``addmm`` & co., ``addcmul`` / ``addcdiv``, ``prod``, ``glu``, ``lerp`` and
``F.bilinear`` are sums of products. Each becomes linear ops, element-wise
functions and products, which the rule treats.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.calls import arg, functions
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import AS_LINEAR, NOT_DECOMPOSED

__all__ = ["ROWS"]


def _div(ctx, func, args, kwargs, consts):
    """``a / b = a * reciprocal(b)`` when ``b`` depends on the inputs."""
    name = getattr(func, "__name__", "")
    if arg(args, kwargs, 2, "rounding_mode") is not None:
        return NOT_DECOMPOSED
    # Tensor.__rtruediv__ is Tensor.__rdiv__ (its __name__ is "__rdiv__"): ``c / t``
    reflected = name in ("__rtruediv__", "__rdiv__")
    a, b = (args[1], args[0]) if reflected else (args[0], arg(args, kwargs, 1, "other"))
    if not ctx.tainted(b):
        return AS_LINEAR
    return torch.mul(a, torch.reciprocal(b)) if isinstance(a, Tensor) else torch.reciprocal(b) * a


def _pow(ctx, func, args, kwargs, consts):
    """``z ** e``: element-wise in the tainted one of base and exponent;
    ``exp(e * log(z))`` when both depend on the inputs."""
    name = getattr(func, "__name__", "")
    if name == "__rpow__":
        base, exponent = args[1], args[0]
    else:
        base, exponent = args[0], arg(args, kwargs, 1, "exponent")
    tb, te = ctx.tainted(base), ctx.tainted(exponent)
    if tb and te:
        return torch.exp(torch.mul(exponent, torch.log(base)))
    if tb:
        if isinstance(exponent, (int, float)) and exponent == 2:
            return torch.square(base)
        return ctx.elementwise("pow", lambda t: torch.pow(t, exponent), base)
    if te:
        return ctx.elementwise("pow", lambda t: torch.pow(base, t), exponent)
    return AS_LINEAR


# ---------------------------------------------------------------------------
# affine ops with a product inside
# ---------------------------------------------------------------------------
def _scaled(t: Tensor, s: Any) -> Tensor:
    return t if s == 1 else t * s


def _add_product(ctx, func, args, kwargs, consts):
    """``beta * input + alpha * (b1 @ b2)`` (addmm, addbmm, baddbmm, addmv,
    addr) and ``input + value * t1 * t2`` / ``t1 / t2`` (addcmul, addcdiv)."""
    name = getattr(func, "__name__", "").rstrip("_")
    inp, t1, t2 = args[0], arg(args, kwargs, 1, "tensor1"), arg(args, kwargs, 2, "tensor2")
    if name in ("addcmul", "addcdiv"):
        value = kwargs.get("value", args[3] if len(args) > 3 else 1)
        prod = t1 * t2 if name == "addcmul" else t1 / t2
        return inp + _scaled(prod, value)
    if name in ("addmm", "addmv", "addr", "addbmm", "baddbmm"):
        t1 = arg(args, kwargs, 1, {"addmm": "mat1", "addmv": "mat", "addr": "vec1"}.get(name, "batch1"))
        t2 = arg(args, kwargs, 2, {"addmm": "mat2", "addmv": "vec", "addr": "vec2"}.get(name, "batch2"))
        beta, alpha = kwargs.get("beta", 1), kwargs.get("alpha", 1)
        if name == "addr":
            prod = torch.outer(t1, t2)
        elif name == "addbmm":
            prod = torch.bmm(t1, t2).sum(0)
        else:
            prod = torch.matmul(t1, t2)
        if beta == 0:
            return _scaled(prod, alpha)
        return _scaled(inp, beta) + _scaled(prod, alpha)
    return NOT_DECOMPOSED


def _prod(ctx, func, args, kwargs, consts):
    """``prod`` as a chain of binary products (each complete under Shapley)."""
    x = args[0]
    dim = arg(args, kwargs, 1, "dim")
    keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
    if kwargs.get("dtype") is not None:
        x = x.to(kwargs["dtype"])
    parts = x.reshape(-1).unbind(0) if dim is None else x.unbind(int(dim))
    out = parts[0]
    for p in parts[1:]:
        out = out * p
    if dim is not None and keepdim:
        out = out.unsqueeze(int(dim))
    return out


def _glu(ctx, func, args, kwargs, consts):
    x = args[0]
    dim = int(arg(args, kwargs, 1, "dim", -1))
    a, b = x.chunk(2, dim)
    return a * torch.sigmoid(b)


def _lerp(ctx, func, args, kwargs, consts):
    start, end, weight = args[0], arg(args, kwargs, 1, "end"), arg(args, kwargs, 2, "weight")
    if not ctx.tainted(weight):
        return AS_LINEAR
    return start + weight * (end - start)


def _bilinear(ctx, func, args, kwargs, consts):
    x1, x2, weight = args[0], args[1], args[2]
    bias = arg(args, kwargs, 3, "bias")
    t = torch.einsum("...i,kij->...kj", x1, weight)
    y = torch.einsum("...kj,...j->...k", t, x2)
    return y + bias if bias is not None else y


T, TT, FF = torch, torch.Tensor, F

#: Quotients and powers.
QUOTIENT_ROWS: tuple[CompositeOp, ...] = (
    CompositeOp(
        "div",
        _div,
        functions(
            (T, "div divide true_divide"),
            (
                TT,
                "div divide true_divide __truediv__ __rtruediv__ "
                "__itruediv__ __div__ __rdiv__ __idiv__ div_ divide_ "
                "true_divide_",
            ),
        ),
    ),
    CompositeOp(
        "pow",
        _pow,
        functions((T, "pow float_power"), (TT, "pow float_power __pow__ __rpow__ __ipow__ pow_ float_power_")),
    ),
)

#: Affine ops with a product inside.
PRODUCT_ROWS: tuple[CompositeOp, ...] = (
    CompositeOp(
        "add_product",
        _add_product,
        functions(
            (T, "addmm addbmm baddbmm addmv addr addcmul addcdiv"),
            (
                TT,
                "addmm addbmm baddbmm addmv addr addcmul addcdiv addmm_ addbmm_ "
                "baddbmm_ addmv_ addr_ addcmul_ addcdiv_",
            ),
        ),
    ),
    CompositeOp("prod", _prod, functions((T, "prod"), (TT, "prod"))),
    CompositeOp("glu", _glu, functions((FF, "glu"))),
    CompositeOp("lerp", _lerp, functions((T, "lerp"), (TT, "lerp lerp_"))),
    CompositeOp("bilinear", _bilinear, functions((FF, "bilinear"), (T, "bilinear"))),
)

ROWS = QUOTIENT_ROWS + PRODUCT_ROWS
