r""":class:`RuleContext`: the mode inside which every op backpropagates as a
rule says.

The context owns one pass's state -- the rule, the op table, the taint
tracker (:mod:`~captum_unified.backend.taint`), the reference tape
(:mod:`~captum_unified.backend.tape`) and the report
(:mod:`~captum_unified.backend.report`) -- and the operations that apply the
rule: :meth:`RuleContext.elementwise`, :meth:`RuleContext.product`,
:meth:`RuleContext.product`, and (from
:class:`~captum_unified.backend.coupled.CoupledOps`, the ops that couple the
elements of a row) :meth:`RuleContext.kmax`, :meth:`RuleContext.pooled_max`,
:meth:`RuleContext.logsumexp` and :meth:`RuleContext.normalised`. The dispatcher
(:mod:`~captum_unified.backend.dispatch`) calls them for the ops the table
classifies; decompositions and fused kernels (:mod:`captum_unified.ops`) call
them for the pieces they are made of.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeGuard

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack, _pop_mode_temporarily

from captum_unified.backend.coupled import CoupledOps
from captum_unified.backend.dispatch import dispatch
from captum_unified.backend.finite import FiniteCheck
from captum_unified.backend.functions import BilinearRule, ElementwiseRule
from captum_unified.backend.ledger_pass import LedgerPass
from captum_unified.backend.norm_patterns import NormPatterns
from captum_unified.backend.report import Report
from captum_unified.backend.taint import TaintTracker
from captum_unified.backend.tape import Record, ReferenceTape
from captum_unified.canonizers import BACKEND_MAP, Fused, PassCanonizer
from captum_unified.ops import OpTable, default_op_table
from captum_unified.rules import OpCall, Rule
from captum_unified.rules.norms import NORM_POLICIES

__all__ = ["RuleContext"]


class RuleContext(CoupledOps, TorchFunctionMode):
    r"""Context in which every op backpropagates as ``rule`` says.

    Use it directly to apply a rule to any computation (the attribution
    classes do this for you)::

        x = x.detach().requires_grad_()
        with RuleContext(EpsilonLRPRule(1e-6), leaves=(x,)):
            y = model(x)
        (grad,) = torch.autograd.grad(y[:, c].sum(), x)   # outside the context

    Call :func:`torch.autograd.grad` after leaving the context.

    Args:
        rule (Rule): the rule.
        op_table (OpTable, optional): how ops are classified. Default:
            :func:`~captum_unified.ops.default_op_table`.
        references (list, optional): records of a reference pass (the
            ``records`` of a context created with ``recording=True``),
            required when ``rule.needs_reference``.
        recording (bool): record the inputs of every treated op instead of
            applying the rule (the reference pass).
        leaves (tuple of Tensor): the tensors the attribution is taken with
            respect to; only ops on tensors that depend on them are treated.
        finite (FiniteCheck, optional): a diagnostic run: every treated op is
            watched for NaN / inf (:mod:`~captum_unified.backend.finite`).
        module_map (Mapping, optional): the canonizers applied while the
            context is entered (:class:`~captum_unified.canonizers.PassCanonizer`):
            module classes computed as the fused op they spell out. Default
            :data:`~captum_unified.canonizers.BACKEND_MAP` (Hugging Face's GELU
            modules as ``F.gelu``); ``{}`` turns them off. Nothing of it is
            left on the model or torch when the context is left.
        ledger (LedgerPass, optional): record the relevance every top-level op
            takes and passes on (:mod:`~captum_unified.backend.ledger_pass`).
    """

    def __init__(
        self,
        rule: Rule,
        op_table: OpTable | None = None,
        references: list[Record] | None = None,
        recording: bool = False,
        leaves: Sequence[Tensor] = (),
        finite: FiniteCheck | None = None,
        module_map: Mapping[str, Fused] = BACKEND_MAP,
        ledger: LedgerPass | None = None,
    ) -> None:
        super().__init__()
        self.rule = rule
        self.table = op_table if op_table is not None else default_op_table()
        self.taints = TaintTracker()
        self.tape = ReferenceTape(type(rule).__name__, recording, references)
        self.report = Report()
        self.depth = 0  # > 0 inside the backend's own decompositions
        self.checking = True  # off while an op's rule check would be a false alarm (unchecked())
        # normalisations written by hand, under the rules' norm policies
        self.patterns = NormPatterns(self.taints.tainted) if rule.norm in NORM_POLICIES else None
        # a diagnostic run (backend/finite.py): where a NaN or inf appeared
        self.finite = finite
        if finite is not None:
            finite.recording = recording
        # an opt-in relevance ledger (backend/ledger.py): what each top-level op takes and passes on
        self.ledger = ledger
        self.taint(*leaves)
        # modules computed as their fused op while the context is entered (outermost entry)
        self.canonizer = PassCanonizer(module_map, self._module_note)
        self._entries = 0

    def __torch_function__(self, func, types_, args=(), kwargs=None):
        return dispatch(self, func, args, kwargs or {})

    def __enter__(self):
        if self._entries == 0:
            self.canonizer.open()
        self._entries += 1
        try:
            return super().__enter__()
        except BaseException:
            self._left()
            raise

    def __exit__(self, exc_type, exc_val, exc_tb):
        try:
            return super().__exit__(exc_type, exc_val, exc_tb)
        finally:
            self._left()

    def _left(self) -> None:
        self._entries -= 1
        if self._entries == 0:
            self.canonizer.close()

    def _module_note(self, name: str, message: str) -> None:
        self.report.check_once(f"module {name}", lambda: message)

    # ------------------------------------------------------------ the pass
    @property
    def recording(self) -> bool:
        """Whether this pass records (the baseline pass)."""
        return self.tape.recording

    @property
    def records(self) -> list[Record]:
        """What a recording context recorded (top level)."""
        return self.tape.records

    def taint(self, *tensors: Any) -> None:
        """Mark tensors (and tensors inside tuples/lists) as input-dependent."""
        self.taints.taint(*tensors)

    def tainted(self, t: Any) -> TypeGuard[Tensor]:
        """Whether ``t`` depends on the explained inputs."""
        return self.taints.tainted(t)

    def is_rule_output(self, t: Tensor) -> bool:
        """Whether ``t`` came out of an element-wise op the rule was applied to."""
        return self.taints.is_rule_output(t)

    def release(self) -> None:
        """Forget the tensors of the pass (call after the forward pass)."""
        self.taints.release()
        if self.patterns is not None:
            self.patterns.release()

    def check_complete(self) -> None:
        """Raise if the baseline pass saw more treated ops than the input pass."""
        self.tape.check_complete()

    def warnings(self) -> list[str]:
        """Messages about what this pass went through."""
        return self.report.messages(type(self.rule).__name__)

    @contextmanager
    def unchecked(self) -> Iterator[None]:
        """Apply the rule without its checks of element-wise ops (the
        dispatcher, for a normalisation's scale)."""
        before, self.checking = self.checking, False
        try:
            yield
        finally:
            self.checking = before

    @contextmanager
    def suspended(self) -> Iterator[None]:
        """Run torch ops without this mode (when it is on top of the mode
        stack, i.e. inside a decomposition); other modes stay active."""
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is self:
            with _pop_mode_temporarily():
                yield
        else:
            yield

    def decompose(self, decompose: Callable, func: Callable, args: tuple, kwargs: dict, consts: dict) -> Any:
        """Run a decomposition with this mode active (its ops are treated in turn)."""
        self.depth += 1
        try:
            with self:
                return decompose(self, func, args, kwargs, consts)
        finally:
            self.depth -= 1

    def finish(self, result: Any, args: tuple, inplace: bool) -> Any:
        """Copy an in-place call's result into its first argument."""
        if inplace and isinstance(result, Tensor) and args and isinstance(args[0], Tensor):
            target = args[0]
            if self.tape.any_recording:
                self.tape.protect((target,))  # this op's own record may hold the old values
            target.copy_(result)
            self.taints.carry(result, target)
            return target
        return result

    # -------------------------------------------------------- element-wise
    def elementwise(
        self,
        name: str,
        f: Callable[[Tensor], Tensor],
        z: Tensor,
        derivative: Callable[[Tensor, Tensor], Tensor] | None = None,
        gate: bool = False,
        copy: bool = False,
    ) -> Tensor:
        """Apply the element-wise function ``f`` to ``z`` with the rule (used
        by the dispatcher and by decompositions for functions that are not a
        single torch op)."""
        with self.suspended():  # called from decompositions too
            if derivative is not None and _get_current_function_mode_stack():
                derivative = None  # another mode may change f (softplus_swap): differentiate f itself
            op = OpCall(name, derivative=derivative)
            if self.tape.recording:
                out = f(z)
                self.tape.record(name, (z,), out, copy=copy)
            else:
                rule = self.rule
                if self.checking:
                    self.report.check_once(name, lambda: rule.check(op, f, z.detach()))
                ref_z = ref_out = None
                if rule.needs_reference:
                    rec = self.tape.next(name, (z,))
                    ref_z, ref_out = rec.tensors[0], rec.out
                if torch.is_grad_enabled() and z.requires_grad:

                    def g_of(zz, out, _r=ref_z, _o=ref_out):
                        return rule.multiplier(f, zz, out, _r, _o, op=op)

                    out = ElementwiseRule.apply(z, f, g_of)
                    self.taints.mark_rule_output(out)
                else:
                    out = f(z)
            self.taint(out)
            if gate:
                self.taints.mark_gate(out)
            return out

    def note_elementwise(self, name: str, f: Callable[[Tensor], Tensor], z: Tensor) -> None:
        """Let the rule check an element-wise op a fused kernel applies (the
        warnings are the decomposition's)."""
        if not self.tape.recording and self.checking:
            self.report.check_once(name, lambda: self.rule.check(OpCall(name), f, z.detach()))

    # ------------------------------------------------------------- products
    def product(
        self, name: str, fn: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, closed: str = ""
    ) -> Tensor:
        """``fn(a, b)`` for a bilinear ``fn`` of two input-dependent factors,
        differentiated by the rule's product policy (``closed``: ``"mul"`` or
        ``"matmul"`` for a closed-form backward)."""
        if self.tape.recording:
            out = fn(a, b)
            self.tape.record(name, (a, b))
        else:
            op = OpCall(name, gates=(self.taints.is_gate(a), self.taints.is_gate(b)))
            self.report.product(name, self.rule.product_warning(op))
            ref_a = ref_b = None
            if self.rule.needs_reference:
                rec = self.tape.next(name, (a, b))
                ref_a, ref_b = rec.tensors
            if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
                a_, b_ = self.rule.product_factors(op, a.detach(), b.detach(), ref_a, ref_b)
                out = BilinearRule.apply(a, b, fn, a_, b_, closed)
            else:
                out = fn(a, b)
        self.taint(out)
        return out

    def note_product(self, name: str, gates: tuple[bool, ...] = ()) -> None:
        """Let the rule warn about a product a fused kernel applies."""
        if not self.tape.recording and name not in self.report.product_messages:
            self.report.product(name, self.rule.product_warning(OpCall(name, gates=gates)))
