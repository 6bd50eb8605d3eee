r"""ModifiedGradient: the generic method of the unified framework."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Literal, overload

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import sum_per_sample
from captum_unified.backend import BackendResult, modified_gradients
from captum_unified.backend.ledger import RelevanceLedger
from captum_unified.ops import OpTable
from captum_unified.rules import Rule

__all__ = ["ModifiedGradient", "ModifiedGradientBase", "apply_custom_attribution"]


class ModifiedGradientBase(GradientAttribution):
    r"""What every modified-gradient method shares: the rule, the op table and
    one backend run per call (:meth:`_compute`). The public classes add their
    own ``attribute`` signature (:class:`ModifiedGradient` and
    :class:`~captum_unified.DeepLiftRescale` take baselines;
    :class:`~captum_unified.EpsilonLRP` and :class:`~captum_unified.GradientXInput`
    do not).
    """

    def __init__(
        self,
        forward_func: Callable,
        rule: Rule,
        multiply_by_inputs: bool = True,
        op_table: OpTable | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model, or any function built from torch ops.
            rule (Rule): what replaces each op's derivative.
            multiply_by_inputs (bool, optional): multiply the modified gradient by
                :math:`x - \bar x`. Default: True.
            op_table (OpTable, optional): how the backend classifies ops.
        """
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rule must be a captum_unified.rules.Rule instance, got {type(rule).__name__}; "
                "e.g. EpsilonLRPRule(1e-6) or a subclass of Rule."
            )
        GradientAttribution.__init__(self, forward_func)
        self.rule = rule
        self.op_table = op_table
        self._multiply_by_inputs = multiply_by_inputs
        self._ledger: RelevanceLedger | None = None

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def _compute(
        self,
        call: AttributionCall,
        reference_pass: bool = False,
        custom_attribution_func: Callable | None = None,
    ) -> tuple[tuple[Tensor, ...], BackendResult]:
        """Run the backend once and form the attributions."""
        result = modified_gradients(
            self.forward_func,
            call,
            self.rule,
            reference_pass=reference_pass,
            op_table=self.op_table,
            ledger=getattr(self, "_ledger", None),  # set inside ``with relevance_ledger(self)`` only
        )
        grads = result.gradients
        if custom_attribution_func is not None:
            attrs = apply_custom_attribution(custom_attribution_func, grads, call.inputs, call.expanded_baselines)
        elif self.multiplies_by_inputs:
            attrs = tuple(g * d for g, d in zip(grads, call.deltas))
        else:
            attrs = grads
        return attrs, result


class ModifiedGradient(ModifiedGradientBase):
    r"""Attribution by the modified chain rule (Ancona et al., ICLR 2018, Eq. 5):

    .. math::

        R_i^c(x) = (x_i - \bar x_i) \cdot \frac{\partial^g S_c(x)}{\partial x_i}

    where :math:`\partial^g` is backpropagation with each element-wise
    nonlinearity's derivative replaced by the rule :math:`g`, products of two
    input-dependent values differentiated by the rule's product policy and
    composite ops decomposed (:mod:`captum_unified.rules`,
    :mod:`captum_unified.ops`). With ``GradientRule`` and a zero baseline this
    is Gradient*Input, with ``EpsilonLRPRule`` epsilon-LRP and with
    ``RescaleRule`` DeepLIFT (Rescale) (Ancona et al., Table 1). With
    ``multiply_by_inputs=False`` the modified gradient itself is returned (the
    "multipliers").

    The rule reaches every op however the model calls it (modules, ``F.*`` /
    ``torch.*`` functions, tensor methods, in-place and keyword calls, one
    module reused at several places, fused ``nn.LSTM`` / attention); see
    :mod:`captum_unified.backend`.

    Args:
        forward_func (Callable): the model, or any function built from torch ops.
        rule (Rule): what replaces each op's derivative.
        multiply_by_inputs (bool, optional): multiply the modified gradient by
            :math:`x - \bar x` (global attribution, Ancona §3.2). Default: True.
        op_table (OpTable, optional): how the backend classifies ops; default
            :func:`captum_unified.ops.default_op_table`. Extend it (e.g.
            ``default_op_table().with_elementwise("my_act", my_act)``) for ops
            the shipped table does not know.

    Example::

        >>> from captum_unified import ModifiedGradient, RescaleRule
        >>> mg = ModifiedGradient(model, RescaleRule())
        >>> attr, delta = mg.attribute(x, baselines=0.0, target=3,
        ...                            return_convergence_delta=True)
    """

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        return_convergence_delta: Literal[True],
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: Literal[False] = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): input for which attributions
                are computed, batch first. A tuple of tensors gives a tuple of
                attributions.
            baselines (scalar, Tensor, tuple, optional): the reference
                :math:`\bar x`: a number, a tensor of the input's shape, of one
                sample's shape, with batch 1 or broadcastable to the input, or a
                tuple of those (one per input). Used to multiply
                (:math:`x - \bar x`) and, for rules that need it, in the
                reference pass. Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output index
                selection. Default: None (scalar-per-sample models).
            additional_forward_args (Any, optional): extra arguments of
                ``forward_func`` after the inputs; per-sample tensors must have
                the batch first.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_i R_i - (S_c(x) - S_c(\bar x))` per sample.
            custom_attribution_func (Callable, optional): as in Captum's
                ``DeepLift``: ``f(multipliers)``, ``f(multipliers, inputs)`` or
                ``f(multipliers, inputs, baselines)`` returning the attributions.

        Returns:
            **attributions** (same type and shapes as ``inputs``), and
            **delta** (Tensor of shape ``(batch,)``) if
            ``return_convergence_delta``.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args)
        attrs, result = self._compute(call, return_convergence_delta, custom_attribution_func)
        out = call.output(attrs)
        if not return_convergence_delta:
            return out
        assert result.baseline_outputs is not None  # the reference pass ran (reference_pass=True)
        return out, sum_per_sample(attrs) - (result.outputs - result.baseline_outputs)


def apply_custom_attribution(func: Callable, multipliers, inputs, baselines) -> tuple[Tensor, ...]:
    """Captum's ``custom_attribution_func`` convention: called with the
    multipliers, then the inputs, then the (expanded) baselines, as many as
    ``func`` takes."""
    n = len(inspect.signature(func).parameters)
    if n == 1:
        out = func(multipliers)
    elif n == 2:
        out = func(multipliers, inputs)
    else:
        out = func(multipliers, inputs, baselines)
    return out if isinstance(out, tuple) else (out,)
