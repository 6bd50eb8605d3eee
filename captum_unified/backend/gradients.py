r"""The entry point: :func:`modified_gradients` for one attribution call.

One call runs at most two forward passes and one backward pass:

1. the *baseline pass* (when the rule needs the baseline's values, or the
   caller wants :math:`S_c(\bar x)`): the model on the baselines, without
   gradients, inside a recording :class:`RuleContext` -- on a batch of one
   when the baseline is shared by all samples (``call.shared_baseline``) and
   no module in train mode couples the samples;
2. the *input pass*: the model on detached copies of the inputs (or with
   each layer's activation captured as the leaf), inside a
   :class:`RuleContext` that replays the baseline pass's records;
3. one :func:`torch.autograd.grad` of the selected outputs, after the
   context is left and its warnings raised.

The model's buffers are restored afterwards and every hook removed, also
when the call raises.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import require_floating, select_target, warn
from captum_unified._utils.state import preserve_model_state
from captum_unified.backend.context import RuleContext
from captum_unified.backend.finite import FiniteCheck, non_finite_error
from captum_unified.backend.layers import LayerCapture, train_sensitive
from captum_unified.backend.ledger import RelevanceLedger
from captum_unified.backend.ledger_pass import LedgerPass
from captum_unified.backend.tape import PairingError
from captum_unified.ops import OpTable, default_op_table
from captum_unified.rules import GradientRule, OpCall, Rule

__all__ = ["modified_gradients", "BackendResult"]


@dataclass
class BackendResult:
    """What :func:`modified_gradients` returns.

    Attributes:
        gradients: :math:`\\partial^g S_c / \\partial x` for each input (or for
            each layer activation when layers were given), detached.
        outputs: :math:`S_c(x)`, shape ``(batch,)``.
        baseline_outputs: :math:`S_c(\\bar x)`, shape ``(batch,)``, when a
            reference pass ran, else ``None``.
        activations: the layers' activations at ``x`` (layer mode), detached.
        baseline_activations: the layers' activations at the baseline, when a
            reference pass ran in layer mode (batch 1 if the baseline is shared).
        layer_shapes: per layer, how many tensors of ``activations`` it owns
            and whether it returned (or took) a tuple.
    """

    gradients: tuple[Tensor, ...]
    outputs: Tensor
    baseline_outputs: Tensor | None = None
    activations: tuple[Tensor, ...] | None = None
    baseline_activations: tuple[Tensor, ...] | None = None
    layer_shapes: tuple[tuple[int, bool], ...] = ()

    @property
    def activations_are_tuple(self) -> bool:
        """(One layer) whether the layer returned or took several tensors."""
        return bool(self.layer_shapes and self.layer_shapes[0][1])

    def outputs_finite(self) -> bool:
        """Whether :math:`S_c(x)` (and :math:`S_c(\\bar x)`) are finite."""
        out = [self.outputs] + ([self.baseline_outputs] if self.baseline_outputs is not None else [])
        return all(bool(torch.isfinite(t).all()) for t in out)

    def finite(self) -> bool:
        """Whether the outputs and every gradient are finite (one reduction each)."""
        return self.outputs_finite() and all(bool(torch.isfinite(g).all()) for g in self.gradients)


def modified_gradients(
    forward_func: Callable,
    call: AttributionCall,
    rule: Rule | None = None,
    *,
    layer: None | nn.Module | Sequence[nn.Module] = None,
    attribute_to_layer_input: bool = False,
    reference_pass: bool = False,
    op_table: OpTable | None = None,
    grad_kwargs: dict[str, Any] | None = None,
    ledger: RelevanceLedger | None = None,
) -> BackendResult:
    r"""Compute :math:`\partial^g S_c(x) / \partial x` with the rule ``rule``.

    Args:
        forward_func (Callable): the model or any callable built from torch ops.
        call (AttributionCall): the formatted call: ``inputs`` (batch first;
            not modified, gradients are taken on detached copies; integer
            inputs are allowed in layer mode, token ids feeding an embedding
            layer), ``baselines`` (batch 1 or the inputs' batch; needed if
            ``rule.needs_reference`` or ``reference_pass``, may be empty
            otherwise), ``target`` and ``additional_args``.
        rule (Rule, optional): default :class:`~captum_unified.rules.GradientRule`.
        layer (nn.Module or list of nn.Module, optional): take the gradient
            with respect to these layers' outputs (or inputs) instead of the
            inputs.
        attribute_to_layer_input (bool): with ``layer``, use its input.
        reference_pass (bool): run the baseline pass even if the rule does
            not need it (to get :math:`S_c(\bar x)` and the layer's baseline
            activations).
        op_table (OpTable, optional): how ops are classified (default: the
            shipped table).
        grad_kwargs (dict, optional): extra arguments of
            :func:`torch.autograd.grad` (Captum's ``grad_kwargs``).
        ledger (RelevanceLedger, optional): fill it with the relevance each op
            takes and passes on, and warn where it is far from conservative
            (:mod:`~captum_unified.backend.ledger`; not with ``layer``).

    Returns:
        :class:`BackendResult`.
    """
    rule = rule or GradientRule()
    run = _Run(
        forward_func,
        call,
        rule,
        op_table if op_table is not None else default_op_table(),
        [] if layer is None else ([layer] if isinstance(layer, nn.Module) else list(layer)),
        attribute_to_layer_input,
        reference_pass,
        grad_kwargs or {},
        ledger if layer is None else None,
    )
    if not run.layers:
        require_floating(call.inputs)
    with preserve_model_state():
        shared = run.baseline_pass and call.shared_baseline and not train_sensitive(forward_func)
        try:
            result = run.attempt(shared)
        except PairingError:
            # A model that folds or splits its batch (Swin's windows, ``reshape(B * k, ...)``) cannot run a
            # batch-1 baseline in step with the input batch: the same baselines as a full batch can. Only
            # if those do not pair either does the model's control flow depend on its input values.
            if not shared:
                raise
            result = run.attempt(False)
        if not result.finite():
            check: FiniteCheck | None = FiniteCheck()
            try:
                run.attempt(False, check)
            except Exception:  # the diagnostic run itself failed: report without the op
                check = None
            what = "attributions" if result.outputs_finite() else "model outputs"
            raise non_finite_error(type(rule).__name__, check, call.inputs[0].dtype, what)
        return result


@dataclass
class _Run:
    """One call's passes (see the module docstring), run again as needed: with
    the full-batch baseline when a batch-1 one did not fit the model, and with
    a :class:`~captum_unified.backend.finite.FiniteCheck` to name an op that
    produced NaN or inf."""

    forward_func: Callable
    call: AttributionCall
    rule: Rule
    table: OpTable
    layers: list[nn.Module]
    attribute_to_layer_input: bool
    reference_pass: bool
    grad_kwargs: dict[str, Any]
    ledger: RelevanceLedger | None = None

    @property
    def baseline_pass(self) -> bool:
        return self.rule.needs_reference or self.reference_pass

    def attempt(self, shared: bool, check: FiniteCheck | None = None) -> BackendResult:
        references = baseline_outputs = baseline_acts = None
        ledger = LedgerPass(self.rule, self.ledger) if self.ledger is not None and check is None else None
        if self.baseline_pass:
            references, baseline_outputs, baseline_acts = self._baseline(shared, check, ledger)
        return self._inputs(references, baseline_outputs, baseline_acts, check, ledger)

    def _baseline(self, shared: bool, check: FiniteCheck | None, ledger: LedgerPass | None = None):
        """The baseline pass: the model on the baselines, without gradients;
        recorded for rules that pair ops with it."""
        call, layers, rule = self.call, self.layers, self.rule
        if not call.baselines:
            raise ValueError(f"{type(rule).__name__} needs baselines.")
        ref_inputs = call.baselines if shared else call.expanded_baselines
        recorder = None
        if rule.needs_reference and rule.modifies_gradient:
            ref_ledger = ledger.baseline_pass() if ledger is not None else None  # for t - t_bar
            recorder = RuleContext(
                rule, self.table, recording=True, leaves=() if layers else ref_inputs, finite=check, ledger=ref_ledger
            )
        captures = [
            LayerCapture(m, self.attribute_to_layer_input, False, recorder.taint if recorder is not None else None)
            for m in layers
        ]
        try:
            with torch.no_grad(), recorder if recorder is not None else nullcontext():
                raw = self.forward_func(*ref_inputs, *call.additional_args)
        finally:
            for c in captures:
                c.remove()
        if recorder is not None:
            recorder.release()
        batch, n_ref = call.batch, ref_inputs[0].shape[0]
        if isinstance(raw, Tensor) and raw.dim() > 0 and raw.shape[0] == n_ref and n_ref != batch:
            raw = raw.expand((batch,) + tuple(raw.shape[1:]))
        baseline_outputs = select_target(raw, call.target, batch).detach()
        references = recorder.records if recorder is not None else None
        baseline_acts = tuple(t.detach() for c in captures for t in c.result()) if captures else None
        return references, baseline_outputs, baseline_acts

    def _inputs(
        self, references, baseline_outputs, baseline_acts, check: FiniteCheck | None, ledger: LedgerPass | None = None
    ) -> BackendResult:
        """The input pass and one backward pass."""
        call, layers, rule = self.call, self.layers, self.rule
        inputs, batch = call.inputs, call.batch
        leaves = tuple(x.detach().requires_grad_(True) if x.is_floating_point() and not layers else x for x in inputs)
        intercept = rule.modifies_gradient or check is not None or ledger is not None
        context = (
            RuleContext(
                rule,
                self.table,
                references=references if rule.needs_reference else None,
                leaves=() if layers else leaves,
                finite=check,
                ledger=ledger,
            )
            if intercept
            else None
        )
        captures = [
            LayerCapture(m, self.attribute_to_layer_input, True, context.taint if context is not None else None)
            for m in layers
        ]
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.enable_grad())
                if context is not None:
                    stack.enter_context(context)
                raw = self.forward_func(*leaves, *call.additional_args)
                if ledger is not None:
                    ledger.stop()  # the target's selection is not the model's (the baseline pass's is outside)
                outputs = select_target(raw, call.target, batch)
        finally:
            for c in captures:
                c.remove()
        if context is not None:
            context.check_complete()
            if check is None:
                for msg in context.warnings():
                    warn(msg)
        if captures:
            per_layer = [c.result() for c in captures]
            wrt = tuple(t for ts in per_layer for t in ts)
            shapes = tuple((len(ts), c.was_tuple) for ts, c in zip(per_layer, captures))
        else:
            wrt, shapes = leaves, ()
        if check is not None:
            check.leaves(wrt)
        output_is_rule = context is not None and isinstance(raw, Tensor) and context.is_rule_output(raw)
        if context is not None:
            context.release()
        seed = torch.ones_like(outputs)
        if rule.applies_to_output and not output_is_rule:
            seed = rule.multiplier(
                lambda t: t, outputs.detach(), outputs.detach(), baseline_outputs, baseline_outputs, op=OpCall("output")
            )
        differentiable = [w for w in wrt if w.requires_grad]
        if outputs.requires_grad and differentiable:
            grads_d = torch.autograd.grad(
                outputs, differentiable, grad_outputs=seed, allow_unused=True, **self.grad_kwargs
            )
            it = iter(grads_d)
            grads_or_none = tuple(next(it) if w.requires_grad else None for w in wrt)
        else:
            grads_or_none = (None,) * len(wrt)
        if check is not None:
            check.release()
        grads = tuple(
            torch.zeros_like(w, dtype=w.dtype if w.is_floating_point() else torch.get_default_dtype())
            if g is None
            else g.detach()
            for g, w in zip(grads_or_none, wrt)
        )
        if ledger is not None:  # fills the user's RelevanceLedger, warns where relevance is not conserved
            ledger.finish(outputs.detach(), baseline_outputs, seed, wrt, grads, call.expanded_baselines)
        acts = tuple(t.detach() for t in wrt) if captures else None
        return BackendResult(grads, outputs.detach(), baseline_outputs, acts, baseline_acts, shapes)
