r"""The Taylor attribution method (Deng et al., AAAI 2021) as a Captum class."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.state import preserves_model_state
from captum_unified.taylor.terms import (
    TaylorDecomposition,
    _decompose,
    _warn_if_zero,
    format_call,
    gradient_and_hvp,
)

__all__ = ["TaylorAttribution"]


class TaylorAttribution(GradientAttribution):
    r"""First- or second-order Taylor attribution (Deng et al. 2021, "A General
    Taylor Attribution Framework").

    With :math:`\delta = x - \bar x`, :math:`g = \nabla S_c(x)` and
    :math:`H = \nabla^2 S_c(x)`, expanding at :math:`x`
    (:math:`S_c(x) - S_c(\bar x) = g^\top\delta - \tfrac12\delta^\top H\delta + O(\delta^3)`):

    .. math::

        a_i^{(1)} = g_i \delta_i, \qquad
        a_i^{(2)} = g_i \delta_i - \tfrac12 H_{ii}\delta_i^2
                   - \tfrac12 \sum_{j\ne i} H_{ij}\delta_i\delta_j
                 = g_i\delta_i - \tfrac12 \delta_i (H\delta)_i .

    Order 2 gives each feature its first-order term, its independent term and
    half of every pairwise interactive term it takes part in: the second-order
    reformulation of Integrated Gradients (Theorem 5). It costs one gradient
    and one Hessian-vector product (double backward), never a full Hessian.
    On a quadratic model it is exact (convergence delta 0).

    Args:
        forward_func (Callable): the model or any function built from torch ops
            (twice differentiable for order 2; for ReLU networks see
            :func:`~captum_unified.taylor.softplus_swap`).
        order (int, optional): 1 or 2. Default: 2.
    """

    def __init__(self, forward_func: Callable, order: int = 2) -> None:
        if order not in (1, 2):
            raise ValueError(f"order must be 1 or 2, got {order!r}.")
        GradientAttribution.__init__(self, forward_func)
        self.order = int(order)

    @property
    def multiplies_by_inputs(self) -> bool:
        return True

    def has_convergence_delta(self) -> bool:
        return True

    @log_usage()
    @preserves_model_state
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            baselines (scalar, Tensor, tuple, optional): :math:`\bar x`
                (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_i a_i - (S_c(x) - S_c(\bar x))` per sample, i.e. minus
                the Taylor approximation error.

        Returns:
            **attributions** (same type and shapes as ``inputs``), and **delta**
            (shape ``(batch,)``) if ``return_convergence_delta``.

        Warns:
            AttributionWarning: order 2 on a model whose second-order term is
            identically zero (ReLU network).

        Raises:
            ValueError: an empty batch, NaN inputs, a bad baseline or target.

        Integer or bool inputs are a ``TypeError`` (the expansion needs
        derivatives with respect to the inputs): for token ids attribute to
        the embedding layer (the ``Layer*`` classes) or use a perturbation method.
        """
        call = format_call(inputs, baselines, target, additional_forward_args)
        attrs = self._attribute(call)
        out = call.output(attrs)
        if not return_convergence_delta:
            return out
        return out, call.convergence_delta(self.forward_func, attrs)

    def _attribute(self, call: AttributionCall) -> tuple[Tensor, ...]:
        """The attributions of a formatted call, one tensor per input."""
        fmt, target, args = call.inputs, call.target, call.additional_args
        delta = tuple(d.detach() for d in call.deltas)
        if self.order == 1:
            _, grads, _ = gradient_and_hvp(self.forward_func, fmt, None, target, args)
            return tuple(g * d for g, d in zip(grads, delta))
        _, grads, hvps = gradient_and_hvp(self.forward_func, fmt, delta, target, args)
        assert hvps is not None  # vectors given
        _warn_if_zero(hvps, delta)
        return tuple(g * d - 0.5 * d * hv for g, d, hv in zip(grads, delta, hvps))

    @preserves_model_state
    def decompose(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        hessian_diagonal: str = "exact",
        n_samples: int = 64,
        seed: int | None = None,
        max_chunk: int | None = None,
    ) -> TaylorDecomposition:
        r"""Per-feature first-order, independent and interactive terms and the
        approximation error; see :func:`~captum_unified.taylor.taylor_decomposition`
        (same arguments)."""
        call = format_call(inputs, baselines, target, additional_forward_args)
        return _decompose(self.forward_func, call, hessian_diagonal, n_samples, seed, max_chunk)
