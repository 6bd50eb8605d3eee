r"""Max, min and max-pooling: :math:`\max(a, b) = b + \mathrm{relu}(a - b)`.

Every maximum is taken by the context's ``kmax`` (over the last dimension),
which applies the rule's ``maxima`` choice: DeepLIFT's max rule, a tree of
binary maxima (:func:`max_tree`), or the ordinary gradient. Max-pooling goes
through ``pooled_max`` (DeepLIFT's max rule without materialising the
windows) or gathers its windows for ``kmax``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.calls import arg, functions
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import AS_LINEAR
from captum_unified.rules import Rule

__all__ = ["max2", "min2", "max_tree", "clamp_tensor", "ROWS"]


def max2(a: Tensor, b: Tensor) -> Tensor:
    """``max(a, b) = b + relu(a - b)``, exact; complete under Rescale."""
    return b + torch.relu(a - b)


def min2(a: Tensor, b: Tensor) -> Tensor:
    """``min(a, b) = a - relu(a - b)``."""
    return a - torch.relu(a - b)


def max_tree(candidates: Tensor, combine: Callable[[Tensor, Tensor], Tensor] = max2) -> Tensor:
    """Maximum over the last dimension as a balanced tree of binary maxima."""
    v = candidates
    while v.shape[-1] > 1:
        k = v.shape[-1]
        half = k // 2
        m = combine(v[..., :half], v[..., half : 2 * half])
        v = torch.cat([m, v[..., 2 * half :]], dim=-1) if k % 2 else m
    return v[..., 0]


def _maxima_apply(rule: Rule) -> bool:
    return rule.maxima != "gradient"


def _binary_max(ctx, func, args, kwargs, consts):
    name = getattr(func, "__name__", "")
    a, b = args[0], arg(args, kwargs, 1, "other")
    if not isinstance(b, Tensor):
        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    a, b = torch.broadcast_tensors(a, b)
    return ctx.kmax(torch.stack([a, b], -1), minimum="min" in name)


def _reduce_max(ctx, func, args, kwargs, consts):
    """``torch.max`` / ``torch.min`` / ``amax`` / ``amin`` in all call forms."""
    name = getattr(func, "__name__", "")
    is_min = "min" in name
    x = args[0]
    other = arg(args, kwargs, 1, "dim" if name.startswith("am") else "dim")
    if name in ("max", "min") and isinstance(arg(args, kwargs, 1, "other"), Tensor):
        return _binary_max(ctx, func, args, kwargs, consts)
    keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
    if name.startswith("am"):
        dims = other if other is not None else tuple(range(x.dim()))
        dims = (dims,) if isinstance(dims, int) else tuple(dims)
        dims = tuple(d % max(x.dim(), 1) for d in dims) if x.dim() else ()
        rest = [d for d in range(x.dim()) if d not in dims]
        moved = x.permute(*rest, *dims).reshape(*[x.shape[d] for d in rest], -1) if dims else x.unsqueeze(-1)
        out = ctx.kmax(moved, minimum=is_min)
        if keepdim:
            for d in sorted(dims):
                out = out.unsqueeze(d)
        return out
    if other is None:  # full reduction
        return ctx.kmax(x.reshape(-1), minimum=is_min)
    dim = int(other) % max(x.dim(), 1)
    with torch.no_grad():
        indices = (torch.min if is_min else torch.max)(x.detach(), dim, keepdim).indices
    values = ctx.kmax(x.movedim(dim, -1), minimum=is_min)
    if keepdim:
        values = values.unsqueeze(dim)
    return torch.return_types.min((values, indices)) if is_min else torch.return_types.max((values, indices))


def clamp_tensor(ctx, func, args, kwargs, consts):
    """``clamp`` with an input-dependent tensor bound: ``min(max(x, lo), hi)``."""
    x = args[0]
    name = getattr(func, "__name__", "")
    if name.startswith("clamp_min"):
        lo, hi = arg(args, kwargs, 1, "min"), None
    elif name.startswith("clamp_max"):
        lo, hi = None, arg(args, kwargs, 1, "max")
    else:
        lo, hi = arg(args, kwargs, 1, "min"), arg(args, kwargs, 2, "max")
    if not any(ctx.tainted(t) for t in (lo, hi)):
        return AS_LINEAR  # not reached: the element-wise entry handles constant bounds
    out = x
    if lo is not None:
        lo = torch.as_tensor(lo, dtype=x.dtype, device=x.device)
        out = ctx.kmax(torch.stack(torch.broadcast_tensors(out, lo), -1))
    if hi is not None:
        hi = torch.as_tensor(hi, dtype=x.dtype, device=x.device)
        out = ctx.kmax(torch.stack(torch.broadcast_tensors(out, hi), -1), minimum=True)
    return out


def _tuple(v: Any, n: int) -> tuple[int, ...]:
    if isinstance(v, int):
        return (v,) * n
    v = tuple(int(t) for t in v)
    return v * n if len(v) == 1 else v


def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    eff = d * (k - 1) + 1
    num = size + 2 * p - eff
    out = (-(-num // s) if ceil else num // s) + 1
    if ceil and (out - 1) * s >= size + p:
        out -= 1
    return out


@lru_cache(maxsize=256)
def _pool_index(
    spatial: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    padding: tuple[int, ...],
    dilation: tuple[int, ...],
    ceil: bool,
) -> tuple[Tensor, tuple[int, ...]]:
    """Flat input indices of every window of a max-pool, shape ``(out, k)``.

    Positions outside the input (padding, ceil_mode overhang) repeat a valid
    position of the same window: ``max(a, a) = a`` leaves the result and
    every summation-to-delta unchanged.
    """
    n = len(spatial)
    outs = tuple(_pool_out(spatial[i], kernel[i], stride[i], padding[i], dilation[i], ceil) for i in range(n))
    axes = []
    for i in range(n):
        start = torch.arange(outs[i]) * stride[i] - padding[i]
        offs = torch.arange(kernel[i]) * dilation[i]
        axes.append(start[:, None] + offs[None, :])  # (out_i, k_i)
    # cartesian product of windows and offsets
    grids = torch.meshgrid(*[torch.arange(o) for o in outs], indexing="ij")
    kgrids = torch.meshgrid(*[torch.arange(k) for k in kernel], indexing="ij")
    pos = [axes[i][grids[i].reshape(-1)][:, kgrids[i].reshape(-1)] for i in range(n)]  # each (out, k)
    valid = torch.ones_like(pos[0], dtype=torch.bool)
    for i in range(n):
        valid &= (pos[i] >= 0) & (pos[i] < spatial[i])
    flat = torch.zeros_like(pos[0])
    for i in range(n):
        flat = flat * spatial[i] + pos[i].clamp(0, spatial[i] - 1)
    first_valid = flat.gather(1, valid.to(torch.int64).argmax(dim=1, keepdim=True)).expand_as(flat)
    flat = torch.where(valid, flat, first_valid)
    return flat, outs


def _max_pool(ctx, func, args, kwargs, consts):
    """Max-pooling (1-3 d) as gathered windows and a tree of binary maxima."""
    name = getattr(func, "__name__", "")
    x = args[0]
    n = 1 if "1d" in name else 3 if "3d" in name else 2
    kernel = _tuple(arg(args, kwargs, 1, "kernel_size"), n)
    stride_arg = arg(args, kwargs, 2, "stride")
    stride = (
        kernel
        if stride_arg is None or (not isinstance(stride_arg, int) and len(stride_arg) == 0)
        else _tuple(stride_arg, n)
    )
    padding = _tuple(arg(args, kwargs, 3, "padding", 0), n)
    dilation = _tuple(arg(args, kwargs, 4, "dilation", 1), n)
    ceil = bool(arg(args, kwargs, 5, "ceil_mode", False))
    return_indices = bool(arg(args, kwargs, 6, "return_indices", False)) or "with_indices" in name
    batched = x.dim() == n + 2
    xb = x if batched else x.unsqueeze(0)
    lead, spatial = xb.shape[:2], tuple(xb.shape[2:])
    pool = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[n]

    def with_indices(t):
        return pool(t, kernel, stride, padding, dilation, ceil, True)

    out = ctx.pooled_max(xb, with_indices)
    if out is None:
        index, outs = _pool_index(spatial, kernel, stride, padding, dilation, ceil)
        windows = xb.reshape(*lead, -1)[..., index.to(xb.device)]  # (N, C, out, k)
        out = ctx.kmax(windows).reshape(*lead, *outs)
    if not batched:
        out = out.squeeze(0)
    if return_indices:
        with torch.no_grad():
            _, idx = pool(x.detach(), kernel, stride, padding, dilation, ceil, True)
        return out, idx
    return out


def _adaptive_index(spatial: tuple[int, ...], outs: tuple[int, ...]) -> Tensor:
    """Windows of adaptive max-pooling (torch's start/end rule), padded by
    repeating a valid position."""
    per_axis = []
    for size, o in zip(spatial, outs):
        starts = [(i * size) // o for i in range(o)]
        ends = [-((-(i + 1) * size) // o) for i in range(o)]
        k = max(e - s for s, e in zip(starts, ends))
        rows = [[min(s + j, e - 1) for j in range(k)] for s, e in zip(starts, ends)]
        per_axis.append(torch.tensor(rows))  # (o, k)
    grids = torch.meshgrid(*[torch.arange(o) for o in outs], indexing="ij")
    kgrids = torch.meshgrid(*[torch.arange(a.shape[1]) for a in per_axis], indexing="ij")
    flat = torch.zeros(int(math.prod(outs)), int(math.prod(a.shape[1] for a in per_axis)), dtype=torch.int64)
    for i, (size, a) in enumerate(zip(spatial, per_axis)):
        flat = flat * size + a[grids[i].reshape(-1)][:, kgrids[i].reshape(-1)]
    return flat


def _adaptive_max_pool(ctx, func, args, kwargs, consts):
    name = getattr(func, "__name__", "")
    x = args[0]
    n = 1 if "1d" in name else 3 if "3d" in name else 2
    size = arg(args, kwargs, 1, "output_size")
    return_indices = bool(arg(args, kwargs, 2, "return_indices", False))
    batched = x.dim() == n + 2
    xb = x if batched else x.unsqueeze(0)
    lead, spatial = xb.shape[:2], tuple(xb.shape[2:])
    size = (size,) * n if isinstance(size, int) else tuple(size)
    outs = tuple(spatial[i] if size[i] is None else int(size[i]) for i in range(n))
    pool = {1: F.adaptive_max_pool1d, 2: F.adaptive_max_pool2d, 3: F.adaptive_max_pool3d}[n]
    out = ctx.pooled_max(xb, lambda t: pool(t, outs, True))
    if out is None:
        index = _adaptive_index(spatial, outs).to(xb.device)
        out = ctx.kmax(xb.reshape(*lead, -1)[..., index]).reshape(*lead, *outs)
    if not batched:
        out = out.squeeze(0)
    if return_indices:
        with torch.no_grad():
            _, idx = pool(x.detach(), outs, True)
        return out, idx
    return out


T, TT, FF = torch, torch.Tensor, F

#: max, min, maximum, minimum and max-pooling (kept with their gradient unless the rule's ``maxima`` says otherwise).
ROWS: tuple[CompositeOp, ...] = (
    CompositeOp(
        "maximum",
        _binary_max,
        functions((T, "maximum minimum fmax fmin"), (TT, "maximum minimum fmax fmin")),
        applies=_maxima_apply,
    ),
    CompositeOp(
        "max", _reduce_max, functions((T, "max min amax amin"), (TT, "max min amax amin")), applies=_maxima_apply
    ),
    CompositeOp(
        "max_pool",
        _max_pool,
        functions(
            (
                FF,
                "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices "
                "max_pool2d_with_indices max_pool3d_with_indices",
            ),
            (T, "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices"),
            (torch._C._nn, "max_pool2d_with_indices max_pool3d_with_indices"),
        ),
        applies=_maxima_apply,
    ),
    CompositeOp(
        "adaptive_max_pool",
        _adaptive_max_pool,
        functions(
            (
                FF,
                "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d adaptive_max_pool1d_with_indices "
                "adaptive_max_pool2d_with_indices adaptive_max_pool3d_with_indices",
            ),
            (T, "adaptive_max_pool1d"),
            (torch._C._nn, "adaptive_max_pool2d adaptive_max_pool3d"),
        ),
        applies=_maxima_apply,
    ),
)
