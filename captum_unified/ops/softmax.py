r"""Softmax, log-softmax and ``logsumexp``.

The rule's ``softmax`` field chooses the decomposition:

* ``"logsumexp"``: :math:`u = z - \mathrm{LSE}(z)` (log-softmax) and
  :math:`\mathrm{softmax}(z) = \exp(u)`: ``LSE`` with the rule's
  :meth:`~captum_unified.rules.Rule.lse_weights`
  (:meth:`~captum_unified.backend.RuleContext.logsumexp`), ``exp`` with its
  element-wise multiplier. For DeepLIFT both are bounded whatever the logits
  (:mod:`captum_unified.rules.logsumexp`).
* ``"shift"``: ``softmax(z) = exp(z - c) * reciprocal(sum exp(z - c))``:
  element-wise functions and one product, each with the rule. The shift
  :math:`c` is a constant of the decomposition and must be the same in both
  passes, so it is computed once from both (``constants``: the larger of the
  two maxima). Exact in real arithmetic; in floating point its two halves grow
  like :math:`e^{\text{gap}}` (kept for comparison).

Either way the input pass recomputes the baseline side itself (the rows are
*paired*), and the fused kernel computes the same in closed form (softmax and
log-softmax).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.calls import arg, functions
from captum_unified.ops.fused import dense_partners, kernels_apply, multiplier
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import NOT_DECOMPOSED
from captum_unified.rules import OpCall, Rule
from captum_unified.rules.logsumexp import logsumexp_kept

__all__ = ["softmax_dim", "softmax_constants", "logsumexp_constants", "fused_softmax", "fused_log_softmax", "ROWS"]


def softmax_dim(args, kwargs, x: Tensor) -> int:
    dim = arg(args, kwargs, 1, "dim")
    if dim is None:  # legacy implicit dim
        dim = 0 if x.dim() in (0, 1, 3) else 1
    return int(dim) % max(x.dim(), 1)


def softmax_constants(args, kwargs, ref_args, ref_kwargs) -> dict[str, Any]:
    """The shift: the larger of the two passes' maxima (one constant)."""
    x = args[0].detach()
    dim = softmax_dim(args, kwargs, x)
    shift = x.amax(dim, keepdim=True)
    if ref_args is not None:
        ref = ref_args[0].detach()
        shift = torch.maximum(shift, ref.amax(dim, keepdim=True))
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return {"shift": shift}


SOFTMAX_CHOICES = ("logsumexp", "shift", "gradient")


def _softmax_apply(rule: Rule) -> bool:
    if rule.softmax not in SOFTMAX_CHOICES:
        raise ValueError(f"{type(rule).__name__}.softmax is {rule.softmax!r}; choose one of {SOFTMAX_CHOICES}.")
    return rule.softmax != "gradient"


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x.to(dtype) if dtype is not None else x


def _softmax(ctx, func, args, kwargs, consts):
    x = _cast(args[0], kwargs.get("dtype", args[3] if len(args) > 3 else None))
    dim = softmax_dim(args, kwargs, x)
    if ctx.rule.softmax != "shift":
        return torch.exp(x - ctx.logsumexp(x, dim))
    e = torch.exp(x - consts["shift"].to(x.dtype))
    return e * torch.reciprocal(e.sum(dim, keepdim=True))


def _log_softmax(ctx, func, args, kwargs, consts):
    x = _cast(args[0], kwargs.get("dtype", args[3] if len(args) > 3 else None))
    dim = softmax_dim(args, kwargs, x)
    if ctx.rule.softmax != "shift":
        return x - ctx.logsumexp(x, dim)
    shifted = x - consts["shift"].to(x.dtype)
    return shifted - torch.log(torch.exp(shifted).sum(dim, keepdim=True))


def logsumexp_constants(args, kwargs, ref_args, ref_kwargs) -> dict[str, Any]:
    x = args[0].detach()
    dim = arg(args, kwargs, 1, "dim")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    shift = x.amax(dims, keepdim=True)
    if ref_args is not None:
        shift = torch.maximum(shift, ref_args[0].detach().amax(dims, keepdim=True))
    shift = torch.where(torch.isfinite(shift), shift, torch.zeros_like(shift))
    return {"shift": shift}


def _logsumexp(ctx, func, args, kwargs, consts):
    x = args[0]
    dim = arg(args, kwargs, 1, "dim")
    dims = (dim,) if isinstance(dim, int) else tuple(dim)
    keepdim = bool(arg(args, kwargs, 2, "keepdim", False))
    if ctx.rule.softmax != "shift":
        dims = tuple(sorted(d % max(x.dim(), 1) for d in dims))
        rest = [d for d in range(x.dim()) if d not in dims]
        flat = x.permute(*rest, *dims).reshape(*(x.shape[d] for d in rest), -1)
        out = ctx.logsumexp(flat, -1).reshape([1 if d in dims else x.shape[d] for d in range(x.dim())])
        return out if keepdim else out.squeeze(dims)
    shift = consts["shift"].to(x.dtype)
    out = torch.log(torch.exp(x - shift).sum(dims, keepdim=True)) + shift
    return out if keepdim else out.squeeze(dims)


# ---------------------------------------------------------------------------
# the fused kernel
# ---------------------------------------------------------------------------
def _exp_d(z: Tensor, e: Tensor) -> Tensor:
    return e


def _recip_d(z: Tensor, r: Tensor) -> Tensor:
    return -r * r


def _log_d(t: Tensor, out: Tensor) -> Tensor:
    return 1 / t


def _softmax_parts(z: Tensor, shift: Tensor, dim: int) -> tuple[Tensor, Tensor, Tensor]:
    u = z - shift
    e = torch.exp(u)
    total = e.sum(dim, keepdim=True)
    return u, e, total


class _SoftmaxRule(torch.autograd.Function):
    """``s = exp(z - c) * reciprocal(sum exp(z - c))`` with the rule's
    multipliers at ``exp`` and ``reciprocal`` and its product partners."""

    @staticmethod
    def forward(ctx, z, ref_z, shift, dim, rule, log):
        u, e, total = _softmax_parts(z, shift, dim)
        ru, re, rtotal = _softmax_parts(ref_z, shift, dim) if ref_z is not None else (None, None, None)
        m_e = multiplier(rule, "exp", torch.exp, _exp_d, u, e, ru, re)
        if log:
            # log_softmax = u - log(sum e): the log's multiplier replaces the product
            lg = torch.log(total)
            r_lg = None if rtotal is None else torch.log(rtotal)
            m_l = multiplier(rule, "log", torch.log, _log_d, total, lg, rtotal, r_lg)
            ctx.save_for_backward(m_e, m_l)
            ctx.log, ctx.dim = True, dim
            return u - lg
        r = torch.reciprocal(total)
        rr = torch.reciprocal(rtotal) if rtotal is not None else None
        m_r = multiplier(rule, "reciprocal", torch.reciprocal, _recip_d, total, r, rtotal, rr)
        p_e, p_r = dense_partners(rule, e, r, re, rr)
        ctx.save_for_backward(m_e, m_r, p_e, p_r)
        ctx.log, ctx.dim = False, dim
        return e * r

    @staticmethod
    def backward(ctx, g):
        dim = ctx.dim
        if ctx.log:
            m_e, m_l = ctx.saved_tensors
            g_total = -(g.sum(dim, keepdim=True)) * m_l  # through log(sum exp(u))
            return g + g_total * m_e, None, None, None, None, None
        m_e, m_r, p_e, p_r = ctx.saved_tensors
        g_r = (g * p_r).sum(dim, keepdim=True)
        g_e = g * p_e + g_r * m_r
        return g_e * m_e, None, None, None, None, None


class _LogSumExpRule(torch.autograd.Function):
    r"""``u = z - LSE(z)`` (log-softmax) or ``exp(u)`` (softmax) with the
    rule's :meth:`~captum_unified.rules.Rule.lse_weights` ``m`` at ``LSE`` and
    its multiplier at ``exp``: backward :math:`g - m \sum g` of ``h = g * g_exp``.

    The output is torch's own ``softmax`` / ``log_softmax`` of ``z`` (what the
    model computes); the multipliers are computed, kept and applied in float64
    whatever ``z``'s dtype: in float32, ``z - LSE(z)`` at logits of 1e3 loses
    the digits of a probability near 1 (``LSE``'s rounding is :math:`10^{-4}`),
    and ``m`` must satisfy :math:`m \cdot \Delta z = \Delta\mathrm{LSE}` to
    far better than :math:`\epsilon |\Delta z|`."""

    @staticmethod
    def forward(ctx, z, ref_z, dim, rule, log):
        name = "log_softmax" if log else "softmax"
        # LSE of both passes in float64, once: the rule's m and exp's multiplier at u = z - LSE(z)
        # share them, and the float64 logits. From the float64 logits: float32 exponentials would do
        # for completeness but not for accuracy (exp's secant divides by the change of u)
        z64 = z.double()
        lse = logsumexp_kept(z64, dim)
        ref64 = ref_lse = None
        if ref_z is not None:
            ref64 = ref_z.double()  # a batch-1 baseline keeps its size
            ref_lse = logsumexp_kept(ref64, dim)
        m = rule.lse_weights(OpCall(name, lse=(lse, ref_lse), wide=(z64, ref64)), z, ref_z, dim).double()
        ctx.save_for_backward(m)
        ctx.log, ctx.dim = log, dim
        # the outputs: the model's own softmax / log-softmax (what completeness is measured against)
        if log:
            return torch.log_softmax(z, dim)
        y = torch.softmax(z, dim)
        # exp's multiplier at u = z - LSE(z) (float64)
        u = z64 - lse if z64 is z else z64.sub_(lse)  # z.double() is z itself for float64 logits
        ru = ref_y = None
        if ref64 is not None:
            ru, ref_y = ref64 - ref_lse, torch.softmax(ref_z, dim).double()
        ctx.g_exp = multiplier(rule, "exp", torch.exp, _exp_d, u, y.double(), ru, ref_y)
        return y

    @staticmethod
    def backward(ctx, g):
        dim = ctx.dim
        (m,) = ctx.saved_tensors
        h = g.double()
        if not ctx.log:
            h = h * ctx.g_exp if h is g else h.mul_(ctx.g_exp)  # never g in place
        return torch.addcmul(h, m, h.sum(dim, keepdim=True), value=-1.0).to(g.dtype), None, None, None, None


def _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log: bool):
    rule = ctx.rule
    if not kernels_apply(ctx) or (ref_args is None and rule.needs_reference):
        return NOT_DECOMPOSED
    dtype = kwargs.get("dtype", args[3] if len(args) > 3 else None)
    z = args[0] if dtype is None else args[0].to(dtype)
    rz = None if ref_args is None else (ref_args[0] if dtype is None else ref_args[0].to(dtype))
    dim = softmax_dim(args, kwargs, z)
    if rule.softmax != "shift":
        ctx.note_elementwise("exp", torch.exp, z)
        if not (torch.is_grad_enabled() and z.requires_grad):
            return func(*args, **kwargs)
        return _LogSumExpRule.apply(z, rz, dim, rule, log)
    if rz is None:
        return NOT_DECOMPOSED
    shift = softmax_constants((z,) + tuple(args[1:]), kwargs, (rz.expand(z.shape),), ref_kwargs)["shift"]
    ctx.note_elementwise("exp", torch.exp, z)
    ctx.note_elementwise("log" if log else "reciprocal", torch.log if log else torch.reciprocal, z)
    if not log:
        ctx.note_product("mul", gates=(False, False))
    if not (torch.is_grad_enabled() and z.requires_grad):
        return func(*args, **kwargs)
    return _SoftmaxRule.apply(z, rz, shift.to(z.dtype), dim, rule, log)


def fused_softmax(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """Softmax with the context's rule (needs the baseline pass)."""
    return _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log=False)


def fused_log_softmax(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """Log-softmax with the context's rule (needs the baseline pass)."""
    return _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log=True)


T, TT, FF, SP = torch, torch.Tensor, F, torch.special

#: softmax, log-softmax and logsumexp (decomposed unless the rule's ``softmax`` is ``"gradient"``).
ROWS: tuple[CompositeOp, ...] = (
    CompositeOp(
        "softmax",
        _softmax,
        functions((FF, "softmax"), (T, "softmax"), (TT, "softmax"), (SP, "softmax")),
        constants=softmax_constants,
        applies=_softmax_apply,
        gate=True,
        fused=fused_softmax,
    ),
    CompositeOp(
        "log_softmax",
        _log_softmax,
        functions((FF, "log_softmax"), (T, "log_softmax"), (TT, "log_softmax"), (SP, "log_softmax")),
        constants=softmax_constants,
        applies=_softmax_apply,
        fused=fused_log_softmax,
    ),
    CompositeOp(
        "logsumexp",
        _logsumexp,
        functions((T, "logsumexp"), (TT, "logsumexp"), (SP, "logsumexp")),
        constants=logsumexp_constants,
        applies=_softmax_apply,
    ),
)
