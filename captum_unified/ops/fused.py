r"""Fused implementations of composite ops for the shipped rules.

A composite's decomposition (:mod:`captum_unified.ops.composites`) is the
reference: written with torch ops, each piece treated by the backend. It is
exact but costs a Python dispatch per piece and time step. For the shipped
rules (:class:`~captum_unified.rules.RescaleRule`,
:class:`~captum_unified.rules.EpsilonLRPRule`) the same numbers come from a
closed form computed with a few vectorised tensor ops; that is what these
functions do. They return :data:`~captum_unified.ops.composites.NOT_DECOMPOSED`
whenever they do not apply (another rule, a changed op table, a call form they
do not cover), and the backend falls back to the decomposition.
``tests/ops/test_fused_ops.py`` checks that both give the same attributions.

Every function here is ``fused(ctx, func, args, kwargs, ref_args, ref_kwargs)``
where ``ref_*`` are the op's arguments in the baseline pass (``None`` without
one); they run with the backend's mode suspended.

The notation of an element-wise rule: ``m(z) = g(z)`` (Rescale's secant or
epsilon's quotient); of a product :math:`u \odot v`: the *partners* at which
:math:`\partial/\partial u` and :math:`\partial/\partial v` are taken
(:mod:`captum_unified.rules.products`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.composites import NOT_DECOMPOSED

__all__ = [
    "FusedRule",
    "fused_rule",
    "fused_lstm",
    "fused_softmax",
    "fused_log_softmax",
    "fused_layer_norm",
    "fused_rms_norm",
]


@dataclass(frozen=True)
class FusedRule:
    """The parts of a shipped rule the fused kernels need."""

    kind: str  # "rescale" or "epsilon"
    eps: float
    products: str  # "shapley", "gradient", "uniform", "gate"

    def multiplier(
        self,
        z: Tensor,
        out: Tensor,
        ref_z: Tensor | None,
        ref_out: Tensor | None,
        fprime: Callable[[Tensor, Tensor], Tensor],
    ) -> Tensor:
        """``g(z)`` exactly as the rule's ``multiplier`` computes it."""
        from captum_unified.rules.epsilon import epsilon_multiplier
        from captum_unified.rules.rescale import rescale_multiplier

        if self.kind == "epsilon":
            return epsilon_multiplier(z, out, self.eps)
        if ref_z is None or ref_out is None:
            raise RuntimeError("RescaleRule needs the reference pass (ref_z, ref_out).")
        return rescale_multiplier(z, out, ref_z, ref_out, self.eps, lambda: fprime(z, out))

    def partners(
        self, u: Tensor, v: Tensor, ref_u: Tensor | None, ref_v: Tensor | None, u_is_gate: bool = False
    ) -> tuple[Tensor | None, Tensor | None]:
        """``(P_u, P_v)``: ``d(u v)/du`` is taken at ``v = P_u``, ``d(u v)/dv``
        at ``u = P_v`` (``None``: no gradient)."""
        if self.products == "gradient":
            return v, u
        if self.products == "shapley":
            if ref_u is None or ref_v is None:
                raise RuntimeError(
                    "The 'shapley' product policy needs the baseline pass (a rule with needs_reference)."
                )
            return 0.5 * (v + ref_v), 0.5 * (u + ref_u)
        if self.products == "gate" and u_is_gate:
            return None, u
        return 0.5 * v, 0.5 * u  # uniform (and "gate" without a gate)


def fused_rule(ctx) -> FusedRule | None:
    """The :class:`FusedRule` of the context's rule if it is exactly a shipped
    rule and the op table treats the functions the kernels use as the default
    table does; else ``None`` (use the decomposition)."""
    from captum_unified.ops import default_op_table
    from captum_unified.rules import EpsilonLRPRule, RescaleRule

    rule = ctx.rule
    default = default_op_table()
    for f in (torch.sigmoid, torch.tanh, torch.exp, torch.reciprocal, torch.mul, torch.log):
        if ctx.table.lookup(f) is not default.lookup(f):
            return None
    if type(rule) is RescaleRule:
        return FusedRule("rescale", rule.eps, rule.products)
    if type(rule) is EpsilonLRPRule:
        return FusedRule("epsilon", rule.epsilon, rule.products)
    return None


def _sig_d(z: Tensor, s: Tensor) -> Tensor:
    return s * (1 - s)


def _tanh_d(z: Tensor, t: Tensor) -> Tensor:
    return 1 - t * t


def _exp_d(z: Tensor, e: Tensor) -> Tensor:
    return e


def _recip_d(z: Tensor, r: Tensor) -> Tensor:
    return -r * r


# ---------------------------------------------------------------------------
# LSTM
# ---------------------------------------------------------------------------
def _lstm_values(
    proj: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh: Tensor,
    b_hh: Tensor | None,
    w_hr: Tensor | None,
    xs: Tensor | None = None,
    w_ih: Tensor | None = None,
    b_ih: Tensor | None = None,
) -> dict[str, Tensor]:
    """The internals of one LSTM layer/direction over all steps (no graph).

    The hidden states come from torch's fused LSTM (``xs`` and ``w_ih`` given),
    the gates of all steps from one matrix product with the previous hidden
    states, and only the cell recursion ``c = f c + i g`` runs step by step."""
    steps = proj.shape[0]
    if xs is not None and w_ih is not None:
        params = [w_ih, w_hh]
        if b_ih is not None:
            assert b_hh is not None  # torch's LSTM has both biases or neither
            params += [b_ih, b_hh]
        if w_hr is not None:
            params.append(w_hr)
        hs, _, _ = torch.lstm(
            xs, (h.unsqueeze(0), c.unsqueeze(0)), params, b_ih is not None, 1, 0.0, False, False, False
        )
        prev = torch.cat([h.expand_as(hs[:1]), hs[:-1]], 0)
    else:  # step by step (the reference of a batch-1 baseline broadcasts the same way)
        hs_list, prev_list, cc = [], [], c
        for t in range(steps):
            prev_list.append(h)
            i, f, g, o = (proj[t] + F.linear(h, w_hh, b_hh)).chunk(4, -1)
            cc = torch.sigmoid(f) * cc + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(cc)
            if w_hr is not None:
                h = F.linear(h, w_hr)
            hs_list.append(h)
        hs, prev = torch.stack(hs_list), torch.stack(prev_list)
    a = proj + F.linear(prev, w_hh, b_hh)
    i, f, g, o = a.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    ig = i * g
    c_steps = [c.expand_as(ig[0])]
    for t in range(steps):
        c_steps.append(torch.addcmul(ig[t], f[t], c_steps[-1]))
    cs = torch.stack(c_steps)
    k = torch.tanh(cs[1:])
    return {"a": a, "gates": torch.cat([i, f, g, o], -1), "c": cs, "k": k, "h": hs}


class _LSTMRecurrence(torch.autograd.Function):
    """One LSTM layer/direction with the rule in closed form."""

    @staticmethod
    def forward(ctx, proj, h0, c0, w_hh, b_hh, w_hr, ref, rule, xs, w_ih, b_ih):
        v = _lstm_values(proj, h0, c0, w_hh, b_hh, w_hr, xs, w_ih, b_ih)
        hid = v["k"].shape[-1]
        a, gt = v["a"], v["gates"]
        r_a = ref["a"] if ref is not None else None
        r_gt = ref["gates"] if ref is not None else None

        def part(x, k):
            return None if x is None else x[..., k * hid : (k + 1) * hid]

        m = []
        for k, fprime in ((0, _sig_d), (1, _sig_d), (2, _tanh_d), (3, _sig_d)):
            m.append(rule.multiplier(part(a, k), part(gt, k), part(r_a, k), part(r_gt, k), fprime))
        m_i, m_f, m_g, m_o = m
        c, k_ = v["c"], v["k"]
        r_c = ref["c"] if ref is not None else None
        r_k = ref["k"] if ref is not None else None
        m_k = rule.multiplier(c[1:], k_, None if r_c is None else r_c[1:], r_k, _tanh_d)
        i, f, g, o = (part(gt, j) for j in range(4))
        ri, rf, rg, ro = (part(r_gt, j) for j in range(4))
        p_f, p_cprev = rule.partners(f, c[:-1], rf, None if r_c is None else r_c[:-1], u_is_gate=True)
        p_i, p_g = rule.partners(i, g, ri, rg, u_is_gate=True)
        p_o, p_k = rule.partners(o, k_, ro, r_k, u_is_gate=True)

        def times(p, mm):
            return torch.zeros_like(mm) if p is None else p * mm

        coef = torch.cat([times(p_i, m_i), times(p_f, m_f), times(p_g, m_g), times(p_o, m_o)], -1)
        b_k = (p_k * m_k) if p_k is not None else torch.zeros_like(m_k)
        f_c = p_cprev if p_cprev is not None else torch.zeros_like(m_k)
        ctx.save_for_backward(coef, b_k, f_c, w_hh, w_hr if w_hr is not None else w_hh.new_empty(0))
        ctx.has_proj = w_hr is not None
        return v["h"], v["h"][-1], c[-1]

    @staticmethod
    def backward(ctx, d_ys, d_hT, d_cT):
        coef, b_k, f_c, w_hh, w_hr = ctx.saved_tensors
        steps = coef.shape[0]
        dh = d_hT if d_hT is not None else torch.zeros_like(d_ys[-1])
        dc = d_cT if d_cT is not None else torch.zeros_like(b_k[-1])
        das: list[Tensor] = []  # from the last step back
        for t in range(steps - 1, -1, -1):
            g_h = dh + d_ys[t]
            dok = g_h @ w_hr if ctx.has_proj else g_h
            dc = dc + dok * b_k[t]
            da = torch.cat([dc, dc, dc, dok], -1) * coef[t]
            das.append(da)
            dh = da @ w_hh
            dc = dc * f_c[t]
        return torch.stack(das[::-1]), dh, dc, None, None, None, None, None, None, None, None


def fused_lstm(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """``torch.lstm`` (multi-layer, bidirectional, ``batch_first``,
    projections; not packed, no inter-layer dropout in train mode)."""
    rule = fused_rule(ctx)
    if rule is None or len(args) < 9 or isinstance(args[1], Tensor):
        return NOT_DECOMPOSED
    x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args[:9]
    if dropout and train and num_layers > 1:
        return NOT_DECOMPOSED
    if rule.kind == "rescale" and ref_args is None:
        return NOT_DECOMPOSED
    ctx.note_elementwise("sigmoid", torch.sigmoid, x)
    ctx.note_elementwise("tanh", torch.tanh, x)
    ctx.note_product("mul", gates=(True, False))
    h0, c0 = hx
    seq = x.transpose(0, 1) if batch_first else x
    if ref_args is not None:
        rx, (rh0, rc0) = ref_args[0], ref_args[1]
        rseq = rx.transpose(0, 1) if batch_first else rx
    dirs = 2 if bidirectional else 1
    n_per = len(params) // (num_layers * dirs)
    layer_in, ref_in = seq, (rseq if ref_args is not None else None)
    h_out: list[Tensor] = []
    c_out: list[Tensor] = []
    for layer in range(num_layers):
        outs, ref_outs = [], []
        for d in range(dirs):
            kk = layer * dirs + d
            p = params[kk * n_per : (kk + 1) * n_per]
            w_ih, w_hh = p[0], p[1]
            b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
            w_hr = p[4 if has_biases else 2] if len(p) in (3, 5) else None
            xs = layer_in if d == 0 else layer_in.flip(0)
            proj = F.linear(xs, w_ih, b_ih)
            ref = None
            if ref_in is not None:
                with torch.no_grad():
                    rxs = ref_in if d == 0 else ref_in.flip(0)
                    ref = _lstm_values(F.linear(rxs, w_ih, b_ih), rh0[kk], rc0[kk], w_hh, b_hh, w_hr, rxs, w_ih, b_ih)
                ref_outs.append(ref["h"] if d == 0 else ref["h"].flip(0))
            ys, h_t, c_t = _LSTMRecurrence.apply(
                proj, h0[kk], c0[kk], w_hh, b_hh, w_hr, ref, rule, xs.detach(), w_ih, b_ih
            )
            outs.append(ys if d == 0 else ys.flip(0))
            h_out.append(h_t)
            c_out.append(c_t)
        layer_in = torch.cat(outs, -1) if dirs > 1 else outs[0]
        if ref_in is not None:
            ref_in = torch.cat(ref_outs, -1) if dirs > 1 else ref_outs[0]
    output = layer_in.transpose(0, 1) if batch_first else layer_in
    return output, torch.stack(h_out, 0), torch.stack(c_out, 0)


# ---------------------------------------------------------------------------
# softmax / log-softmax (Rescale: decomposed with a shared shift)
# ---------------------------------------------------------------------------
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
        m_e = rule.multiplier(u, e, ru, re, _exp_d)
        if log:
            # log_softmax = u - log(sum e): the log's multiplier replaces the product
            lg = torch.log(total)
            m_l = rule.multiplier(total, lg, rtotal, None if rtotal is None else torch.log(rtotal), lambda t, o: 1 / t)
            ctx.save_for_backward(m_e, m_l)
            ctx.log, ctx.dim = True, dim
            return u - lg
        r = torch.reciprocal(total)
        rr = torch.reciprocal(rtotal) if rtotal is not None else None
        m_r = rule.multiplier(total, r, rtotal, rr, _recip_d)
        p_e, p_r = rule.partners(e, r, re, rr, u_is_gate=False)
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


def _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log: bool):
    from captum_unified.ops.composites import _softmax_constants, _softmax_dim

    rule = fused_rule(ctx)
    if rule is None or rule.kind != "rescale" or ref_args is None:
        return NOT_DECOMPOSED
    dtype = kwargs.get("dtype", args[3] if len(args) > 3 else None)
    z = args[0] if dtype is None else args[0].to(dtype)
    rz = ref_args[0] if dtype is None else ref_args[0].to(dtype)
    dim = _softmax_dim(args, kwargs, z)
    shift = _softmax_constants((z,) + tuple(args[1:]), kwargs, (rz.expand(z.shape),), ref_kwargs)["shift"]
    ctx.note_elementwise("exp", torch.exp, z)
    ctx.note_elementwise("log" if log else "reciprocal", torch.log if log else torch.reciprocal, z)
    if not log:
        ctx.note_product("mul", gates=(False, False))
    if not (torch.is_grad_enabled() and z.requires_grad):
        return func(*args, **kwargs)
    return _SoftmaxRule.apply(z, rz, shift.to(z.dtype), dim, rule, log)


def fused_softmax(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """Softmax under the Rescale rule."""
    return _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log=False)


def fused_log_softmax(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """Log-softmax under the Rescale rule."""
    return _softmax_common(ctx, func, args, kwargs, ref_args, ref_kwargs, log=True)


# ---------------------------------------------------------------------------
# LayerNorm / RMSNorm
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
    at ``rsqrt`` (the decomposition of :func:`~captum_unified.ops.composites.normalise`)."""

    @staticmethod
    def forward(ctx, x, ref_x, dims, eps, centre, rule):
        c, d, r = _norm_parts(x, dims, eps, centre)
        rc, rd, rr = _norm_parts(ref_x, dims, eps, centre) if ref_x is not None else (None, None, None)
        p_sq_u, p_sq_v = rule.partners(c, c, rc, rc)
        m_r = rule.multiplier(d, r, rd, rr, _rsqrt_d)
        p_c, p_r = rule.partners(c, r, rc, rr)
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
    rule = fused_rule(ctx)
    if rule is None or (rule.kind == "rescale" and ref_x is None):
        return NOT_DECOMPOSED
    norm = getattr(ctx.rule, "norm", "")
    if norm == "constant":  # the scale is a constant (Ali et al. 2022)
        c = x - x.mean(dims, keepdim=True) if centre else x
        cd = c.detach()
        return c * torch.rsqrt((cd * cd).mean(dims, keepdim=True) + eps)
    if norm != "decompose":
        return NOT_DECOMPOSED
    ctx.note_elementwise("rsqrt", torch.rsqrt, x)
    ctx.note_product("mul", gates=(False, False))
    if not (torch.is_grad_enabled() and x.requires_grad):
        c, _, r = _norm_parts(x, dims, eps, centre)
        return c * r
    return _NormRule.apply(x, ref_x, dims, eps, centre, rule)


def _fused_norm(ctx, args, kwargs, ref_args, rms: bool):
    from captum_unified.ops.composites import affine, norm_args

    x, dims, weight, bias, eps = norm_args(args, kwargs, rms)
    y = _norm_common(ctx, x, None if ref_args is None else ref_args[0], dims, eps, not rms)
    return y if y is NOT_DECOMPOSED else affine(y, weight, bias)


def fused_layer_norm(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """``F.layer_norm`` under the shipped rules (the affine part stays linear)."""
    return _fused_norm(ctx, args, kwargs, ref_args, rms=False)


def fused_rms_norm(ctx, func, args, kwargs, ref_args, ref_kwargs):
    """``F.rms_norm`` under the shipped rules."""
    return _fused_norm(ctx, args, kwargs, ref_args, rms=True)
