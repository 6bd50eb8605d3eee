r"""Gradient*Input on the unified backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage

from captum_unified._utils.call import AttributionCall
from captum_unified.attr._core.modified_gradient import ModifiedGradientBase
from captum_unified.ops import OpTable
from captum_unified.rules import GradientRule

__all__ = ["GradientXInput", "InputXGradient"]


class GradientXInput(ModifiedGradientBase):
    r"""Gradient*Input (Shrikumar et al. 2016; Ancona et al. Table 1):

    .. math::

        R_i^c(x) = x_i \cdot \frac{\partial S_c(x)}{\partial x_i}

    The first-order Taylor attribution with baseline 0 (Deng et al. Theorem 1).
    Same results as Captum's :class:`~captum.attr.InputXGradient` (also
    importable under that name: ``captum_unified.InputXGradient``).
    """

    def __init__(self, forward_func: Callable, op_table: OpTable | None = None) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            op_table (OpTable, optional): accepted for a uniform constructor; the
                gradient rule intercepts nothing.
        """
        super().__init__(forward_func, GradientRule(), multiply_by_inputs=True, op_table=op_table)

    def has_convergence_delta(self) -> bool:
        return False

    @log_usage()
    def attribute(
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
        call = AttributionCall.format(inputs, None, target, additional_forward_args)
        attrs, _ = self._compute(call)
        return call.output(attrs)


#: Captum's name for the same method.
InputXGradient = GradientXInput
