r"""Gradient*Input on the unified backend."""
from __future__ import annotations

from typing import Any, Callable

from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage

from captum_unified.attr._core.modified_gradient import ModifiedGradient
from captum_unified.rules import GradientRule

__all__ = ["GradientXInput"]


class GradientXInput(ModifiedGradient):
    r"""Gradient*Input (Shrikumar et al. 2016; Ancona et al. Table 1):

    .. math::

        R_i^c(x) = x_i \cdot \frac{\partial S_c(x)}{\partial x_i}

    The first-order Taylor attribution with baseline 0 (Deng et al. Theorem 1).
    Same results as Captum's :class:`~captum.attr.InputXGradient`.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
    """

    def __init__(self, forward_func: Callable) -> None:
        super().__init__(forward_func, GradientRule(), multiply_by_inputs=True)

    def has_convergence_delta(self) -> bool:
        return False

    @log_usage()
    def attribute(  # type: ignore[override]
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
    ) -> TensorOrTupleOfTensorsGeneric:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.

        Returns:
            **attributions** :math:`x \odot \nabla_x S_c(x)`, same type and shapes
            as ``inputs``.
        """
        return super().attribute(inputs, None, target, additional_forward_args)
