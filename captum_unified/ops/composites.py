r"""Decompositions of composite ops into linear ops, element-wise functions,
products and max (docs: *What the backend does with each op*).

Each ``decompose(ctx, func, args, kwargs, consts)`` computes the op from other
torch ops. The backend runs it with its mode active, so every op it calls is
classified in turn: an element-wise function gets the rule's :math:`g`, a
product the rule's product policy, and so on. DeepLIFT (Rescale with the
Shapley product split and the max tree) is then exactly complete through the
op, because every piece satisfies its own summation-to-delta.

``ctx`` is the backend's context; decompositions use only:

* ``ctx.rule`` — the rule (its ``maxima`` / ``norm`` / ``softmax`` choices);
* ``ctx.tainted(t)`` — whether ``t`` depends on the explained inputs;
* ``ctx.elementwise(name, f, z)`` — apply an element-wise function ``f`` that
  is not a single torch op (``z ** 2.5``) with the rule;
* ``ctx.kmax(v, minimum=False)`` — the maximum (minimum) over the last
  dimension with the rule's max policy.

A decomposition returns :data:`NOT_DECOMPOSED` for call forms it does not
cover (packed sequences, ``rounding_mode``, ...); the op is then reported as
unknown and keeps its gradient.

One trap: a value the decomposition treats as a constant must be the
same in both passes. Softmax's stabilising shift is therefore computed once
from both passes (``constants``) and passed to both.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["NOT_DECOMPOSED", "AS_LINEAR", "COMPOSITES", "TRANSPARENT", "max2", "min2", "max_tree"]


class _NotDecomposed:
    def __repr__(self) -> str:
        return "NOT_DECOMPOSED"


#: Returned by a decomposition for a call form it does not handle.
NOT_DECOMPOSED: Any = _NotDecomposed()


class _AsLinear:
    def __repr__(self) -> str:
        return "AS_LINEAR"


#: Returned by a decomposition when, for this call, the op is linear in its
#: input-dependent arguments (e.g. a division by a constant): the backend calls
#: the original op and keeps its gradient.
AS_LINEAR: Any = _AsLinear()


def _arg(args: Sequence[Any], kwargs: dict[str, Any], i: int, name: str, default: Any = None) -> Any:
    if len(args) > i:
        return args[i]
    return kwargs.get(name, default)


# ---------------------------------------------------------------------------
# quotients and powers
# ---------------------------------------------------------------------------
def _div(ctx, func, args, kwargs, consts):
    """``a / b = a * reciprocal(b)`` when ``b`` depends on the inputs."""
    name = getattr(func, "__name__", "")
    if _arg(args, kwargs, 2, "rounding_mode") is not None:
        return NOT_DECOMPOSED
    # Tensor.__rtruediv__ is Tensor.__rdiv__ (its __name__ is "__rdiv__"): ``c / t``
    reflected = name in ("__rtruediv__", "__rdiv__")
    a, b = (args[1], args[0]) if reflected else (args[0], _arg(args, kwargs, 1, "other"))
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
        base, exponent = args[0], _arg(args, kwargs, 1, "exponent")
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
# max family: max(a, b) = b + relu(a - b)
# ---------------------------------------------------------------------------
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


def _maxima_apply(rule) -> bool:
    return getattr(rule, "maxima", "gradient") != "gradient"


def _binary_max(ctx, func, args, kwargs, consts):
    name = getattr(func, "__name__", "")
    a, b = args[0], _arg(args, kwargs, 1, "other")
    if not isinstance(b, Tensor):
        b = torch.as_tensor(b, dtype=a.dtype, device=a.device)
    a, b = torch.broadcast_tensors(a, b)
    return ctx.kmax(torch.stack([a, b], -1), minimum="min" in name)


def _reduce_max(ctx, func, args, kwargs, consts):
    """``torch.max`` / ``torch.min`` / ``amax`` / ``amin`` in all call forms."""
    name = getattr(func, "__name__", "")
    is_min = "min" in name
    x = args[0]
    other = _arg(args, kwargs, 1, "dim" if name.startswith("am") else "dim")
    if name in ("max", "min") and isinstance(_arg(args, kwargs, 1, "other"), Tensor):
        return _binary_max(ctx, func, args, kwargs, consts)
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
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


def _clamp_tensor(ctx, func, args, kwargs, consts):
    """``clamp`` with an input-dependent tensor bound: ``min(max(x, lo), hi)``."""
    x = args[0]
    name = getattr(func, "__name__", "")
    if name.startswith("clamp_min"):
        lo, hi = _arg(args, kwargs, 1, "min"), None
    elif name.startswith("clamp_max"):
        lo, hi = None, _arg(args, kwargs, 1, "max")
    else:
        lo, hi = _arg(args, kwargs, 1, "min"), _arg(args, kwargs, 2, "max")
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
    kernel = _tuple(_arg(args, kwargs, 1, "kernel_size"), n)
    stride_arg = _arg(args, kwargs, 2, "stride")
    stride = (
        kernel
        if stride_arg is None or (not isinstance(stride_arg, int) and len(stride_arg) == 0)
        else _tuple(stride_arg, n)
    )
    padding = _tuple(_arg(args, kwargs, 3, "padding", 0), n)
    dilation = _tuple(_arg(args, kwargs, 4, "dilation", 1), n)
    ceil = bool(_arg(args, kwargs, 5, "ceil_mode", False))
    return_indices = bool(_arg(args, kwargs, 6, "return_indices", False)) or "with_indices" in name
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
    size = _arg(args, kwargs, 1, "output_size")
    return_indices = bool(_arg(args, kwargs, 2, "return_indices", False))
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


# ---------------------------------------------------------------------------
# normalisation
# ---------------------------------------------------------------------------
def _norm_apply(rule) -> bool:
    return getattr(rule, "norm", "gradient") != "gradient"


def _scale(ctx, var_plus_eps: Tensor) -> Tensor:
    """``rsqrt(var + eps)``; a constant under the ``norm="constant"`` choice
    (Ali et al. 2022: LayerNorm's scale treated as a constant)."""
    r = torch.rsqrt(var_plus_eps)
    return r.detach() if getattr(ctx.rule, "norm", "") == "constant" else r


def normalise(ctx, x: Tensor, dims: tuple[int, ...], eps: float, centre: bool = True) -> Tensor:
    """``(x - mean) * rsqrt(var + eps)`` over ``dims`` (biased variance).
    Under ``norm="constant"`` the scale is computed from detached values: a
    constant, so only the centring and one product with a constant remain."""
    c = x - x.mean(dims, keepdim=True) if centre else x
    if getattr(ctx.rule, "norm", "") == "constant":
        cd = c.detach()
        return c * torch.rsqrt((cd * cd).mean(dims, keepdim=True) + eps)
    var = (c * c).mean(dims, keepdim=True)
    return c * _scale(ctx, var + eps)


def norm_args(args, kwargs, rms: bool) -> tuple[Tensor, tuple[int, ...], Any, Any, float]:
    """``(x, dims, weight, bias, eps)`` of an ``F.layer_norm`` / ``F.rms_norm``
    call (``bias`` is None for RMSNorm; its default eps is the dtype's)."""
    x = args[0]
    shape = _arg(args, kwargs, 1, "normalized_shape")
    dims = tuple(range(-(1 if isinstance(shape, int) else len(shape)), 0))
    weight = _arg(args, kwargs, 2, "weight")
    if rms:
        eps = _arg(args, kwargs, 3, "eps")
        return x, dims, weight, None, torch.finfo(x.dtype).eps if eps is None else float(eps)
    return x, dims, weight, _arg(args, kwargs, 3, "bias"), float(_arg(args, kwargs, 4, "eps", 1e-5))


def affine(y: Tensor, weight: Any, bias: Any) -> Tensor:
    """A normalisation's element-wise affine part (linear)."""
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _layer_norm(ctx, func, args, kwargs, consts):
    x, dims, weight, bias, eps = norm_args(args, kwargs, rms=False)
    return affine(normalise(ctx, x, dims, eps), weight, bias)


def _rms_norm(ctx, func, args, kwargs, consts):
    x, dims, weight, _, eps = norm_args(args, kwargs, rms=True)
    return affine(normalise(ctx, x, dims, eps, centre=False), weight, None)


def _channel_affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    view = (1, -1) + (1,) * (y.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(view)
    if bias is not None:
        y = y + bias.reshape(view)
    return y


def _group_norm(ctx, func, args, kwargs, consts):
    x = args[0]
    groups = int(_arg(args, kwargs, 1, "num_groups"))
    weight, bias = _arg(args, kwargs, 2, "weight"), _arg(args, kwargs, 3, "bias")
    eps = float(_arg(args, kwargs, 4, "eps", 1e-5))
    n = x.shape[0]
    g = x.reshape(n, groups, -1)
    y = normalise(ctx, g, (-1,), eps).reshape(x.shape)
    return _channel_affine(y, weight, bias)


def _batch_norm(ctx, func, args, kwargs, consts):
    """Batch statistics (train mode, or no running statistics); in eval mode
    BatchNorm is an affine map and keeps its gradient."""
    x = args[0]
    running_mean, running_var = _arg(args, kwargs, 1, "running_mean"), _arg(args, kwargs, 2, "running_var")
    weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
    training = bool(_arg(args, kwargs, 5, "training", False))
    eps = float(_arg(args, kwargs, 7, "eps", 1e-5))
    if not training and running_mean is not None and running_var is not None:
        return AS_LINEAR
    dims = (0,) + tuple(range(2, x.dim()))
    return _channel_affine(normalise(ctx, x, dims, eps), weight, bias)


def _instance_norm(ctx, func, args, kwargs, consts):
    x = args[0]
    _running_mean, _running_var = _arg(args, kwargs, 1, "running_mean"), _arg(args, kwargs, 2, "running_var")
    weight, bias = _arg(args, kwargs, 3, "weight"), _arg(args, kwargs, 4, "bias")
    use_input_stats = bool(_arg(args, kwargs, 5, "use_input_stats", True))
    eps = float(_arg(args, kwargs, 7, "eps", 1e-5))
    if not use_input_stats:
        return AS_LINEAR
    dims = tuple(range(2, x.dim()))
    return _channel_affine(normalise(ctx, x, dims, eps), weight, bias)


def _norm_p(ctx, func, args, kwargs, consts):
    """Vector norms: ``sqrt(sum(x * x))`` (p = 2), ``sum(|x|)`` (p = 1),
    ``amax(|x|)`` (p = inf)."""
    name = getattr(func, "__name__", "")
    x = args[0]
    if name == "vector_norm":
        p = _arg(args, kwargs, 1, "ord", 2)
        dim = _arg(args, kwargs, 2, "dim")
        keepdim = bool(_arg(args, kwargs, 3, "keepdim", False))
    else:
        p = _arg(args, kwargs, 1, "p", "fro")
        dim = _arg(args, kwargs, 2, "dim")
        keepdim = bool(_arg(args, kwargs, 3, "keepdim", False))
    if p in ("fro", None):
        p = 2
    if not isinstance(p, (int, float)) or kwargs.get("dtype") is not None:
        return NOT_DECOMPOSED
    dims = tuple(range(x.dim())) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    if p == 2:
        return torch.sqrt((x * x).sum(dims, keepdim=keepdim))
    if p == 1:
        return torch.abs(x).sum(dims, keepdim=keepdim)
    if math.isinf(p) and p > 0:
        return torch.amax(torch.abs(x), dims, keepdim=keepdim)
    return NOT_DECOMPOSED


def _var_std(ctx, func, args, kwargs, consts):
    name = getattr(func, "__name__", "")
    x = args[0]
    dim = _arg(args, kwargs, 1, "dim")
    if isinstance(dim, bool):  # legacy var(x, unbiased)
        return NOT_DECOMPOSED
    correction = kwargs.get("correction", None)
    if correction is None:
        unbiased = kwargs.get("unbiased", True)
        correction = 1 if unbiased else 0
    keepdim = bool(kwargs.get("keepdim", _arg(args, kwargs, 3, "keepdim", False)))
    dims = tuple(range(x.dim())) if dim is None else ((dim,) if isinstance(dim, int) else tuple(dim))
    count = math.prod(x.shape[d] for d in dims)
    mean = x.mean(dims, keepdim=True)
    c = x - mean
    var = (c * c).sum(dims, keepdim=keepdim) * (1.0 / max(count - float(correction), 1e-300))
    out = torch.sqrt(var) if "std" in name else var
    if name.endswith("_mean"):
        return out, mean if keepdim else mean.squeeze(dims) if dims else mean
    return out


# ---------------------------------------------------------------------------
# softmax family (shared shift)
# ---------------------------------------------------------------------------
def _softmax_dim(args, kwargs, x: Tensor) -> int:
    dim = _arg(args, kwargs, 1, "dim")
    if dim is None:  # legacy implicit dim
        dim = 0 if x.dim() in (0, 1, 3) else 1
    return int(dim) % max(x.dim(), 1)


def _softmax_constants(args, kwargs, ref_args, ref_kwargs) -> dict[str, Any]:
    """The shift: the larger of the two passes' maxima (one constant)."""
    x = args[0].detach()
    dim = _softmax_dim(args, kwargs, x)
    shift = x.amax(dim, keepdim=True)
    if ref_args is not None:
        ref = ref_args[0].detach()
        shift = torch.maximum(shift, ref.amax(dim, keepdim=True))
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return {"shift": shift}


def _softmax_apply(rule) -> bool:
    return getattr(rule, "softmax", "gradient") == "decompose"


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x.to(dtype) if dtype is not None else x


def _softmax(ctx, func, args, kwargs, consts):
    x = _cast(args[0], kwargs.get("dtype", args[3] if len(args) > 3 else None))
    dim = _softmax_dim(args, kwargs, x)
    e = torch.exp(x - consts["shift"].to(x.dtype))
    return e * torch.reciprocal(e.sum(dim, keepdim=True))


def _log_softmax(ctx, func, args, kwargs, consts):
    x = _cast(args[0], kwargs.get("dtype", args[3] if len(args) > 3 else None))
    dim = _softmax_dim(args, kwargs, x)
    shifted = x - consts["shift"].to(x.dtype)
    return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))


def _logsumexp_constants(args, kwargs, ref_args, ref_kwargs) -> dict[str, Any]:
    x = args[0].detach()
    dim = _arg(args, kwargs, 1, "dim")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    shift = x.amax(dims, keepdim=True)
    if ref_args is not None:
        shift = torch.maximum(shift, ref_args[0].detach().amax(dims, keepdim=True))
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return {"shift": shift}


def _logsumexp(ctx, func, args, kwargs, consts):
    x = args[0]
    dim = _arg(args, kwargs, 1, "dim")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
    shift = consts["shift"].to(x.dtype)
    out = torch.log(torch.exp(x - shift).sum(dims, keepdim=True)) + shift
    return out if keepdim else out.squeeze(dims)


# ---------------------------------------------------------------------------
# affine ops with a product inside
# ---------------------------------------------------------------------------
def _scaled(t: Tensor, s: Any) -> Tensor:
    return t if s == 1 else t * s


def _add_product(ctx, func, args, kwargs, consts):
    """``beta * input + alpha * (b1 @ b2)`` (addmm, addbmm, baddbmm, addmv,
    addr) and ``input + value * t1 * t2`` / ``t1 / t2`` (addcmul, addcdiv)."""
    name = getattr(func, "__name__", "").rstrip("_")
    inp, t1, t2 = args[0], _arg(args, kwargs, 1, "tensor1"), _arg(args, kwargs, 2, "tensor2")
    if name in ("addcmul", "addcdiv"):
        value = kwargs.get("value", args[3] if len(args) > 3 else 1)
        prod = t1 * t2 if name == "addcmul" else t1 / t2
        return inp + _scaled(prod, value)
    if name in ("addmm", "addmv", "addr", "addbmm", "baddbmm"):
        t1 = _arg(args, kwargs, 1, {"addmm": "mat1", "addmv": "mat", "addr": "vec1"}.get(name, "batch1"))
        t2 = _arg(args, kwargs, 2, {"addmm": "mat2", "addmv": "vec", "addr": "vec2"}.get(name, "batch2"))
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
    dim = _arg(args, kwargs, 1, "dim")
    keepdim = bool(_arg(args, kwargs, 2, "keepdim", False))
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
    dim = int(_arg(args, kwargs, 1, "dim", -1))
    a, b = x.chunk(2, dim)
    return a * torch.sigmoid(b)


def _lerp(ctx, func, args, kwargs, consts):
    start, end, weight = args[0], _arg(args, kwargs, 1, "end"), _arg(args, kwargs, 2, "weight")
    if not ctx.tainted(weight):
        return AS_LINEAR
    return start + weight * (end - start)


def _bilinear(ctx, func, args, kwargs, consts):
    x1, x2, weight = args[0], args[1], args[2]
    bias = _arg(args, kwargs, 3, "bias")
    t = torch.einsum("...i,kij->...kj", x1, weight)
    y = torch.einsum("...kj,...j->...k", t, x2)
    return y + bias if bias is not None else y


# ---------------------------------------------------------------------------
# recurrent networks (torch.lstm / gru / rnn_tanh / rnn_relu and the cells)
# ---------------------------------------------------------------------------
def lstm_cell(
    x_proj: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """One LSTM step from the input projection ``x W_ih^T + b_ih``."""
    gates = x_proj + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def gru_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step (torch's formulation: ``n = tanh(x_n + r * (W_hn h + b_hn))``)."""
    hp = F.linear(h, w_hh, b_hh)
    xr, xz, xn = x_proj.chunk(3, -1)
    hr, hz, hn = hp.chunk(3, -1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def rnn_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, act: Callable) -> Tensor:
    return act(x_proj + F.linear(h, w_hh, b_hh))


def _step(kind: str, proj: Tensor, h: Tensor, c: Tensor | None, w_hh, b_hh, w_hr) -> tuple[Tensor, Tensor | None]:
    """One time step of an LSTM / GRU / RNN from the input projection."""
    if kind == "lstm":
        assert c is not None  # an LSTM's hx is (h0, c0)
        return lstm_cell(proj, h, c, w_hh, b_hh, w_hr)
    if kind == "gru":
        return gru_cell(proj, h, w_hh, b_hh), None
    return rnn_cell(proj, h, w_hh, b_hh, torch.tanh if kind == "rnn_tanh" else torch.relu), None


def _rnn_layers(kind, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, run):
    """The layers and directions of a fused RNN (weights, projections,
    inter-layer dropout, final states); ``run(proj, h, c, step, reverse)``
    runs one direction over the projected input and returns
    ``(outputs, h, c)``. ``x`` is time-major (padded) or packed data."""
    h0, c0 = hx if kind == "lstm" else (hx, None)
    dirs = 2 if bidirectional else 1
    n_per = len(params) // (num_layers * dirs)
    layer_input = x
    h_out: list[Tensor] = []
    c_out: list[Tensor] = []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            p = params[k * n_per : (k + 1) * n_per]
            w_hh = p[1]
            b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
            w_hr = p[4 if has_biases else 2] if kind == "lstm" and len(p) in (3, 5) else None

            def step(proj_t, h, c, w_hh=w_hh, b_hh=b_hh, w_hr=w_hr):
                return _step(kind, proj_t, h, c, w_hh, b_hh, w_hr)

            y, h, c = run(F.linear(layer_input, p[0], b_ih), h0[k], None if c0 is None else c0[k], step, d == 1)
            outs.append(y)
            h_out.append(h)
            if c is not None:
                c_out.append(c)
        layer_input = torch.cat(outs, -1) if dirs > 1 else outs[0]
        if dropout and train and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, True)
    if kind == "lstm":
        return layer_input, torch.stack(h_out, 0), torch.stack(c_out, 0)
    return layer_input, torch.stack(h_out, 0)


def _run_padded(proj, h, c, step, reverse):
    """One direction over a time-major ``(T, B, 4H)`` projection."""
    ys: list[Tensor] = [proj] * proj.shape[0]
    for t in reversed(range(proj.shape[0])) if reverse else range(proj.shape[0]):
        h, c = step(proj[t], h, c)
        ys[t] = h
    return torch.stack(ys, 0), h, c


def _run_packed(batch_sizes: list[int]):
    """One direction over packed data (``pack_padded_sequence``): at step
    ``t`` the first ``batch_sizes[t]`` sequences are active (torch sorts them
    by length); a finished sequence keeps its last state (forward direction),
    one not yet started holds ``h0`` (backward direction)."""
    starts = [0]
    for n in batch_sizes:
        starts.append(starts[-1] + n)

    def run(proj, h, c, step, reverse):
        ys: list[Tensor] = [proj] * len(batch_sizes)
        for t in reversed(range(len(batch_sizes))) if reverse else range(len(batch_sizes)):
            n = batch_sizes[t]
            h_t, c_t = step(proj[starts[t] : starts[t] + n], h[:n], None if c is None else c[:n])
            ys[t] = h_t
            h = torch.cat([h_t, h[n:]], 0)
            if c is not None and c_t is not None:
                c = torch.cat([c_t, c[n:]], 0)
        return torch.cat(ys, 0), h, c

    return run


def _rnn(kind: str):
    """Decomposition of the fused ``torch.lstm`` / ``gru`` / ``rnn_tanh`` /
    ``rnn_relu`` (multi-layer, bidirectional, batch_first, projections,
    packed sequences)."""

    def decompose(ctx, func, args, kwargs, consts):
        if len(args) < 2:
            return NOT_DECOMPOSED
        if isinstance(args[1], Tensor) and args[1].dtype == torch.int64 and len(args) == 9:
            # packed: (data, batch_sizes, hx, params, has_biases, layers, dropout, train, bidirectional)
            x, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional = args
            return _rnn_layers(
                kind,
                x,
                hx,
                params,
                has_biases,
                num_layers,
                dropout,
                train,
                bidirectional,
                run=_run_packed(batch_sizes.tolist()),
            )
        if kind == "lstm" and isinstance(args[1], Tensor):
            return NOT_DECOMPOSED
        x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args[:9]
        seq = x.transpose(0, 1) if batch_first else x  # (T, B, F)
        output, *states = _rnn_layers(
            kind, seq, hx, params, has_biases, num_layers, dropout, train, bidirectional, run=_run_padded
        )
        return (output.transpose(0, 1) if batch_first else output, *states)

    return decompose


def _rnn_cell(kind: str):
    def decompose(ctx, func, args, kwargs, consts):
        x, hx = _arg(args, kwargs, 0, "input"), _arg(args, kwargs, 1, "hx")
        w_ih, w_hh = _arg(args, kwargs, 2, "w_ih"), _arg(args, kwargs, 3, "w_hh")
        b_ih = _arg(args, kwargs, 4, "b_ih")
        b_hh = _arg(args, kwargs, 5, "b_hh")
        h, c = hx if kind == "lstm" else (hx, None)
        h, c = _step(kind, F.linear(x, w_ih, b_ih), h, c, w_hh, b_hh, None)
        return (h, c) if kind == "lstm" else h

    return decompose


# ---------------------------------------------------------------------------
# attention
# ---------------------------------------------------------------------------
def _sdpa(ctx, func, args, kwargs, consts):
    """``softmax(q k^T * scale + mask) v`` (masks, causal, GQA, dropout)."""
    q, k, v = _arg(args, kwargs, 0, "query"), _arg(args, kwargs, 1, "key"), _arg(args, kwargs, 2, "value")
    attn_mask = _arg(args, kwargs, 3, "attn_mask")
    dropout_p = float(_arg(args, kwargs, 4, "dropout_p", 0.0))
    is_causal = bool(_arg(args, kwargs, 5, "is_causal", False))
    scale = kwargs.get("scale", args[6] if len(args) > 6 else None)
    enable_gqa = bool(kwargs.get("enable_gqa", args[7] if len(args) > 7 else False))
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else float(scale)
    if enable_gqa and k.shape[-3] != q.shape[-3]:
        rep = q.shape[-3] // k.shape[-3]
        k = k.repeat_interleave(rep, -3)
        v = v.repeat_interleave(rep, -3)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if is_causal:
        causal = torch.ones(L, S, dtype=torch.bool, device=q.device).tril()
        scores = scores.masked_fill(~causal, float("-inf"))
    if attn_mask is not None:
        if attn_mask.dtype == torch.bool:
            scores = scores.masked_fill(~attn_mask, float("-inf"))
        else:
            scores = scores + attn_mask
    attn = torch.softmax(scores, -1)
    if dropout_p > 0:
        attn = F.dropout(attn, dropout_p, True)
    return torch.matmul(attn, v)


# ---------------------------------------------------------------------------
# the table rows: (name, decompose, function objects, constants, applies, gate)
# ---------------------------------------------------------------------------
def _fns(*pairs) -> list[Callable]:
    out = []
    for ns, names in pairs:
        for n in names.split():
            f = getattr(ns, n, None)
            if f is not None:
                out.append(f)
    return out


T, TT, FF, SP, LA = torch, torch.Tensor, F, torch.special, torch.linalg

COMPOSITES: list[tuple[str, Callable, list[Callable], Callable | None, Callable | None, bool]] = [
    (
        "div",
        _div,
        _fns(
            (T, "div divide true_divide"),
            (
                TT,
                "div divide true_divide __truediv__ __rtruediv__ "
                "__itruediv__ __div__ __rdiv__ __idiv__ div_ divide_ "
                "true_divide_",
            ),
        ),
        None,
        None,
        False,
    ),
    (
        "pow",
        _pow,
        _fns((T, "pow float_power"), (TT, "pow float_power __pow__ __rpow__ __ipow__ pow_ float_power_")),
        None,
        None,
        False,
    ),
    (
        "maximum",
        _binary_max,
        _fns((T, "maximum minimum fmax fmin"), (TT, "maximum minimum fmax fmin")),
        None,
        _maxima_apply,
        False,
    ),
    ("max", _reduce_max, _fns((T, "max min amax amin"), (TT, "max min amax amin")), None, _maxima_apply, False),
    ("clamp_tensor", _clamp_tensor, [], None, None, False),
    (
        "max_pool",
        _max_pool,
        _fns(
            (
                FF,
                "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices "
                "max_pool2d_with_indices max_pool3d_with_indices",
            ),
            (T, "max_pool1d max_pool2d max_pool3d max_pool1d_with_indices"),
            (torch._C._nn, "max_pool2d_with_indices max_pool3d_with_indices"),
        ),
        None,
        _maxima_apply,
        False,
    ),
    (
        "adaptive_max_pool",
        _adaptive_max_pool,
        _fns(
            (
                FF,
                "adaptive_max_pool1d adaptive_max_pool2d adaptive_max_pool3d adaptive_max_pool1d_with_indices "
                "adaptive_max_pool2d_with_indices adaptive_max_pool3d_with_indices",
            ),
            (T, "adaptive_max_pool1d"),
            (torch._C._nn, "adaptive_max_pool2d adaptive_max_pool3d"),
        ),
        None,
        _maxima_apply,
        False,
    ),
    ("layer_norm", _layer_norm, _fns((FF, "layer_norm"), (T, "layer_norm")), None, _norm_apply, False),
    ("rms_norm", _rms_norm, _fns((FF, "rms_norm"), (T, "rms_norm")), None, _norm_apply, False),
    ("group_norm", _group_norm, _fns((FF, "group_norm"), (T, "group_norm")), None, _norm_apply, False),
    ("batch_norm", _batch_norm, _fns((FF, "batch_norm"), (T, "batch_norm")), None, _norm_apply, False),
    ("instance_norm", _instance_norm, _fns((FF, "instance_norm"), (T, "instance_norm")), None, _norm_apply, False),
    ("norm", _norm_p, _fns((T, "norm"), (TT, "norm"), (LA, "vector_norm")), None, None, False),
    ("var", _var_std, _fns((T, "var std var_mean std_mean"), (TT, "var std")), None, None, False),
    (
        "softmax",
        _softmax,
        _fns((FF, "softmax"), (T, "softmax"), (TT, "softmax"), (SP, "softmax")),
        _softmax_constants,
        _softmax_apply,
        True,
    ),
    (
        "log_softmax",
        _log_softmax,
        _fns((FF, "log_softmax"), (T, "log_softmax"), (TT, "log_softmax"), (SP, "log_softmax")),
        _softmax_constants,
        _softmax_apply,
        False,
    ),
    (
        "logsumexp",
        _logsumexp,
        _fns((T, "logsumexp"), (TT, "logsumexp"), (SP, "logsumexp")),
        _logsumexp_constants,
        _softmax_apply,
        False,
    ),
    (
        "add_product",
        _add_product,
        _fns(
            (T, "addmm addbmm baddbmm addmv addr addcmul addcdiv"),
            (
                TT,
                "addmm addbmm baddbmm addmv addr addcmul addcdiv addmm_ addbmm_ "
                "baddbmm_ addmv_ addr_ addcmul_ addcdiv_",
            ),
        ),
        None,
        None,
        False,
    ),
    ("prod", _prod, _fns((T, "prod"), (TT, "prod")), None, None, False),
    ("glu", _glu, _fns((FF, "glu")), None, None, False),
    ("lerp", _lerp, _fns((T, "lerp"), (TT, "lerp lerp_")), None, None, False),
    ("bilinear", _bilinear, _fns((FF, "bilinear"), (T, "bilinear")), None, None, False),
    ("lstm", _rnn("lstm"), _fns((T, "lstm")), None, None, False),
    ("gru", _rnn("gru"), _fns((T, "gru")), None, None, False),
    ("rnn_tanh", _rnn("rnn_tanh"), _fns((T, "rnn_tanh")), None, None, False),
    ("rnn_relu", _rnn("rnn_relu"), _fns((T, "rnn_relu")), None, None, False),
    ("lstm_cell", _rnn_cell("lstm"), _fns((T, "lstm_cell")), None, None, False),
    ("gru_cell", _rnn_cell("gru"), _fns((T, "gru_cell")), None, None, False),
    ("rnn_tanh_cell", _rnn_cell("rnn_tanh"), _fns((T, "rnn_tanh_cell")), None, None, False),
    ("rnn_relu_cell", _rnn_cell("rnn_relu"), _fns((T, "rnn_relu_cell")), None, None, False),
    ("scaled_dot_product_attention", _sdpa, _fns((FF, "scaled_dot_product_attention")), None, None, False),
]

#: Python-level torch functions whose body is followed op by op.
TRANSPARENT: list[Callable] = _fns((FF, "multi_head_attention_forward softmin normalize local_response_norm"))

#: Element-wise functions that become composites when a bound is input-dependent.
CLAMP_TENSOR = _clamp_tensor
LERP = _lerp
