r"""The backend side of the relevance ledger (:mod:`~captum_unified.backend.ledger`):
:class:`LedgerPass`, one pass's records.

The dispatcher hands every call of the model to :meth:`LedgerPass.call` when
the context has a ledger; a top-level call on input-dependent tensors gets an
:class:`~captum_unified.backend.ledger_hooks.OpRecord` (its input and output
values, its constant term for an affine op, epsilon for an element-wise op)
and the hooks of :mod:`~captum_unified.backend.ledger_hooks`. Functions the
backend follows op by op, and recurrent layers for rules without a reference,
give a row to each op inside. A value a later in-place write would change is
copied first (copy on write, as the reference tape does); a write the ledger
did not see is caught by the tensor's version counter and leaves its row NaN.
After the backward pass :meth:`LedgerPass.finish` writes the rows and totals
into the user's :class:`~captum_unified.backend.ledger.RelevanceLedger`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map

from captum_unified._utils.common import warn
from captum_unified.backend.calls import python_torch_function, write_target
from captum_unified.backend.ledger import ConservationWarning, RelevanceLedger
from captum_unified.backend.ledger_hooks import OpRecord, dot, edge, hook_op
from captum_unified.ops import NOT_DECOMPOSED, OpKind, op_name
from captum_unified.rules import EpsilonLRPRule, Rule

if TYPE_CHECKING:  # the context imports this module (a type only)
    from captum_unified.backend.context import RuleContext

__all__ = ["LedgerPass"]

#: composite ops that are affine in their input once the rule has fixed their scale
_AFFINE_COMPOSITES = frozenset({"layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm"})
#: composite ops whose decomposition is plain torch calls (recurrent layers): without a
#: reference the ledger follows it, so that the biases inside get their rows
_CONTAINERS = frozenset(
    {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}
)


def _floats(result: Any) -> list[Tensor]:
    leaves, _ = tree_flatten(result)
    return [t for t in leaves if isinstance(t, Tensor) and t.is_floating_point()]


def _written(func: Callable, args: tuple, kwargs: dict) -> list[Tensor]:
    """The tensors a call may write into (``out=``, in-place methods, ``inplace=True``)."""
    target = write_target(func, args, kwargs)
    if target is None and args and (kwargs.get("inplace") is True or any(a is True for a in args[1:])):
        target = args[0]
    if target is None:
        return []
    return [t for t in (target if isinstance(target, (list, tuple)) else (target,)) if isinstance(t, Tensor)]


class LedgerPass:
    """The backend side of a :class:`RelevanceLedger`: one pass's records.

    The dispatcher calls :meth:`call` for every top-level torch call when the
    context has a ledger; the entry point calls :meth:`finish` after the
    backward pass. A recording pass (the baseline pass) keeps each op's values
    for the input pass's :math:`t - \\bar t`.

    Args:
        rule (Rule): the pass's rule.
        ledger (RelevanceLedger, optional): the user's ledger that :meth:`finish` fills.
        recording (bool): the baseline pass.
    """

    def __init__(self, rule: Rule, ledger: RelevanceLedger | None = None, recording: bool = False) -> None:
        self.rule = rule
        self.ledger = ledger
        self.recording = recording
        self.references: list[OpRecord] | None = None  # the baseline pass's records (rules with a reference)
        self.ops: list[OpRecord] = []
        self.level = 0  # > 0 inside a recorded call (its inner calls are its own)
        self.depth = 0  # the context depth whose calls are recorded (> 0 inside a followed recurrent layer)
        self.held: dict[int, list[tuple[list[Tensor], list[int], int]]] = {}  # storage -> values held
        self.eps = rule.epsilon if isinstance(rule, EpsilonLRPRule) else None
        self.marker = torch.zeros((), requires_grad=True)

    # --------------------------------------------------------- the pass
    def baseline_pass(self) -> LedgerPass:
        """The recording pass on the baseline whose values this pass subtracts."""
        recorder = LedgerPass(self.rule, recording=True)
        self.references = recorder.ops
        return recorder

    def stop(self) -> None:
        """Record no further calls (the model has returned)."""
        self.level += 1

    def call(self, ctx: RuleContext, func: Callable, args: tuple, kwargs: dict, handler: Callable) -> Any:
        """Run ``handler(ctx, func, args, kwargs)`` and, for a top-level call on
        input-dependent tensors, record it."""
        if (
            self.level
            or ctx.depth != self.depth
            or not (ctx.taints.any_tainted(args) or (kwargs and ctx.taints.any_tainted(kwargs.values())))
        ):
            return handler(ctx, func, args, kwargs)
        entry = ctx.table.lookup(func)
        if (entry.kind is OpKind.TRANSPARENT) if entry is not None else python_torch_function(func):
            return handler(ctx, func, args, kwargs)  # followed op by op: its ops get the rows
        if entry is not None and entry.name in _CONTAINERS and entry.decompose is not None and not self.paired:
            result = self._follow(ctx, entry, func, args, kwargs)
            if result is not NOT_DECOMPOSED:
                return result
        self.level += 1
        try:
            return self._record(ctx, func, args, kwargs, handler)
        finally:
            self.level -= 1

    @property
    def paired(self) -> bool:
        """Whether values are measured from the baseline pass's (rules with a reference)."""
        return self.recording or self.references is not None

    def _follow(self, ctx: RuleContext, entry: Any, func: Callable, args: tuple, kwargs: dict) -> Any:
        """A recurrent layer computed by its decomposition (not its fused kernel,
        the same up to rounding), whose calls are recorded."""
        consts = entry.constants(args, kwargs, None, None) if entry.constants is not None else {}
        self.depth += 1
        try:
            result = ctx.decompose(entry.decompose, func, args, kwargs, consts)
        finally:
            self.depth -= 1
        if result is not NOT_DECOMPOSED:  # (a form the decomposition leaves to the fused kernel: one row)
            ctx.taint(result)
        return result

    def _record(self, ctx: RuleContext, func: Callable, args: tuple, kwargs: dict, handler: Callable) -> Any:
        written = _written(func, args, kwargs)
        if written:
            self._protect(written)
        ptrs = {t.untyped_storage().data_ptr() for t in written}
        leaves, _ = tree_flatten((args, kwargs))
        inputs: list[Tensor] = []
        for t in leaves:
            if isinstance(t, Tensor) and t.is_floating_point() and ctx.tainted(t) and all(t is not u for u in inputs):
                inputs.append(t)
        values = [t.detach().clone() if t.untyped_storage().data_ptr() in ptrs else t.detach() for t in inputs]
        edges: dict[tuple[Any, int], int] = {}
        floor = 0
        if not self.recording:
            for j, t in enumerate(inputs):
                e = edge(t)
                if e is not None:
                    edges.setdefault(e, j)
            with torch.enable_grad():
                marker = self.marker.view(()).grad_fn  # nodes the op creates are numbered above it
                assert marker is not None
                floor = marker._sequence_nr()
        result = handler(ctx, func, args, kwargs)
        outs = _floats(result)
        if not outs:
            return result
        entry = ctx.table.lookup(func)
        kind = entry.kind.value if entry is not None else "unknown"
        op = OpRecord(len(self.ops), op_name(func), kind, values, [o.detach() for o in outs], [None] * len(outs), None)
        self.ops.append(op)
        self._hold(op.inputs, op.in_versions)
        self._hold(op.outputs, op.out_versions)
        if self.recording:
            return result
        if self.references is not None:
            self._pair(op)
        else:
            if entry is not None and _affine(entry.kind, entry.name, len(inputs)) and not written:
                op.constants = self._constants(ctx, func, args, kwargs, len(outs))
            if entry is not None and entry.kind is OpKind.ELEMENTWISE and len(inputs) == 1 and len(outs) == 1:
                op.eps = self.eps
        hook_op(op, outs, edges, floor)
        return result

    def _constants(self, ctx: RuleContext, func: Callable, args: tuple, kwargs: dict, n: int) -> list[Tensor | None]:
        """The op with its input-dependent arguments set to zero: its constant term
        (the random state is restored, so dropout draws what it would have)."""
        try:
            zargs, zkwargs = tree_map(lambda t: torch.zeros_like(t) if ctx.tainted(t) else t, (args, kwargs))
            devices = sorted({t.device.index or 0 for t in _floats((args, kwargs)) if t.device.type == "cuda"})
            with torch.no_grad(), torch.random.fork_rng(devices=devices):
                consts = _floats(func(*zargs, **zkwargs))
        except Exception:  # an op that refuses zeros: no bias column for it
            return [None] * n
        return list(consts) if len(consts) == n else [None] * n

    def _pair(self, op: OpRecord) -> None:
        """Subtract the baseline pass's values (rules with a reference)."""
        refs = self.references
        assert refs is not None
        rec = refs[op.index] if op.index < len(refs) else None
        if (
            rec is None
            or rec.name != op.name
            or len(rec.inputs) != len(op.inputs)
            or len(rec.outputs) != len(op.outputs)
        ):
            op.broken = True
            return
        try:
            op.inputs = [v - r for v, r in zip(op.inputs, rec.inputs)]
            op.outputs = [v - r for v, r in zip(op.outputs, rec.outputs)]
            op.in_versions = [v._version for v in op.inputs]
            op.out_versions = [v._version for v in op.outputs]
        except RuntimeError:  # shapes that do not broadcast
            op.broken = True

    # ----------------------------------------------------- copy on write
    def _hold(self, values: list[Tensor], versions: list[int]) -> None:
        """Keep track of values a later in-place write may change (``versions``:
        their version counters now, checked when the hooks read them)."""
        versions[:] = [v._version for v in values]
        for k, v in enumerate(values):
            self.held.setdefault(v.untyped_storage().data_ptr(), []).append((values, versions, k))

    def _protect(self, targets: Sequence[Tensor]) -> None:
        """Give every held value that shares storage with ``targets`` its own copy."""
        for t in targets:
            for values, versions, k in self.held.pop(t.untyped_storage().data_ptr(), ()):
                if values[k]._version == versions[k]:  # else the hooks will report it overwritten
                    values[k] = values[k].clone()
                    versions[k] = values[k]._version
                self.held.setdefault(values[k].untyped_storage().data_ptr(), []).append((values, versions, k))

    # ------------------------------------------------------------ result
    def finish(
        self,
        outputs: Tensor,
        baseline_outputs: Tensor | None,
        seed: Tensor,
        wrt: Sequence[Tensor],
        grads: Sequence[Tensor],
        baselines: Sequence[Tensor] | None,
    ) -> None:
        """Write the account of the pass into the user's ledger (after the
        backward pass: ``seed`` is the output's gradient, ``grads`` those of
        ``wrt``) and raise a
        :class:`~captum_unified.backend.ledger.ConservationWarning` where the
        inputs' relevance is far from conservative. Relevance is measured from
        the baseline (``baseline_outputs``, ``baselines``) only for rules with a
        reference."""
        ledger = self.ledger
        assert ledger is not None, "finish() fills the ledger the pass was made for"
        if self.references is None:  # epsilon-LRP, Gradient: relevance from zero
            baseline_outputs, baselines = None, None
        with torch.no_grad():
            delta = outputs.double() - (baseline_outputs.double() if baseline_outputs is not None else 0.0)
            output = float(delta.sum())
            stabiliser = output - float((seed.double() * delta).sum())
            inputs = 0.0
            for k, (w, g) in enumerate(zip(wrt, grads)):
                if not w.is_floating_point():
                    continue
                v = w.detach() - baselines[k] if baselines is not None else w.detach()
                inputs += float(dot(g, v))
        ledger._fill([op.row() for op in self.ops], type(self.rule).__name__, output, stabiliser, inputs)
        ledger.unmeasured = sum(op.broken for op in self.ops)
        self.ops, self.held = [], {}
        message = ledger.conservation_message()
        if message:
            warn(message, ConservationWarning)


def _affine(kind: OpKind, name: str, n_inputs: int) -> bool:
    """Whether the op is affine in its input-dependent arguments (so its
    value at zero is its constant term)."""
    if kind is OpKind.LINEAR:
        return True
    if kind is OpKind.PRODUCT:
        return n_inputs == 1
    return kind is OpKind.COMPOSITE and name in _AFFINE_COMPOSITES
