r"""The dispatcher: what happens to one torch call inside a
:class:`~captum_unified.backend.RuleContext`.

:func:`dispatch` is the mode's ``__torch_function__``. A call none of whose
arguments depends on the explained inputs runs untouched. Otherwise the op
table classifies it and one handler per :class:`~captum_unified.ops.OpKind`
treats it:

* ``META`` -- runs untouched (a boolean result of input-dependent values is a
  *mask*);
* ``LINEAR`` -- runs untouched, the result is tainted (a gate stays a gate
  through the ops whose entry ``keeps_gate``);
* ``ELEMENTWISE`` -- the rule's :math:`g` (:meth:`RuleContext.elementwise`);
  a call in which another argument depends on the inputs uses the entry's
  ``fallback`` decomposition or is unknown;
* ``PRODUCT`` -- the entry splits the call into its factors (``split``,
  default :func:`~captum_unified.ops.products.split_factors`); two
  input-dependent factors get the rule's product policy
  (:meth:`RuleContext.product`), otherwise the op is linear;
* ``COMPOSITE`` -- the entry's decomposition (or fused kernel), unless the
  rule keeps the op's gradient (``applies``); a *paired* composite recomputes
  its baseline side with constants shared by both passes;
* ``TRANSPARENT`` (and Python-level torch functions not in the table) -- the
  function body runs op by op under the mode;
* not in the table -- *unknown*: ordinary gradient, reported by name.

Normalisations written by hand (``x * torch.rsqrt(x.pow(2).mean(-1,
keepdim=True) + eps)`` and the like) are recognised by
:class:`~captum_unified.backend.norm_patterns.NormPatterns` from the parts
their ops play (the op table's :data:`~captum_unified.ops.norms.PATTERN_ROLES`)
and computed with the rule's norm policy, as ``F.layer_norm`` is.

In-place and keyword calls are normalised first
(:mod:`~captum_unified.backend.calls`) and computed out of place, their result
copied back (:meth:`RuleContext.finish`). Nothing here knows an op by name:
every fact about an op comes from its table entry.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_unflatten

from captum_unified.backend.calls import python_torch_function, required, split_inplace, unwrapped, write_target
from captum_unified.backend.tape import Frame
from captum_unified.ops import AS_LINEAR, NOT_DECOMPOSED, OpEntry, OpKind, op_name
from captum_unified.ops.norms import PATTERN_ROLES
from captum_unified.ops.products import split_factors

if TYPE_CHECKING:  # the context imports this module (a type only)
    from captum_unified.backend.context import RuleContext

__all__ = ["dispatch"]


def dispatch(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    """Treat one torch call (see the module docstring)."""
    if ctx.finite is None and ctx.ledger is None:
        return _dispatch(ctx, func, args, kwargs)
    if ctx.ledger is not None:  # a relevance ledger records the call (backend/ledger_pass.py)
        return ctx.ledger.call(ctx, func, args, kwargs, _watched)
    return _watched(ctx, func, args, kwargs)


def _watched(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    if ctx.finite is None:
        return _dispatch(ctx, func, args, kwargs)
    result = _dispatch(ctx, func, args, kwargs)  # a diagnostic run: watch for NaN / inf
    if ctx.taints.any_tainted(args) or (kwargs and ctx.taints.any_tainted(kwargs.values())):
        ctx.finite.after(op_name(func), args, kwargs, result, lambda: _untouched(ctx, func, args, kwargs))
    return result


def _untouched(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    """The op computed as the model computes it (no rule): whether the model itself
    or the rule's treatment of the op produced a NaN or inf."""
    with ctx.suspended(), torch.no_grad():
        return func(*args, **kwargs)


def _dispatch(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    taints = ctx.taints
    if not (taints.any_tainted(args) or (kwargs and taints.any_tainted(kwargs.values()))):
        return func(*args, **kwargs)
    if ctx.tape.recording:
        target = write_target(func, args, kwargs)
        ctx.tape.protect(target if isinstance(target, (list, tuple)) else (target,))
    if taints.has_masks:
        mask, taint = taints.mask_args((*args, *kwargs.values()))
        if mask and not taint:  # mask.float(), ~mask, mask & other: still a mask
            result = func(*args, **kwargs)
            taints.mark_masks(result)
            return result
        if mask and ctx.depth == 0 and not ctx.tape.recording and ctx.rule.needs_reference:
            ctx.report.selection(op_name(func))
    entry = ctx.table.lookup(func)
    if entry is None:
        if python_torch_function(func):
            return _transparent(ctx, func, args, kwargs)
        return _unknown(ctx, func, args, kwargs)
    patterns = ctx.patterns
    role = PATTERN_ROLES.get(entry.name) if patterns is not None and ctx.depth == 0 else None
    if patterns is None or role is None:
        return _HANDLERS[entry.kind](ctx, entry, func, args, kwargs)
    if args and patterns.statistic(args[0]):
        # a norm's scale in the making (rsqrt(mean(x^2) + eps)): the norm policy treats it where it meets
        # its tensor, and a scale that meets another tensor is reported (stray_norm_scale) -- the
        # rule's check of the op alone ("epsilon-LRP through rsqrt") would be a false alarm
        with ctx.unchecked():
            result = _HANDLERS[entry.kind](ctx, entry, func, args, kwargs)
        patterns.observe(role, func, args, kwargs, result)
        return result
    if role in ("mul", "div") and not entry.inplace:
        match = patterns.match(role, func, args, kwargs)
        if match is not None:  # a normalisation written by hand: the rule's norm policy
            if match.unweighted is None:
                return ctx.normalised("norm", match.c, match.dims, match.family, lambda _: func(*args, **kwargs))
            # w * c / d: the normalisation of c, then the constant w (the same up to rounding)
            unweighted = match.unweighted
            y = ctx.normalised("norm", match.c, match.dims, match.family, lambda _: unweighted())
            result = y * match.weight
            ctx.taint(result)
            return result
        if not ctx.tape.recording and patterns.stray_scale(role, func, args):
            ctx.report.stray_norm_scale(op_name(func))
    result = _HANDLERS[entry.kind](ctx, entry, func, args, kwargs)
    patterns.observe(role, func, args, kwargs, result)
    return result


def _meta(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    result = func(*args, **kwargs)
    if isinstance(result, Tensor) and result.dtype is torch.bool:
        ctx.taints.mark_masks(result)  # a comparison of input-dependent values
    return result


def _linear(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    result = func(*args, **kwargs)
    ctx.taint(result)
    if entry.keeps_gate and any(ctx.taints.is_gate(a) for a in args):
        ctx.taints.mark_gate(result)
    return result


def _elementwise(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    call_args, call_kwargs = args, kwargs
    args, kwargs, inplace = split_inplace(entry, func, args, kwargs)
    z = args[0] if args else None
    taints = ctx.taints
    if not taints.tainted(z) or taints.any_tainted(args[1:]) or taints.any_tainted(kwargs.values()):
        if entry.fallback is not None:
            return ctx.finish(ctx.decompose(entry.fallback, func, args, kwargs, {}), args, inplace)
        return _unknown(ctx, func, call_args, call_kwargs)
    fn, rest = required(entry.function, entry, "function"), args[1:]
    out = ctx.elementwise(entry.name, lambda t: fn(t, *rest, **kwargs), z, entry.derivative, entry.gate, copy=inplace)
    return ctx.finish(out, args, inplace)


def _product(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    args, kwargs, inplace = split_inplace(entry, func, args, kwargs)
    call = (entry.split or split_factors)(entry, args, kwargs)
    if sum(1 for o in call.operands if ctx.tainted(o)) < 2:
        return _linear_call(ctx, func, args, kwargs, inplace, entry)
    if call.bilinear is None:  # more than two input-dependent operands (einsum)
        return _unknown(ctx, func, args, kwargs)
    a, b = call.operands
    closed = entry.closed_form
    if closed == "matmul" and not (a.dim() >= 2 and b.dim() >= 2):
        closed = ""
    out = ctx.product(entry.name, call.bilinear, a, b, closed=closed)
    if call.bias is not None:
        out = required(entry.add_bias, entry, "add_bias")(out, call.bias)
        ctx.taint(out)
    return ctx.finish(out, args, inplace)


def _composite(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    args, kwargs, inplace = split_inplace(entry, func, args, kwargs)
    if entry.applies is not None and not entry.applies(ctx.rule):
        result = _linear_call(ctx, func, args, kwargs)
        if entry.gate:
            ctx.taints.mark_gate(result)
        return result
    if not entry.paired:
        result = ctx.decompose(required(entry.decompose, entry, "decompose"), func, args, kwargs, {})
    else:
        result = _paired(ctx, entry, func, args, kwargs)
    if result is AS_LINEAR:
        return _linear_call(ctx, func, args, kwargs, inplace, entry)
    if result is NOT_DECOMPOSED:
        return _unknown(ctx, func, args, kwargs)
    ctx.taint(result)
    if entry.gate:
        ctx.taints.mark_gate(result)
    return ctx.finish(result, args, inplace)


def _paired(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    """A composite whose decomposition needs constants shared by both passes
    (softmax's shift), or that has a fused kernel: the baseline pass records
    its arguments, and the input pass computes the baseline side itself, with
    the same constants."""
    leaves, spec = tree_flatten((args, kwargs))
    tape = ctx.tape
    if tape.recording:
        result = func(*args, **kwargs)
        tape.record(entry.name, [t for t in leaves if isinstance(t, Tensor)])
        return result
    constants = entry.constants or (lambda *a: {})
    if not ctx.rule.needs_reference:
        if entry.fused is not None:
            result = entry.fused(ctx, func, args, kwargs, None, None)
            if result is not NOT_DECOMPOSED:
                return result
        decompose = required(entry.decompose, entry, "decompose")
        return ctx.decompose(decompose, func, args, kwargs, constants(args, kwargs, None, None))
    rec = tape.next(entry.name, [t for t in leaves if isinstance(t, Tensor)])
    if entry.fused is not None:
        raw = iter(rec.tensors)
        raw_args, raw_kwargs = tree_unflatten([next(raw) if isinstance(t, Tensor) else t for t in leaves], spec)
        result = entry.fused(ctx, func, args, kwargs, raw_args, raw_kwargs)
        if result is not NOT_DECOMPOSED:
            return result
    refs = iter(rec.tensors)
    ref_leaves = []
    for t in leaves:
        if isinstance(t, Tensor):
            r = next(refs)
            r = r.expand(t.shape) if r.shape != t.shape else r
            if ctx.tainted(t):
                ctx.taints.adopt(r)
            ref_leaves.append(r)
        else:
            ref_leaves.append(t)
    ref_args, ref_kwargs = tree_unflatten(ref_leaves, spec)
    consts = constants(args, kwargs, ref_args, ref_kwargs)
    decompose = required(entry.decompose, entry, "decompose")
    with tape.frame(Frame(recording=True)) as local, torch.no_grad():
        ctx.decompose(decompose, func, ref_args, ref_kwargs, consts)
    with tape.frame(Frame(recording=False, queue=local.queue)):
        return ctx.decompose(decompose, func, args, kwargs, consts)


def _linear_call(
    ctx: RuleContext,
    func: Callable,
    args: tuple,
    kwargs: dict,
    inplace: bool = False,
    entry: OpEntry | None = None,
) -> Any:
    """The original op with its ordinary gradient (an in-place call through
    the entry's out-of-place function, copied back)."""
    if inplace and entry is not None:
        result = required(entry.function, entry, "function")(*args, **kwargs)
        return ctx.finish(result, args, True)
    result = func(*args, **kwargs)
    ctx.taint(result)
    return result


def _unknown(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    if not ctx.tape.recording:
        ctx.report.unknown_op(op_name(func))
    result = func(*args, **kwargs)
    ctx.taint(result)
    return result


def _transparent(ctx: RuleContext, func: Callable, args: tuple, kwargs: dict) -> Any:
    with ctx:
        result = unwrapped(func)(*args, **kwargs)
    ctx.taint(result)
    return result


def _transparent_entry(ctx: RuleContext, entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> Any:
    return _transparent(ctx, func, args, kwargs)


_HANDLERS: dict[OpKind, Callable[..., Any]] = {
    OpKind.META: _meta,
    OpKind.LINEAR: _linear,
    OpKind.ELEMENTWISE: _elementwise,
    OpKind.PRODUCT: _product,
    OpKind.COMPOSITE: _composite,
    OpKind.TRANSPARENT: _transparent_entry,
}
