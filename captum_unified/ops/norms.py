r"""Normalisation: LayerNorm, RMSNorm, GroupNorm, InstanceNorm and BatchNorm
with batch statistics, vector norms, ``var`` / ``std``, and the scales
(:class:`RsqrtScale`, :class:`StdEpsScale`, :class:`MaxNormScale`) with which
the backend also recognises normalisations written by hand.

Every normalisation is :func:`normalise`: the centring ``c = x - mean`` (linear),
then :math:`y = c\,h(q(c))` with :math:`q` the mean square over the
normalised dimensions and :math:`h(q) = (q + \epsilon)^{-1/2}`. The rule's
``norm`` field chooses what :math:`y` backpropagates: a norm policy of
:data:`~captum_unified.rules.norms.NORM_POLICIES` (``"constant"``: the scale
held constant, Ali et al. 2022; ``"secant"`` and ``"integrated"``: exact and
bounded) through :meth:`~captum_unified.backend.RuleContext.normalised`;
``"decompose"``: ``c * rsqrt(mean(c * c) + eps)``, a product and an
element-wise ``rsqrt``, each with the rule (the Shapley split: exact, but
unbounded where the baseline's variance is about 0); ``"gradient"``: the
ordinary gradient. The fused kernel computes LayerNorm and RMSNorm in closed
form.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.canonizers import (
    gemma_rms_in_float32,
    rms_in_float32,
    rms_norm_float32,
    rms_norm_one_plus_weight_float32,
)
from captum_unified.ops.calls import arg, functions
from captum_unified.ops.fused import dense_partners, kernels_apply, multiplier
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import AS_LINEAR, NOT_DECOMPOSED
from captum_unified.rules import Rule
from captum_unified.rules.norms import NORM_POLICIES

__all__ = [
    "normalise",
    "norm_args",
    "affine",
    "fused_layer_norm",
    "fused_rms_norm",
    "RsqrtScale",
    "StdEpsScale",
    "MaxNormScale",
    "PATTERN_ROLES",
    "ROWS",
]


@dataclass(frozen=True)
class RsqrtScale:
    r""":math:`h(q) = (k q + \epsilon)^{-1/2}` (LayerNorm, RMSNorm, ``x *
    rsqrt(mean(x ** 2) + eps)``; ``k = n / (n - 1)`` for an unbiased variance)."""

    eps: float
    k: float = 1.0

    @property
    def floor(self) -> float:
        return self.eps / self.k

    def h(self, q: Tensor) -> Tensor:
        return torch.rsqrt(self.k * q + self.eps)

    def dh(self, q: Tensor) -> Tensor:
        return -0.5 * self.k * torch.rsqrt(self.k * q + self.eps) ** 3

    def secant(self, q: Tensor, rq: Tensor, hq: Tensor, hr: Tensor) -> Tensor:
        r"""The secant :math:`(h(q) - h(\bar q)) / (q - \bar q) = -k\,(h \bar h)^2
        / (h + \bar h)` (no cancellation; :math:`h'(q)` where :math:`q = \bar q`)."""
        return (hq * hr).square_().div_(hq + hr).mul_(-self.k)


@dataclass(frozen=True)
class StdEpsScale:
    r""":math:`h(q) = 1 / (\sqrt{k q} + \epsilon)` (``(x - mean) / (std + eps)``)."""

    eps: float
    k: float = 1.0

    @property
    def floor(self) -> float:
        return self.eps * self.eps / self.k

    def h(self, q: Tensor) -> Tensor:
        return 1 / (torch.sqrt(self.k * q) + self.eps)

    def dh(self, q: Tensor) -> Tensor:
        s = torch.sqrt(self.k * q).clamp_min(1e-150)
        return -0.5 * self.k / (s * (s + self.eps) ** 2)


@dataclass(frozen=True)
class MaxNormScale:
    r""":math:`h(q) = 1 / \max(\sqrt{k q}, \epsilon)` (``F.normalize``: ``k = n``)."""

    eps: float
    k: float = 1.0

    @property
    def floor(self) -> float:
        return self.eps * self.eps / self.k

    def h(self, q: Tensor) -> Tensor:
        return 1 / torch.sqrt(self.k * q).clamp_min(self.eps)

    def dh(self, q: Tensor) -> Tensor:
        s = torch.sqrt(self.k * q)
        return torch.where(s > self.eps, -0.5 * self.k / s.clamp_min(1e-150) ** 3, torch.zeros_like(s))


#: The parts ops play in a normalisation written by hand, by op-table name
#: (read by :mod:`captum_unified.backend.norm_patterns`).
PATTERN_ROLES: Mapping[str, str] = MappingProxyType(
    {
        **dict.fromkeys(
            ("Tensor.to", "Tensor.float", "Tensor.double", "Tensor.type_as", "Tensor.contiguous", "Tensor.clone"),
            "alias",
        ),
        "torch.clone": "alias",
        "Tensor.expand": "expand",
        "Tensor.expand_as": "expand",
        "square": "square",
        "pow": "pow",
        "mul": "mul",
        "div": "div",
        **dict.fromkeys(("torch.mean", "Tensor.mean"), "mean"),
        **dict.fromkeys(("torch.sum", "Tensor.sum"), "sum"),
        **dict.fromkeys(("torch.add", "Tensor.add", "Tensor.__add__", "Tensor.__radd__"), "add"),
        **dict.fromkeys(("torch.sub", "Tensor.sub", "Tensor.__sub__", "torch.subtract", "Tensor.subtract"), "sub"),
        "var": "var",
        "norm": "norm2",
        "clamp_min": "clamp_min",
        "clamp": "clamp_min",
        "rsqrt": "rsqrt",
        "sqrt": "sqrt",
        "reciprocal": "reciprocal",
    }
)


def _rms(t: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """``t * rsqrt(mean(t * t) + eps)`` over ``dims``."""
    return t * torch.rsqrt((t * t).mean(dims, keepdim=True) + eps)


def _norm_apply(rule: Rule) -> bool:
    if rule.norm not in NORM_POLICIES and rule.norm not in ("decompose", "gradient"):
        choices = (*NORM_POLICIES, "decompose", "gradient")
        raise ValueError(f"{type(rule).__name__}.norm is {rule.norm!r}; choose one of {choices}.")
    return rule.norm != "gradient"


def _scale(ctx, var_plus_eps: Tensor) -> Tensor:
    """``rsqrt(var + eps)``; a constant under the ``norm="constant"`` choice
    (Ali et al. 2022: LayerNorm's scale treated as a constant)."""
    r = torch.rsqrt(var_plus_eps)
    return r.detach() if ctx.rule.norm == "constant" else r


def normalise(
    ctx, x: Tensor, dims: tuple[int, ...], eps: float, centre: bool = True, name: str = "layer_norm"
) -> Tensor:
    """``(x - mean) * rsqrt(var + eps)`` over ``dims`` (biased variance), with
    the rule's norm policy (see the module docstring)."""
    c = x - x.mean(dims, keepdim=True) if centre else x
    if ctx.rule.norm in NORM_POLICIES:
        return ctx.normalised(name, c, dims, RsqrtScale(eps), lambda t: _rms(t, dims, eps))
    var = (c * c).mean(dims, keepdim=True)
    return c * _scale(ctx, var + eps)


def norm_args(args, kwargs, rms: bool) -> tuple[Tensor, tuple[int, ...], Any, Any, float]:
    """``(x, dims, weight, bias, eps)`` of an ``F.layer_norm`` / ``F.rms_norm``
    call (``bias`` is None for RMSNorm; its default eps is the dtype's)."""
    x = args[0]
    shape = arg(args, kwargs, 1, "normalized_shape")
    dims = tuple(range(-(1 if isinstance(shape, int) else len(shape)), 0))
    weight = arg(args, kwargs, 2, "weight")
    if rms:
        eps = arg(args, kwargs, 3, "eps")
        return x, dims, weight, None, torch.finfo(x.dtype).eps if eps is None else float(eps)
    return x, dims, weight, arg(args, kwargs, 3, "bias"), float(arg(args, kwargs, 4, "eps", 1e-5))


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
    return affine(normalise(ctx, x, dims, eps, centre=False, name="rms_norm"), weight, None)


def _channel_affine(y: Tensor, weight: Tensor | None, bias: Tensor | None) -> Tensor:
    view = (1, -1) + (1,) * (y.dim() - 2)
    if weight is not None:
        y = y * weight.reshape(view)
    if bias is not None:
        y = y + bias.reshape(view)
    return y


def _group_norm(ctx, func, args, kwargs, consts):
    x = args[0]
    groups = int(arg(args, kwargs, 1, "num_groups"))
    weight, bias = arg(args, kwargs, 2, "weight"), arg(args, kwargs, 3, "bias")
    eps = float(arg(args, kwargs, 4, "eps", 1e-5))
    n = x.shape[0]
    g = x.reshape(n, groups, -1)
    y = normalise(ctx, g, (-1,), eps, name="group_norm").reshape(x.shape)
    return _channel_affine(y, weight, bias)


def _batch_norm(ctx, func, args, kwargs, consts):
    """Batch statistics (train mode, or no running statistics); in eval mode
    BatchNorm is an affine map and keeps its gradient."""
    x = args[0]
    running_mean, running_var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    training = bool(arg(args, kwargs, 5, "training", False))
    eps = float(arg(args, kwargs, 7, "eps", 1e-5))
    if not training and running_mean is not None and running_var is not None:
        return AS_LINEAR
    dims = (0,) + tuple(range(2, x.dim()))
    return _channel_affine(normalise(ctx, x, dims, eps, name="batch_norm"), weight, bias)


def _instance_norm(ctx, func, args, kwargs, consts):
    x = args[0]
    _running_mean, _running_var = arg(args, kwargs, 1, "running_mean"), arg(args, kwargs, 2, "running_var")
    weight, bias = arg(args, kwargs, 3, "weight"), arg(args, kwargs, 4, "bias")
    use_input_stats = bool(arg(args, kwargs, 5, "use_input_stats", True))
    eps = float(arg(args, kwargs, 7, "eps", 1e-5))
    if not use_input_stats:
        return AS_LINEAR
    dims = tuple(range(2, x.dim()))
    return _channel_affine(normalise(ctx, x, dims, eps, name="instance_norm"), weight, bias)


def _norm_p(ctx, func, args, kwargs, consts):
    """Vector norms: ``sqrt(sum(x * x))`` (p = 2), ``sum(|x|)`` (p = 1),
    ``amax(|x|)`` (p = inf)."""
    name = getattr(func, "__name__", "")
    x = args[0]
    if name == "vector_norm":
        p = arg(args, kwargs, 1, "ord", 2)
        dim = arg(args, kwargs, 2, "dim")
        keepdim = bool(arg(args, kwargs, 3, "keepdim", False))
    else:
        p = arg(args, kwargs, 1, "p", "fro")
        dim = arg(args, kwargs, 2, "dim")
        keepdim = bool(arg(args, kwargs, 3, "keepdim", False))
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
    dim = arg(args, kwargs, 1, "dim")
    if isinstance(dim, bool):  # legacy var(x, unbiased)
        return NOT_DECOMPOSED
    correction = kwargs.get("correction", None)
    if correction is None:
        unbiased = kwargs.get("unbiased", True)
        correction = 1 if unbiased else 0
    keepdim = bool(kwargs.get("keepdim", arg(args, kwargs, 3, "keepdim", False)))
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
# the fused kernel (LayerNorm / RMSNorm)
# ---------------------------------------------------------------------------
def _rsqrt_d(z: Tensor, r: Tensor) -> Tensor:
    return -0.5 * r * r * r


def _norm_parts(x: Tensor, dims: tuple[int, ...], eps: float, centre: bool):
    c = x - x.mean(dims, keepdim=True) if centre else x
    d = (c * c).mean(dims, keepdim=True) + eps
    return c, d, torch.rsqrt(d)


class _NormRule(torch.autograd.Function):
    """``y = c * rsqrt(mean(c * c) + eps)`` with ``c = x - mean(x)`` (or ``x``):
    the rule's product partners at ``c * c`` and ``c * r`` and its multiplier
    at ``rsqrt`` (the decomposition of :func:`normalise`)."""

    @staticmethod
    def forward(ctx, x, ref_x, dims, eps, centre, rule):
        c, d, r = _norm_parts(x, dims, eps, centre)
        rc, rd, rr = _norm_parts(ref_x, dims, eps, centre) if ref_x is not None else (None, None, None)
        p_sq_u, p_sq_v = dense_partners(rule, c, c, rc, rc)
        m_r = multiplier(rule, "rsqrt", torch.rsqrt, _rsqrt_d, d, r, rd, rr)
        p_c, p_r = dense_partners(rule, c, r, rc, rr)
        ctx.save_for_backward(p_sq_u + p_sq_v, m_r, p_c, p_r)
        ctx.dims, ctx.centre = dims, centre
        ctx.count = 1
        for k in dims:
            ctx.count *= x.shape[k]
        return c * r

    @staticmethod
    def backward(ctx, g):
        sq, m_r, p_c, p_r = ctx.saved_tensors
        dims = ctx.dims
        g_r = (g * p_r).sum(dims, keepdim=True)
        g_c = g * p_c + (g_r * m_r / ctx.count) * sq
        if ctx.centre:
            g_c = g_c - g_c.mean(dims, keepdim=True)
        return g_c, None, None, None, None, None


def _norm_common(ctx, x, ref_x, dims, eps, centre):
    rule = ctx.rule
    if not kernels_apply(ctx) or (rule.needs_reference and ref_x is None):
        return NOT_DECOMPOSED
    norm = rule.norm
    if norm in NORM_POLICIES:
        c = x - x.mean(dims, keepdim=True) if centre else x
        ref = None
        if ref_x is not None:
            rc = ref_x - ref_x.mean(dims, keepdim=True) if centre else ref_x
            ref = (rc, _rms(rc, dims, eps))
        name = "layer_norm" if centre else "rms_norm"
        return ctx.normalised(name, c, dims, RsqrtScale(eps), lambda t: _rms(t, dims, eps), ref=ref)
    if norm != "decompose":
        return NOT_DECOMPOSED
    ctx.note_elementwise("rsqrt", torch.rsqrt, x)
    ctx.note_product("mul", gates=(False, False))
    if not (torch.is_grad_enabled() and x.requires_grad):
        c, _, r = _norm_parts(x, dims, eps, centre)
        return c * r
    return _NormRule.apply(x, ref_x, dims, eps, centre, rule)


def _fused_norm(ctx, args, kwargs, ref_args, rms: bool):
    x, dims, weight, bias, eps = norm_args(args, kwargs, rms)
    y = _norm_common(ctx, x, None if ref_args is None else ref_args[0], dims, eps, not rms)
    return y if y is NOT_DECOMPOSED else affine(y, weight, bias)


def _rms_norm_float32_args(args, kwargs) -> tuple[Tensor, tuple[int, ...], float]:
    shape = arg(args, kwargs, 1, "normalized_shape")
    return args[0], tuple(range(-len(shape), 0)), float(arg(args, kwargs, 2, "eps"))


def _rms_norm_float32(ctx, func, args, kwargs, consts):
    """One normalisation of the input as it is, with the rule's norm policy and
    the module's own float32 arithmetic for its value; op by op (the cast, the
    float32 ops) under the other norm choices."""
    x, dims, eps = _rms_norm_float32_args(args, kwargs)

    def value(t: Tensor) -> Tensor:
        return rms_in_float32(t, dims, eps)

    if ctx.rule.norm in NORM_POLICIES:
        return ctx.normalised("rms_norm", x, dims, RsqrtScale(eps), value)
    return value(x)


def _gemma_norm_float32(ctx, func, args, kwargs, consts):
    """As :func:`_rms_norm_float32`, the scale ``1 + weight`` a constant after
    the normalisation: the policy's normalisation is the module's value divided
    by it (so the two multiplied give the module's value to float64's rounding)."""
    x, weight = args[0], arg(args, kwargs, 1, "weight")
    eps, dims = float(arg(args, kwargs, 2, "eps")), (-1,)

    def value(t: Tensor) -> Tensor:
        return gemma_rms_in_float32(t, weight, dims, eps)

    if ctx.rule.norm not in NORM_POLICIES:
        return value(x)
    with ctx.suspended():
        scale = (1.0 + weight.detach().float()).to(x.dtype)
        scale = torch.where(scale == 0, torch.ones_like(scale), scale)  # there the value is 0 either way
    return ctx.normalised("rms_norm", x, dims, RsqrtScale(eps), lambda t: value(t) / scale) * scale


def fused_layer_norm(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """``F.layer_norm`` with the context's rule (the affine part stays linear)."""
    return _fused_norm(ctx, args, kwargs, ref_args, rms=False)


def fused_rms_norm(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """``F.rms_norm`` with the context's rule."""
    return _fused_norm(ctx, args, kwargs, ref_args, rms=True)


T, TT, FF, LA = torch, torch.Tensor, F, torch.linalg

#: The normalisations (decomposed unless the rule's ``norm`` is ``"gradient"``) and the vector norms / variances.
ROWS: tuple[CompositeOp, ...] = (
    CompositeOp(
        "layer_norm",
        _layer_norm,
        functions((FF, "layer_norm"), (T, "layer_norm")),
        applies=_norm_apply,
        fused=fused_layer_norm,
    ),
    CompositeOp(
        "rms_norm", _rms_norm, functions((FF, "rms_norm"), (T, "rms_norm")), applies=_norm_apply, fused=fused_rms_norm
    ),
    CompositeOp("rms_norm_float32", _rms_norm_float32, (rms_norm_float32,), applies=_norm_apply),
    CompositeOp(
        "rms_norm_one_plus_weight_float32",
        _gemma_norm_float32,
        (rms_norm_one_plus_weight_float32,),
        applies=_norm_apply,
    ),
    CompositeOp("group_norm", _group_norm, functions((FF, "group_norm"), (T, "group_norm")), applies=_norm_apply),
    CompositeOp("batch_norm", _batch_norm, functions((FF, "batch_norm"), (T, "batch_norm")), applies=_norm_apply),
    CompositeOp(
        "instance_norm", _instance_norm, functions((FF, "instance_norm"), (T, "instance_norm")), applies=_norm_apply
    ),
    CompositeOp("norm", _norm_p, functions((T, "norm"), (TT, "norm"), (LA, "vector_norm"))),
    CompositeOp("var", _var_std, functions((T, "var std var_mean std_mean"), (TT, "var std"))),
)
