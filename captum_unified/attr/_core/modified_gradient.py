r"""ModifiedGradient: the generic method of the unified framework."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.common import (
    _format_output,
    _is_tuple,
    convergence_delta,
    format_additional_args,
    format_baselines,
    format_inputs,
    sum_per_sample,
)
from captum_unified.backend import BackendResult, modified_gradients
from captum_unified.rules import Rule

__all__ = ["ModifiedGradient"]


class ModifiedGradient(GradientAttribution):
    r"""Attribution by the modified chain rule (Ancona et al., ICLR 2018, Eq. 5):

    .. math::

        R_i^c(x) = (x_i - \bar x_i) \cdot \frac{\partial^g S_c(x)}{\partial x_i}

    where :math:`\partial^g` is backpropagation with each element-wise
    nonlinearity's derivative replaced by the rule :math:`g`
    (:mod:`captum_unified.rules`). With ``GradientRule`` and a zero baseline this
    is Gradient*Input, with ``EpsilonRule`` epsilon-LRP and with ``RescaleRule``
    DeepLIFT (Rescale) (Ancona et al., Table 1). With ``multiply_by_inputs=False``
    the modified gradient itself is returned (the "multipliers").

    The rule reaches every nonlinearity however the model applies it (modules,
    ``F.*`` / ``torch.*`` functions, tensor methods, one module reused at several
    places, modules created in ``forward``); see :mod:`captum_unified.backend`.

    Args:
        forward_func (Callable): the model, or any function built from torch ops.
        rule (Rule): what replaces each nonlinearity's derivative.
        multiply_by_inputs (bool, optional): multiply the modified gradient by
            :math:`x - \bar x` (global attribution, Ancona §3.2). Default: True.

    Example::

        >>> from captum_unified import ModifiedGradient, RescaleRule
        >>> mg = ModifiedGradient(model, RescaleRule())
        >>> attr, delta = mg.attribute(x, baselines=0.0, target=3,
        ...                            return_convergence_delta=True)
    """

    def __init__(self, forward_func: Callable, rule: Rule, multiply_by_inputs: bool = True) -> None:
        if not isinstance(rule, Rule):
            raise TypeError(
                f"rule must be a captum_unified.rules.Rule instance, got {type(rule).__name__}; "
                "e.g. EpsilonRule(1e-6) or a subclass of Rule."
            )
        GradientAttribution.__init__(self, forward_func)
        self.rule = rule
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def _compute(
        self,
        inputs: Any,
        baselines: BaselineType,
        target: TargetType,
        additional_forward_args: Any,
        custom_attribution_func: Optional[Callable] = None,
    ) -> Tuple[bool, Tuple[Tensor, ...], Tuple[Tensor, ...], BackendResult]:
        is_inputs_tuple = _is_tuple(inputs)
        inputs = format_inputs(inputs)
        baselines = format_baselines(baselines, inputs)
        args = format_additional_args(additional_forward_args)
        result = modified_gradients(
            self.forward_func, inputs, self.rule, target, args,
            baselines=baselines,
        )
        grads = result.gradients
        if custom_attribution_func is not None:
            attrs = _custom(custom_attribution_func, grads, inputs, baselines)
        elif self.multiplies_by_inputs:
            attrs = tuple(g * (x - b) for g, x, b in zip(grads, inputs, baselines))
        else:
            attrs = grads
        return is_inputs_tuple, attrs, baselines, result

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        custom_attribution_func: Optional[Callable[..., Tuple[Tensor, ...]]] = None,
    ) -> Union[TensorOrTupleOfTensorsGeneric, Tuple[TensorOrTupleOfTensorsGeneric, Tensor]]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): input for which attributions
                are computed, batch first. A tuple of tensors gives a tuple of
                attributions.
            baselines (scalar, Tensor, tuple, optional): the reference
                :math:`\bar x`: a number, a tensor of the input's shape, of one
                sample's shape or with batch 1, or a tuple of those (one per
                input). Used to multiply (:math:`x - \bar x`) and, for rules that
                need it, to compute the reference pre-activations. Default: zeros.
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
        is_tuple, attrs, baselines, result = self._compute(
            inputs, baselines, target, additional_forward_args, custom_attribution_func
        )
        out = _format_output(is_tuple, attrs)
        if not return_convergence_delta:
            return out
        delta = self._delta(attrs, baselines, result, target, additional_forward_args, inputs)
        return out, delta

    def _delta(self, attrs, baselines, result, target, additional_forward_args, inputs) -> Tensor:
        """``sum(attributions) - (S(x) - S(x̄))`` (Captum's convention)."""
        if result.baseline_outputs is None:
            fmt = format_inputs(inputs)
            return convergence_delta(
                self.forward_func, attrs, fmt, baselines, target, format_additional_args(additional_forward_args)
            )
        return sum_per_sample(attrs) - (result.outputs - result.baseline_outputs)


def _custom(func: Callable, grads, inputs, baselines) -> Tuple[Tensor, ...]:
    import inspect

    n = len(inspect.signature(func).parameters)
    if n == 1:
        out = func(grads)
    elif n == 2:
        out = func(grads, inputs)
    else:
        out = func(grads, inputs, tuple(b.expand_as(x) for b, x in zip(baselines, inputs)))
    return out if isinstance(out, tuple) else (out,)
