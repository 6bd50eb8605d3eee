r"""Layer versions of the modified-gradient methods (Captum's ``layer`` semantics)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import LayerAttribution
from captum.log import log_usage
from torch import Tensor, nn

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import _format_output, sum_per_sample
from captum_unified.attr._core.modified_gradient import apply_custom_attribution
from captum_unified.backend import BackendResult, modified_gradients
from captum_unified.ops import OpTable
from captum_unified.rules import EpsilonLRPRule, GradientRule, RescaleRule, Rule

__all__ = [
    "LayerModifiedGradientBase",
    "LayerModifiedGradient",
    "LayerGradientXInput",
    "LayerGradientXActivation",
    "LayerEpsilonLRP",
    "LayerDeepLiftRescale",
]

LayerType = nn.Module | Sequence[nn.Module]


class LayerModifiedGradientBase(LayerAttribution):
    r"""What the layer methods share: the layer(s), the rule, one backend run
    per call. The public classes add their own ``attribute`` signature.
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: LayerType,
        rule: Rule,
        multiply_by_inputs: bool = True,
        device_ids: list[int] | None = None,
        op_table: OpTable | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            layer (torch.nn.Module or list of torch.nn.Module): the layer(s).
            rule (Rule): what replaces each op's derivative.
            multiply_by_inputs (bool, optional): Default: True.
            device_ids (list[int], optional): must be None.
            op_table (OpTable, optional): how the backend classifies ops.
        """
        layers = [layer] if isinstance(layer, nn.Module) else list(layer) if isinstance(layer, (list, tuple)) else None
        if not layers or not all(isinstance(m, nn.Module) for m in layers):
            raise TypeError(
                f"layer must be a torch.nn.Module of the model or a list of them, got {type(layer).__name__}."
            )
        if device_ids is not None:
            raise ValueError("device_ids is not supported: call the attribution on an unwrapped model.")
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        self.rule = rule
        self.op_table = op_table
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    def _attribute(
        self,
        call: AttributionCall,
        attribute_to_layer_input: bool,
        reference_pass: bool = False,
        custom_attribution_func: Callable | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> tuple[list[tuple[Tensor, ...]], BackendResult]:
        """One backend run; the attributions per layer."""
        result = modified_gradients(
            self.forward_func,
            call,
            self.rule,
            layer=self.layer,
            attribute_to_layer_input=attribute_to_layer_input,
            reference_pass=reference_pass,
            op_table=self.op_table,
            grad_kwargs=grad_kwargs,
        )
        acts = result.activations or ()
        base = result.baseline_activations
        if custom_attribution_func is not None:
            refs = base if base is not None else tuple(a.new_zeros(a.shape) for a in acts)
            attrs = apply_custom_attribution(
                custom_attribution_func, result.gradients, acts, tuple(r.expand(a.shape) for r, a in zip(refs, acts))
            )
        elif not self._multiply_by_inputs:
            attrs = result.gradients
        elif base is not None:
            attrs = tuple(g * (a - b) for g, a, b in zip(result.gradients, acts, base))
        else:
            attrs = tuple(g * a for g, a in zip(result.gradients, acts))
        per_layer, start = [], 0
        for n, _ in result.layer_shapes:
            per_layer.append(tuple(attrs[start : start + n]))
            start += n
        return per_layer, result

    def _output(self, per_layer: list[tuple[Tensor, ...]], result: BackendResult) -> Any:
        outs = [_format_output(is_tuple, attrs) for attrs, (_, is_tuple) in zip(per_layer, result.layer_shapes)]
        return outs if isinstance(self.layer, (list, tuple)) else outs[0]

    def _deltas(self, per_layer: list[tuple[Tensor, ...]], change: Tensor) -> Any:
        """``sum(attributions) - change`` per layer (a list for a list of layers)."""
        deltas = [sum_per_sample(attrs) - change for attrs in per_layer]
        return deltas if isinstance(self.layer, (list, tuple)) else deltas[0]


class LayerModifiedGradient(LayerModifiedGradientBase):
    r"""Attribution to the neurons of a layer by the modified chain rule:

    .. math::

        R_j^c = (a_j - \bar a_j) \cdot \frac{\partial^g S_c(x)}{\partial a_j}

    where :math:`a` is the layer's output (or input, with
    ``attribute_to_layer_input=True``) and :math:`\bar a` its value at the
    baseline (zero unless the rule needs a reference pass). Only the part of
    the network above the layer matters for :math:`\partial^g`.

    The model's inputs may be integer (token ids) when the layer's output is
    floating (an embedding layer), as in Captum's layer methods.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        layer (torch.nn.Module or list of torch.nn.Module): the layer(s); each
            must be called once per forward pass. With a list the attributions
            (and deltas) are lists, one entry per layer.
        rule (Rule): what replaces each op's derivative.
        multiply_by_inputs (bool, optional): multiply by :math:`a - \bar a`.
            Default: True.
        device_ids (list[int], optional): accepted for Captum compatibility
            (DataParallel models are not split); must be None.
        op_table (OpTable, optional): how the backend classifies ops.
    """

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
        custom_attribution_func: Callable[..., tuple[Tensor, ...]] | None = None,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): model inputs, batch first
                (integer inputs are fine when the layer's output is floating).
            baselines (scalar, Tensor, tuple, optional): reference model input
                (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_j R_j - (S_c(x) - S_c(\bar x))` per sample.
            attribute_to_layer_input (bool, optional): attribute to the layer's
                input instead of its output. Default: False.
            custom_attribution_func (Callable, optional): as in Captum's
                ``LayerDeepLift``: ``f(multipliers)``, ``f(multipliers,
                activations)`` or ``f(multipliers, activations,
                baseline_activations)``.
            grad_kwargs (dict, optional): extra arguments of
                :func:`torch.autograd.grad`.

        Returns:
            **attributions** with the layer output's (or input's) shapes: a tensor,
            or a tuple if the layer returns (or takes) several tensors, or a list
            of those for a list of layers; and **delta** (shape ``(batch,)``) if
            ``return_convergence_delta``.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args)
        per_layer, result = self._attribute(
            call, attribute_to_layer_input, return_convergence_delta, custom_attribution_func, grad_kwargs
        )
        out = self._output(per_layer, result)
        if not return_convergence_delta:
            return out
        assert result.baseline_outputs is not None  # the reference pass ran (reference_pass=True)
        return out, self._deltas(per_layer, result.outputs - result.baseline_outputs)


class LayerGradientXInput(LayerModifiedGradientBase):
    r"""Layer Gradient*Activation: :math:`a_j \cdot \partial S_c / \partial a_j`
    (Captum's :class:`~captum.attr.LayerGradientXActivation`, also importable
    under that name).
    """

    def __init__(
        self, forward_func: Callable, layer: LayerType, device_ids=None, multiply_by_inputs: bool = True
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            layer (torch.nn.Module or list): the layer(s).
            device_ids: must be None (Captum compatibility).
            multiply_by_inputs (bool, optional): Default: True.
        """
        super().__init__(forward_func, layer, GradientRule(), multiply_by_inputs, device_ids)

    def has_convergence_delta(self) -> bool:
        return False

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        grad_kwargs: dict[str, Any] | None = None,
    ) -> Any:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): model inputs, batch first.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            attribute_to_layer_input (bool, optional): Default: False.
            grad_kwargs (dict, optional): extra arguments of :func:`torch.autograd.grad`.

        Returns:
            **attributions** with the layer output's (or input's) shape (a list
            for a list of layers).
        """
        call = AttributionCall.format(inputs, None, target, additional_forward_args)
        per_layer, result = self._attribute(call, attribute_to_layer_input, grad_kwargs=grad_kwargs)
        return self._output(per_layer, result)


#: Captum's name for the same method.
LayerGradientXActivation = LayerGradientXInput


class LayerEpsilonLRP(LayerModifiedGradientBase):
    r"""epsilon-LRP relevance of a layer's neurons:
    :math:`a_j \cdot \partial^{g} S_c / \partial a_j` with the epsilon rule
    (Ancona et al. Proposition 1 applied from the layer up; Captum's
    :class:`~captum.attr.LayerLRP` with epsilon rules).
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: LayerType,
        epsilon: float = 1e-9,
        device_ids=None,
        products: str = "uniform",
        norm: str = "constant",
        op_table: OpTable | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            layer (torch.nn.Module or list): the layer(s).
            epsilon (float, optional): stabiliser. Default: 1e-9.
            device_ids: must be None (Captum compatibility).
            products (str, optional): product policy (see :class:`~captum_unified.rules.EpsilonLRPRule`).
            norm (str, optional): LayerNorm treatment.
            op_table (OpTable, optional): how the backend classifies ops.
        """
        super().__init__(
            forward_func, layer, EpsilonLRPRule(epsilon, products=products, norm=norm), True, device_ids, op_table
        )

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
        attribute_to_layer_input: bool = False,
    ) -> Any:
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
        call = AttributionCall.format(inputs, None, target, additional_forward_args)
        per_layer, result = self._attribute(call, attribute_to_layer_input)
        out = self._output(per_layer, result)
        if not return_convergence_delta:
            return out
        neg = self._deltas(per_layer, result.outputs)
        return out, [-d for d in neg] if isinstance(neg, list) else -neg


class LayerDeepLiftRescale(LayerModifiedGradient):
    r"""DeepLIFT (Rescale) contributions of a layer's neurons:
    :math:`(a_j - \bar a_j) \cdot \partial^{g} S_c / \partial a_j`
    (Captum's :class:`~captum.attr.LayerDeepLift`), complete through products,
    max, normalisation and fused ops as :class:`~captum_unified.DeepLiftRescale`.
    """

    def __init__(
        self,
        forward_func: Callable,
        layer: LayerType,
        multiply_by_inputs: bool = True,
        eps: float = 1e-10,
        products: str = "shapley",
        maxima: str = "deeplift",
        op_table: OpTable | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            layer (torch.nn.Module or list): the layer(s).
            multiply_by_inputs (bool, optional): Default: True.
            eps (float, optional): Rescale threshold. Default: 1e-10.
            products (str, optional): ``"shapley"`` (default) or ``"gradient"``.
            maxima (str, optional): ``"deeplift"`` (default), ``"tree"`` or ``"gradient"``.
            op_table (OpTable, optional): how the backend classifies ops.
        """
        super().__init__(
            forward_func,
            layer,
            RescaleRule(eps, products=products, maxima=maxima),
            multiply_by_inputs,
            op_table=op_table,
        )
