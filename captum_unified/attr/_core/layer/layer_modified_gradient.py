r"""Layer versions of the modified-gradient methods (Captum's ``layer`` semantics)."""
from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple, Union

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_unified._utils.common import (
    _format_output,
    format_additional_args,
    format_baselines,
    format_inputs,
    sum_per_sample,
)
from captum_unified.backend import modified_gradients
from captum_unified.rules import EpsilonRule, GradientRule, RescaleRule, Rule

__all__ = ["LayerModifiedGradient", "LayerGradientXInput", "LayerEpsilonLRP", "LayerDeepLiftRescale"]


class LayerModifiedGradient(LayerAttribution):
    r"""Attribution to the neurons of a layer by the modified chain rule:

    .. math::

        R_j^c = (a_j - \bar a_j) \cdot \frac{\partial^g S_c(x)}{\partial a_j}

    where :math:`a` is the layer's output (or input, with
    ``attribute_to_layer_input=True``) and :math:`\bar a` its value at the
    baseline (zero unless the rule needs a reference pass). Only the part of the
    network above the layer matters for :math:`\partial^g`.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        layer (torch.nn.Module): the layer; it must be called once per forward.
        rule (Rule): what replaces each nonlinearity's derivative.
        multiply_by_inputs (bool, optional): multiply by :math:`a - \bar a`.
            Default: True.
        device_ids (list[int], optional): accepted for Captum compatibility
            (DataParallel models are not split); must be None.
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: nn.Module,
        rule: Rule,
        multiply_by_inputs: bool = True,
        device_ids: Optional[List[int]] = None,
    ) -> None:
        if not isinstance(layer, nn.Module):
            raise TypeError(f"layer must be a torch.nn.Module of the model, got {type(layer).__name__}.")
        if device_ids is not None:
            raise ValueError("device_ids is not supported: call the attribution on an unwrapped model.")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self.rule = rule
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def _attribute(
        self,
        inputs: Any,
        baselines: BaselineType,
        target: TargetType,
        additional_forward_args: Any,
        attribute_to_layer_input: bool,
    ):
        fmt = format_inputs(inputs)
        base = format_baselines(baselines, fmt)
        args = format_additional_args(additional_forward_args)
        result = modified_gradients(
            self.forward_func, fmt, self.rule, target, args, baselines=base,
            layer=self.layer, attribute_to_layer_input=attribute_to_layer_input,
        )
        acts = result.activations
        if not self._multiply_by_inputs:
            attrs = result.gradients
        elif result.baseline_activations is not None:
            attrs = tuple(g * (a - b) for g, a, b in zip(result.gradients, acts, result.baseline_activations))
        else:
            attrs = tuple(g * a for g, a in zip(result.gradients, acts))
        return attrs, result

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
    ) -> Union[Tensor, Tuple[Tensor, ...], Tuple[Union[Tensor, Tuple[Tensor, ...]], Tensor]]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): model inputs, batch first.
            baselines (scalar, Tensor, tuple, optional): reference model input
                (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_j R_j - (S_c(x) - S_c(\bar x))` per sample.
            attribute_to_layer_input (bool, optional): attribute to the layer's
                input instead of its output. Default: False.

        Returns:
            **attributions** with the layer output's (or input's) shapes: a tensor,
            or a tuple if the layer returns (or takes) several tensors; and
            **delta** (shape ``(batch,)``) if ``return_convergence_delta``.
        """
        attrs, result = self._attribute(inputs, baselines, target, additional_forward_args, attribute_to_layer_input)
        out = _format_output(result.activations_are_tuple, attrs)
        if not return_convergence_delta:
            return out
        return out, self._delta(attrs, result, inputs, baselines, target, additional_forward_args)

    def _delta(self, attrs, result, inputs, baselines, target, additional_forward_args) -> Tensor:
        if result.baseline_outputs is not None:
            return sum_per_sample(attrs) - (result.outputs - result.baseline_outputs)
        from captum_unified._utils.common import run_forward
        import torch

        fmt = format_inputs(inputs)
        base = format_baselines(baselines, fmt)
        with torch.no_grad():
            start = run_forward(
                self.forward_func, tuple(b.expand_as(x) for b, x in zip(base, fmt)), target,
                format_additional_args(additional_forward_args),
            )
        return sum_per_sample(attrs) - (result.outputs - start)


class LayerGradientXInput(LayerModifiedGradient):
    r"""Layer Gradient*Activation: :math:`a_j \cdot \partial S_c / \partial a_j`
    (Captum's :class:`~captum.attr.LayerGradientXActivation`).

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        layer (torch.nn.Module): the layer.
        device_ids: must be None (Captum compatibility).
        multiply_by_inputs (bool, optional): Default: True.
    """

    def __init__(self, forward_func: Callable, layer: nn.Module, device_ids=None, multiply_by_inputs: bool = True) -> None:
        super().__init__(forward_func, layer, GradientRule(), multiply_by_inputs, device_ids)

    def has_convergence_delta(self) -> bool:
        return False

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
    ):
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): model inputs, batch first.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            attribute_to_layer_input (bool, optional): Default: False.

        Returns:
            **attributions** with the layer output's (or input's) shape.
        """
        return super().attribute(inputs, None, target, additional_forward_args, False, attribute_to_layer_input)


class LayerEpsilonLRP(LayerModifiedGradient):
    r"""epsilon-LRP relevance of a layer's neurons:
    :math:`a_j \cdot \partial^{g} S_c / \partial a_j` with the epsilon rule
    (Ancona et al. Proposition 1 applied from the layer up).

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        layer (torch.nn.Module): the layer.
        epsilon (float, optional): stabiliser. Default: 1e-9.
        device_ids: must be None (Captum compatibility).
    """

    def __init__(self, forward_func: Callable, layer: nn.Module, epsilon: float = 1e-9, device_ids=None) -> None:
        super().__init__(forward_func, layer, EpsilonRule(epsilon), True, device_ids)

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
    ):
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): model inputs, batch first.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`S_c(x) - \sum_j R_j` per sample (Captum ``LayerLRP``'s sign).
            attribute_to_layer_input (bool, optional): Default: False.

        Returns:
            **attributions** with the layer output's (or input's) shape, and
            **delta** if ``return_convergence_delta``.
        """
        attrs, result = self._attribute(inputs, None, target, additional_forward_args, attribute_to_layer_input)
        out = _format_output(result.activations_are_tuple, attrs)
        if not return_convergence_delta:
            return out
        return out, result.outputs - sum_per_sample(attrs)


class LayerDeepLiftRescale(LayerModifiedGradient):
    r"""DeepLIFT (Rescale) contributions of a layer's neurons:
    :math:`(a_j - \bar a_j) \cdot \partial^{g} S_c / \partial a_j`
    (Captum's :class:`~captum.attr.LayerDeepLift`).

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        layer (torch.nn.Module): the layer.
        multiply_by_inputs (bool, optional): Default: True.
        eps (float, optional): Rescale threshold. Default: 1e-10.
    """

    def __init__(self, forward_func: Callable, layer: nn.Module, multiply_by_inputs: bool = True, eps: float = 1e-10) -> None:
        super().__init__(forward_func, layer, RescaleRule(eps), multiply_by_inputs)
