r"""Fused kernels: composite ops in closed form, for any rule.

A composite's decomposition (:mod:`captum_unified.ops.composites`) is the
reference: written with torch ops, each piece treated by the backend. It is
exact but costs a Python dispatch per piece and time step. A fused kernel
computes the same numbers with a few vectorised tensor ops, calling the
context's rule exactly where the decomposition would: its
:meth:`~captum_unified.rules.Rule.multiplier` at every element-wise function
(with the :class:`~captum_unified.rules.OpCall` the decomposition's op would
get) and its :meth:`~captum_unified.rules.Rule.product_factors` at every
product. So every rule, a user's subclass or a new one, gets the fast path.

A kernel returns :data:`~captum_unified.ops.table.NOT_DECOMPOSED` whenever it
does not apply (a changed op table, a call form it does not cover), and the
backend falls back to the decomposition; ``OpTable.without_fused()`` forces
the decompositions. ``tests/ops/test_fused_ops.py`` checks that both give the
same attributions.

Every kernel is ``fused(ctx, func, args, kwargs, ref_args, ref_kwargs)`` where
``ref_*`` are the op's arguments in the baseline pass (``None`` without one);
they run with the backend's mode suspended. This module holds what they share
and the LSTM kernel; the softmax and normalisation kernels sit with their
decompositions (:mod:`~captum_unified.ops.softmax`, :mod:`~captum_unified.ops.norms`).

The notation of an element-wise rule: ``m(z) = g(z)`` (Rescale's secant or
epsilon's quotient); of a product :math:`u \odot v`: the *partners* at which
:math:`\partial/\partial u` and :math:`\partial/\partial v` are taken
(:mod:`captum_unified.rules.products`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.elementwise import elementwise_entries
from captum_unified.ops.products import product_entries
from captum_unified.ops.table import NOT_DECOMPOSED, OpEntry
from captum_unified.rules import OpCall, Rule

__all__ = ["kernels_apply", "multiplier", "partners", "dense_partners", "fused_lstm"]

#: The functions the kernels compute themselves instead of dispatching them.
_KERNEL_FUNCTIONS = (torch.sigmoid, torch.tanh, torch.exp, torch.reciprocal, torch.mul, torch.log)


def _shipped_entry(f: Callable) -> OpEntry | None:
    return elementwise_entries().get(f) or product_entries().get(f)


def kernels_apply(ctx) -> bool:
    """Whether the context's op table treats the functions the kernels
    compute (sigmoid, tanh, exp, reciprocal, mul, log) as the shipped table
    does; else the kernels do not apply (use the decomposition)."""
    table = ctx.table
    return all(table.lookup(f) is _shipped_entry(f) for f in _KERNEL_FUNCTIONS)


def multiplier(
    rule: Rule,
    name: str,
    f: Callable[[Tensor], Tensor],
    fprime: Callable[[Tensor, Tensor], Tensor],
    z: Tensor,
    out: Tensor,
    ref_z: Tensor | None,
    ref_out: Tensor | None,
) -> Tensor:
    """The rule's ``g(z)`` at the element-wise op ``name`` (``f``, closed-form
    derivative ``fprime``), as the backend would ask for it, with ``z``'s shape
    (a rule may return a multiplier that only broadcasts to it)."""
    g = rule.multiplier(f, z, out, ref_z, ref_out, op=OpCall(name, derivative=fprime))
    return g if g.shape == z.shape else g.expand_as(z)


def partners(
    rule: Rule, u: Tensor, v: Tensor, ref_u: Tensor | None, ref_v: Tensor | None, u_is_gate: bool = False
) -> tuple[Tensor | None, Tensor | None]:
    """``(P_u, P_v)`` from the rule's product policy at ``u * v``: ``d(u v)/du``
    is taken at ``v = P_u``, ``d(u v)/dv`` at ``u = P_v`` (``None``: no gradient)."""
    u_, v_ = rule.product_factors(OpCall("mul", gates=(u_is_gate, False)), u, v, ref_u, ref_v)
    return v_, u_


def dense_partners(
    rule: Rule, u: Tensor, v: Tensor, ref_u: Tensor | None, ref_v: Tensor | None
) -> tuple[Tensor, Tensor]:
    """:func:`partners` of a product of two non-gates, a partner without
    gradient (``None``) as zeros."""
    p_u, p_v = partners(rule, u, v, ref_u, ref_v)
    return (torch.zeros_like(v) if p_u is None else p_u), (torch.zeros_like(u) if p_v is None else p_v)


def _sig_d(z: Tensor, s: Tensor) -> Tensor:
    return s * (1 - s)


def _tanh_d(z: Tensor, t: Tensor) -> Tensor:
    return 1 - t * t


_SIGMOID = ("sigmoid", torch.sigmoid, _sig_d)
_TANH = ("tanh", torch.tanh, _tanh_d)


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
        for k, (name, fn, fprime) in enumerate((_SIGMOID, _SIGMOID, _TANH, _SIGMOID)):
            m.append(multiplier(rule, name, fn, fprime, part(a, k), part(gt, k), part(r_a, k), part(r_gt, k)))
        m_i, m_f, m_g, m_o = m
        c, k_ = v["c"], v["k"]
        r_c = ref["c"] if ref is not None else None
        r_k = ref["k"] if ref is not None else None
        m_k = multiplier(rule, *_TANH, c[1:], k_, None if r_c is None else r_c[1:], r_k)
        i, f, g, o = (part(gt, j) for j in range(4))
        ri, rf, rg, ro = (part(r_gt, j) for j in range(4))
        p_f, p_cprev = partners(rule, f, c[:-1], rf, None if r_c is None else r_c[:-1], u_is_gate=True)
        p_i, p_g = partners(rule, i, g, ri, rg, u_is_gate=True)
        p_o, p_k = partners(rule, o, k_, ro, r_k, u_is_gate=True)

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
    if not kernels_apply(ctx) or len(args) < 9 or isinstance(args[1], Tensor):
        return NOT_DECOMPOSED
    x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args[:9]
    if dropout and train and num_layers > 1:
        return NOT_DECOMPOSED
    rule = ctx.rule
    if rule.needs_reference and ref_args is None:
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
