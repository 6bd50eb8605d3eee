r"""DeepLIFT (Rescale) as a modified gradient (Ancona et al. Proposition 2)."""
from __future__ import annotations

from typing import Any, Callable, Optional, Tuple, Union

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage
from torch import Tensor

from captum_unified.attr._core.modified_gradient import ModifiedGradient
from captum_unified.rules import RescaleRule

__all__ = ["DeepLiftRescale"]


class DeepLiftRescale(ModifiedGradient):
    r"""DeepLIFT with the Rescale rule (Shrikumar et al. 2017) computed as the
    modified gradient with :math:`g(z) = (f(z) - f(\bar z)) / (z - \bar z)`
    (Ancona et al., Proposition 2):

    .. math::

        R_i^c(x) = (x_i - \bar x_i) \cdot \frac{\partial^{g} S_c(x)}{\partial x_i}

    :math:`\bar z` is each nonlinearity's input when the baseline is fed, taken
    from one forward pass on the baseline without gradients (on a batch of one
    when the baseline is shared by all samples). The attributions sum to
    :math:`S_c(x) - S_c(\bar x)` (completeness) unless the network multiplies
    two input-dependent values (gates, attention); then a
    :class:`~captum_unified.AttributionWarning` is raised (Ancona §3.1).

    Same results as Captum's :class:`~captum.attr.DeepLift` (Rescale) on the
    networks it supports; unlike it, this also handles functional activations
    (``torch.tanh``, ``x.sigmoid()``) and a module object used at several places.
    Max-pooling keeps its gradient (Ancona Appendix A.2).

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        multiply_by_inputs (bool, optional): if False return the multipliers
            :math:`\partial^g S_c / \partial x` only. Default: True.
        eps (float, optional): below this :math:`|z - \bar z|` the rule uses
            :math:`f'(z)`. Default: 1e-10.
    """

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True, eps: float = 1e-10) -> None:
        super().__init__(forward_func, RescaleRule(eps), multiply_by_inputs=multiply_by_inputs)

    @log_usage()
    def attribute(  # type: ignore[override]
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
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            baselines (scalar, Tensor, tuple, optional): reference input
                :math:`\bar x` (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_i R_i - (S_c(x) - S_c(\bar x))` per sample.
            custom_attribution_func (Callable, optional): as in Captum's DeepLift.

        Returns:
            **attributions** (same type and shapes as ``inputs``), and **delta**
            (shape ``(batch,)``) if ``return_convergence_delta``.
        """
        return super().attribute(
            inputs, baselines, target, additional_forward_args,
            return_convergence_delta, custom_attribution_func,
        )
