r"""The relevance ledger: where relevance went, op by op (an opt-in diagnostic).

In the modified-gradient view (Ancona et al. 2018, Proposition 1: epsilon-LRP
is the input times the modified gradient) every tensor :math:`t` of the pass
carries the relevance

.. math::

    R(t) = \sum \frac{\partial^g S_c}{\partial t} \odot t
    \qquad\text{(rules with a reference, DeepLIFT: } t - \bar t\text{)}.

For every top-level call of the model on input-dependent tensors (the op's
name as the backend's warnings write it, and its index in call order) the
ledger records

* **relevance out** -- :math:`R` at the op's outputs, what reaches the op from
  above: :math:`\sum g_{out} \odot out`;
* **relevance in** -- what the op passes to its input-dependent inputs:
  :math:`\sum_j \sum g_{op \to x_j} \odot x_j`, with :math:`g_{op \to x_j}`
  the part of :math:`x_j`'s gradient this op sends (a tensor that two ops
  read, a residual connection, splits its relevance between them);
* **bias** -- what the op's constant terms absorb: for an affine op (linear
  ops, products with one input-dependent factor, normalisations) with
  :math:`out = L(x) + c`, :math:`\sum g_{out} \odot c`, where :math:`c` is the
  op evaluated with its input-dependent arguments set to zero (zero for rules
  with a reference: :math:`c - \bar c = 0`);
* **stabiliser** -- what epsilon-LRP's :math:`\epsilon` absorbs at an
  element-wise op :math:`out = f(z)`:
  :math:`\sum g_{out} \odot f(z)\,\epsilon s / (z + \epsilon s)`,
  :math:`s = \mathrm{sign}(z)`, and at the explained output;
* **unexplained** -- out - in - bias - stabiliser: relevance the op creates or
  destroys (a product differentiated by the product rule doubles it, an op the
  backend does not know keeps its gradient, ...).

A conservative propagation telescopes: the output's relevance minus every
bias and stabiliser equals the relevance at the inputs (the attributions'
sum). :meth:`RelevanceLedger.conservation_message` says when the inputs
receive more than twice or less than half of that, or the opposite sign, and
names the ops with the largest unexplained relevance; the backend raises it
as a :class:`ConservationWarning`.

How it is measured: hooks on the autograd graph of the one pass, never on the
model. A pre-hook on each output's node reads :math:`g_{out}`; the nodes the
op created (their sequence numbers are above a marker taken just before the
op) are walked from its outputs down to the edges that reach its inputs, and a
post-hook on each such node reads :math:`g_{op \to x_j}`. Values a later
in-place write would change are copied first. Nothing of this exists when the
ledger is not asked for (the dispatcher's fast path checks one attribute).
Sums are taken in float64 over the whole batch: explain one sample for a
per-sample account.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor
from torch.utils._pytree import tree_flatten, tree_map

from captum_unified._utils.common import AttributionWarning
from captum_unified.backend.calls import python_torch_function, write_target
from captum_unified.ops import OpKind, op_name
from captum_unified.rules import EpsilonLRPRule, Rule

if TYPE_CHECKING:  # the context imports this module (a type only)
    from captum_unified.backend.context import RuleContext

__all__ = ["ConservationWarning", "LedgerRow", "RelevanceLedger", "LedgerPass"]

#: The inputs receive more than ``RATIO`` times, or less than ``1 / RATIO`` of,
#: the relevance a conservative propagation would give them: warn.
RATIO = 2.0
#: ... unless the difference is below this fraction of the output's relevance.
NEGLIGIBLE = 0.05
#: composite ops that are affine in their input once the rule has fixed their scale
_AFFINE_COMPOSITES = frozenset({"layer_norm", "rms_norm", "group_norm", "batch_norm", "instance_norm"})
#: composite ops whose decomposition is plain torch calls (recurrent layers): without a
#: reference the ledger follows it, so that the biases inside get their rows
_CONTAINERS = frozenset(
    {"lstm", "gru", "rnn_tanh", "rnn_relu", "lstm_cell", "gru_cell", "rnn_tanh_cell", "rnn_relu_cell"}
)


class ConservationWarning(AttributionWarning):
    """The relevance that reaches the inputs is far from what reaches the
    output, beyond what biases and stabilisers absorb (more than twice, less
    than half or of the opposite sign); the message names the ops where it
    went. Raised only when a :func:`~captum_unified.relevance_ledger` is open
    (it needs the ledger's per-op account to tell biases from lost relevance).
    """


@dataclass(frozen=True)
class LedgerRow:
    """One top-level op of the pass (see the module docstring).

    Attributes:
        index (int): the op's position among the pass's calls on input-dependent tensors.
        name (str): the op, as the backend's warnings name it (``F.linear``, ``Tensor.relu_``).
        kind (str): its op-table kind (``linear``, ``elementwise``, ``product``,
            ``composite``, ``transparent``) or ``unknown``.
        relevance_out (float): relevance at its outputs.
        relevance_in (float): relevance it passes to its input-dependent inputs.
        bias (float): relevance its constant terms absorb.
        stabiliser (float): relevance epsilon absorbs at it.
    """

    index: int
    name: str
    kind: str
    relevance_out: float
    relevance_in: float
    bias: float = 0.0
    stabiliser: float = 0.0

    @property
    def unexplained(self) -> float:
        """Relevance the op creates (negative) or destroys (positive) beyond bias and stabiliser."""
        return self.relevance_out - self.relevance_in - self.bias - self.stabiliser

    @property
    def ratio(self) -> float:
        """``relevance_in / relevance_out`` (NaN where nothing reaches the op)."""
        return self.relevance_in / self.relevance_out if self.relevance_out != 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.name,
            "kind": self.kind,
            "relevance_out": self.relevance_out,
            "relevance_in": self.relevance_in,
            "bias": self.bias,
            "stabiliser": self.stabiliser,
            "unexplained": self.unexplained,
            "ratio": self.ratio,
        }


class RelevanceLedger:
    """Where the relevance of the last attribution call went, op by op.

    Filled by the backend when passed to
    :func:`~captum_unified.backend.modified_gradients` (the methods do it inside
    :func:`~captum_unified.relevance_ledger`); each call replaces the
    previous account. All sums are over the whole batch.

    Attributes:
        rows (list of LedgerRow): the ops, in call order.
        output (float): the explained output's relevance, :math:`\\sum S_c(x)`
            (:math:`\\sum S_c(x) - S_c(\\bar x)` for rules with a reference).
        output_stabiliser (float): what the rule's stabiliser at the explained
            output absorbs (epsilon-LRP).
        inputs (float): the relevance that reaches the inputs,
            :math:`\\sum \\partial^g S_c / \\partial x \\odot x` (:math:`x - \\bar x`
            with a reference): the attributions' sum.
        rule (str): the rule's class name.
        unmeasured (int): rows that are NaN: an op the baseline pass did not
            pair (rules with a reference), or whose values a write the ledger
            did not see changed in place.
    """

    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []
        self.output = self.output_stabiliser = self.inputs = math.nan
        self.rule = ""
        self.unmeasured = 0

    def _fill(self, rows: list[LedgerRow], rule: str, output: float, stabiliser: float, inputs: float) -> None:
        self.rows, self.rule = rows, rule
        self.output, self.output_stabiliser, self.inputs = output, stabiliser, inputs

    # ----------------------------------------------------------- totals
    @property
    def bias(self) -> float:
        """Relevance absorbed by every op's constant terms."""
        return math.fsum(r.bias for r in self.rows)

    @property
    def stabiliser(self) -> float:
        """Relevance absorbed by the stabilisers (element-wise ops and the output)."""
        return math.fsum(r.stabiliser for r in self.rows) + _finite(self.output_stabiliser)

    @property
    def expected(self) -> float:
        """What a conservative propagation gives the inputs: output - bias - stabiliser."""
        return self.output - self.bias - self.stabiliser

    @property
    def ratio(self) -> float:
        """``inputs / expected``: 1 for a conservative propagation."""
        return self.inputs / self.expected if self.expected != 0 else math.nan

    @property
    def untracked(self) -> float:
        """The gap between the totals that no row accounts for (ops outside the
        model's call, rounding): about 0 when every op was seen."""
        inner = math.fsum(r.relevance_out - r.relevance_in for r in self.rows)
        return (self.output - _finite(self.output_stabiliser) - self.inputs) - inner

    def worst(self, n: int = 3) -> list[LedgerRow]:
        """The ``n`` rows with the largest ``|unexplained|``."""
        rows = [r for r in self.rows if math.isfinite(r.unexplained) and r.unexplained != 0]
        return sorted(rows, key=lambda r: -abs(r.unexplained))[:n]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per op (``pandas.DataFrame(ledger.to_rows())``, ``csv.DictWriter``)."""
        return [r.as_dict() for r in self.rows]

    def conservation_message(self, ratio: float = RATIO) -> str | None:
        """A sentence naming the worst ops when the inputs' relevance is more than
        ``ratio`` times, less than ``1 / ratio`` of, or of the opposite sign to
        :attr:`expected`; ``None`` otherwise."""
        expected, got = self.expected, self.inputs
        if not (math.isfinite(expected) and math.isfinite(got)):
            return None
        scale = max(abs(self.output), abs(expected))
        if abs(got - expected) <= NEGLIGIBLE * scale:
            return None
        far = expected * got < 0 or abs(got) > ratio * abs(expected) or abs(got) < abs(expected) / ratio
        if not far:
            return None
        ops = (
            ", ".join(
                f"{r.name} #{r.index} (in {r.relevance_in:.4g} for out {r.relevance_out:.4g}, "
                f"unexplained {r.unexplained:.4g})"
                for r in self.worst()
                if abs(r.unexplained) > 1e-3 * scale
            )
            or "no single op (many small contributions, or ops outside the model's call)"
        )
        return (
            f"{self.rule} does not conserve relevance: the inputs receive {got:.4g}, while the output's "
            f"{self.output:.4g} less what biases ({self.bias:.4g}) and stabilisers ({self.stabiliser:.4g}) absorb "
            f"is {expected:.4g} (ratio {self.ratio:.3g}). Most of the difference arises at: {ops}. Read "
            "ledger.worst() / str(ledger) for the account; a product differentiated by the product rule "
            "(products='uniform' or 'gate' conserve), an op the backend does not know (add it to the op table) "
            "or a normalisation under norm='gradient' are the usual causes."
        )

    # ------------------------------------------------------------ display
    def __str__(self) -> str:
        lines = [
            f"RelevanceLedger ({self.rule}, {len(self.rows)} ops, sums over the batch)",
            f"  output relevance   {self.output: .6g}",
            f"  - bias             {self.bias: .6g}",
            f"  - stabiliser       {self.stabiliser: .6g}",
            f"  = expected         {self.expected: .6g}",
            f"  inputs receive     {self.inputs: .6g}   (ratio {self.ratio:.4g})",
            f"  not on any op      {self.untracked: .3g}",
        ]
        shown = [r for r in self.rows if _notable(r, self.output)]
        if shown:
            lines.append(f"  {'#':>4} {'op':<28} {'kind':<12} {'out':>11} {'in':>11} {'bias':>11} {'unexplained':>11}")
            for r in shown:
                lines.append(
                    f"  {r.index:>4} {r.name[:28]:<28} {r.kind:<12} {r.relevance_out:>11.4g} "
                    f"{r.relevance_in:>11.4g} {r.bias:>11.4g} {r.unexplained:>11.4g}"
                )
        hidden = len(self.rows) - len(shown)
        if hidden:
            lines.append(f"  ({hidden} ops pass their relevance on unchanged; to_rows() lists all)")
        if self.unmeasured:
            lines.append(f"  ({self.unmeasured} ops had no baseline record or were overwritten: their rows are NaN)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<RelevanceLedger {self.rule}: {len(self.rows)} ops, output {self.output:.4g}, inputs {self.inputs:.4g}>"
        )


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _notable(row: LedgerRow, output: float) -> bool:
    """A row worth a line: it changes the relevance (by more than 1e-6 of the output's)."""
    tol = 1e-6 * max(abs(output), 1e-30) if math.isfinite(output) else 0.0
    return not (abs(row.relevance_out - row.relevance_in) <= tol and abs(row.bias) <= tol)


# ---------------------------------------------------------------- recording
@dataclass
class _Op:
    """One op's values and running sums while the pass runs."""

    index: int
    name: str
    kind: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    constants: list[Tensor | None]
    eps: float | None  # epsilon-LRP's stabiliser at an element-wise op
    in_versions: list[int] = field(default_factory=list)
    out_versions: list[int] = field(default_factory=list)
    r_out: list[Tensor] = field(default_factory=list)
    r_in: list[Tensor] = field(default_factory=list)
    bias: list[Tensor] = field(default_factory=list)
    stab: list[Tensor] = field(default_factory=list)
    broken: bool = False  # a value could not be paired or was overwritten

    def row(self) -> LedgerRow:
        def total(xs: list[Tensor]) -> float:
            return float(torch.stack(xs).sum()) if xs else 0.0

        if self.broken:
            return LedgerRow(self.index, self.name, self.kind, math.nan, math.nan, math.nan, math.nan)
        return LedgerRow(
            self.index, self.name, self.kind, total(self.r_out), total(self.r_in), total(self.bias), total(self.stab)
        )


def _dot(g: Tensor, v: Tensor) -> Tensor:
    if g.shape != v.shape:
        v = v.expand(g.shape) if v.dim() <= g.dim() else v.sum_to_size(g.shape)
    return (g.detach().double() * v.double()).sum()


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


def _edge(t: Tensor) -> tuple[Any, int] | None:
    """The autograd edge a tensor's gradient arrives by."""
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    if t.requires_grad:  # a leaf: its gradient accumulator
        view = t.view_as(t).grad_fn
        assert view is not None
        return view.next_functions[0][0], 0
    return None


class LedgerPass:
    """The backend side of a :class:`RelevanceLedger`: one pass's records.

    The dispatcher calls :meth:`call` for every top-level torch call when the
    context has a ledger; the entry point calls :meth:`finish` after the
    backward pass. A recording pass (the baseline pass) keeps each op's values
    for the input pass's :math:`t - \\bar t`.

    Args:
        rule (Rule): the pass's rule.
        recording (bool): the baseline pass.
        references (list, optional): a recording pass's values (rules with a reference).
    """

    def __init__(self, rule: Rule, recording: bool = False, references: list[_Op] | None = None) -> None:
        self.rule = rule
        self.recording = recording
        self.references = references
        self.ops: list[_Op] = []
        self.level = 0  # > 0 inside a recorded call (its inner calls are its own)
        self.depth = 0  # the context depth whose calls are recorded (> 0 inside a followed recurrent layer)
        self.held: dict[int, list[tuple[list[Tensor], list[int], int]]] = {}  # storage -> values held
        self.eps = rule.epsilon if isinstance(rule, EpsilonLRPRule) else None
        self.marker = torch.zeros((), requires_grad=True)

    # --------------------------------------------------------- the pass
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
            return self._follow(ctx, entry, func, args, kwargs)
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
                e = _edge(t)
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
        op = _Op(len(self.ops), op_name(func), kind, values, [o.detach() for o in outs], [None] * len(outs), None)
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
        self._hook(op, outs, edges, floor)
        return result

    def _hook(self, op: _Op, outs: list[Tensor], edges: dict[tuple[Any, int], int], floor: int) -> None:
        """Pre-hooks on the outputs' nodes; post-hooks on the op's nodes that reach its inputs."""
        starts = []
        for k, o in enumerate(outs):
            node = o.grad_fn
            if node is None:
                continue
            if (node, o.output_nr) in edges:  # the op returned its input (``x.contiguous()``)
                op.outputs[k] = op.outputs[k][:0]
                continue
            node.register_prehook(_out_hook(op, k, o.output_nr))
            starts.append(node)
        found: dict[Any, list[tuple[int, int]]] = {}
        seen: set[Any] = set()
        stack = [n for n in starts if n._sequence_nr() >= floor]
        while stack:
            node = stack.pop()
            if node in seen:
                continue
            seen.add(node)
            for i, (nxt, nr) in enumerate(node.next_functions):
                if nxt is None:
                    continue
                j = edges.get((nxt, nr))
                if j is not None:
                    found.setdefault(node, []).append((i, j))
                elif nxt not in seen and nxt._sequence_nr() >= floor:
                    stack.append(nxt)
        for node, slots in found.items():
            node.register_hook(_in_hook(op, slots))

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

    def _pair(self, op: _Op) -> None:
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
        ledger: RelevanceLedger,
        outputs: Tensor,
        baseline_outputs: Tensor | None,
        seed: Tensor,
        wrt: Sequence[Tensor],
        grads: Sequence[Tensor],
        baselines: Sequence[Tensor] | None,
    ) -> None:
        """Write the account of the pass into ``ledger`` (after the backward pass)."""
        with torch.no_grad():
            delta = outputs.double() - (baseline_outputs.double() if baseline_outputs is not None else 0.0)
            output = float(delta.sum())
            stabiliser = output - float((seed.double() * delta).sum())
            inputs = 0.0
            for k, (w, g) in enumerate(zip(wrt, grads)):
                if not w.is_floating_point():
                    continue
                v = w.detach() - baselines[k] if baselines is not None else w.detach()
                inputs += float(_dot(g, v))
        ledger._fill([op.row() for op in self.ops], type(self.rule).__name__, output, stabiliser, inputs)
        ledger.unmeasured = sum(op.broken for op in self.ops)
        self.ops, self.held = [], {}


def _affine(kind: OpKind, name: str, n_inputs: int) -> bool:
    """Whether the op is affine in its input-dependent arguments (so its
    value at zero is its constant term)."""
    if kind is OpKind.LINEAR:
        return True
    if kind is OpKind.PRODUCT:
        return n_inputs == 1
    return kind is OpKind.COMPOSITE and name in _AFFINE_COMPOSITES


def _out_hook(op: _Op, k: int, nr: int) -> Callable:
    def hook(grad_outputs: Sequence[Tensor | None]) -> None:
        g = grad_outputs[nr]
        if g is None or op.broken:
            return
        v = op.outputs[k]
        if v.numel() == 0:  # the op returned its input: nothing changes here
            return
        if v._version != op.out_versions[k] or (op.eps is not None and op.inputs[0]._version != op.in_versions[0]):
            op.broken = True  # overwritten in place by a write the ledger did not see: no number rather than a wrong one
            return
        op.r_out.append(_dot(g, v))
        c = op.constants[k]
        if c is not None:
            op.bias.append(_dot(g, c))
        if op.eps is not None:
            z = op.inputs[0].double()
            s = torch.where(z >= 0, 1.0, -1.0).to(z.dtype) * op.eps
            op.stab.append(_dot(g, v.double() * s / (z + s)))

    return hook


def _in_hook(op: _Op, slots: list[tuple[int, int]]) -> Callable:
    def hook(grad_inputs: Sequence[Tensor | None], grad_outputs: Sequence[Tensor | None]) -> None:
        if op.broken:
            return
        for i, j in slots:
            g = grad_inputs[i]
            if g is None:
                continue
            if op.inputs[j]._version != op.in_versions[j]:
                op.broken = True  # overwritten in place by a write the ledger did not see
                return
            op.r_in.append(_dot(g, op.inputs[j]))

    return hook
