r"""epsilon-LRP as a modified gradient (Ancona et al. Proposition 1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

from captum._utils.typing import TargetType, TensorOrTupleOfTensorsGeneric
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import sum_per_sample
from captum_unified.attr._core.modified_gradient import ModifiedGradientBase
from captum_unified.ops import OpTable
from captum_unified.rules import EpsilonLRPRule

__all__ = ["EpsilonLRP"]


class EpsilonLRP(ModifiedGradientBase):
    r"""epsilon-LRP (Bach et al. 2015) computed as Gradient*Input with each
    nonlinearity's derivative replaced by :math:`g(z) = f(z) / (z + \epsilon\,
    \mathrm{sign}(z))` (Ancona et al., Proposition 1):

    .. math::

        R_i^c(x) = x_i \cdot \frac{\partial^{g} S_c(x)}{\partial x_i}

    It equals the layer-by-layer propagation of Ancona's Eq. 2 with the
    stabiliser at every layer followed by a nonlinearity and at the explained
    output (once: if the model's last op is a nonlinearity its rule is the
    output's stabiliser), and Captum's :class:`~captum.attr.LRP` with epsilon
    rules on ReLU and Tanh networks (Captum passes relevance through the
    activation unchanged, which is :math:`f(z)/z` in modified-gradient form).
    Unlike Captum's ``LRP`` it needs no per-layer rule set up and works on any
    callable, including products (uniform rule, AttnLRP), LayerNorm (constant
    scale) and gates (``products="gate"``, Arras et al. 2017).

    With only ReLUs it equals Gradient*Input as :math:`\epsilon \to 0`
    (Proposition 3i). For nonlinearities with :math:`f(0) \ne 0` (Sigmoid,
    Softplus) the method is unstable (Ancona §4 point 5) and a
    :class:`~captum_unified.AttributionWarning` says so.
    """

    def __init__(
        self,
        forward_func: Callable,
        epsilon: float = 1e-9,
        products: str = "uniform",
        norm: str = "constant",
        op_table: OpTable | None = None,
    ) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            epsilon (float, optional): stabiliser. Default: 1e-9 (Captum's).
            products (str, optional): ``"uniform"`` (default), ``"gate"`` or
                ``"gradient"`` (see :class:`~captum_unified.rules.EpsilonLRPRule`).
            norm (str, optional): ``"constant"`` (default), ``"decompose"`` or
                ``"gradient"``.
            op_table (OpTable, optional): how the backend classifies ops.
        """
        super().__init__(
            forward_func,
            EpsilonLRPRule(epsilon, products=products, norm=norm),
            multiply_by_inputs=True,
            op_table=op_table,
        )
        self.epsilon = epsilon

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        return_convergence_delta: Literal[True],
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: Literal[False] = False,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`S_c(x) - \sum_i R_i` per sample, the relevance absorbed by
                biases and stabilisers (Captum ``LRP``'s convention).

        Returns:
            **attributions** (same type and shapes as ``inputs``), and **delta**
            (shape ``(batch,)``) if ``return_convergence_delta``.
        """
        call = AttributionCall.format(inputs, None, target, additional_forward_args)
        attrs, result = self._compute(call)
        out = call.output(attrs)
        if not return_convergence_delta:
            return out
        return out, result.outputs - sum_per_sample(attrs)
