r"""Integrated Gradients on the unified backend."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, overload

import torch
from captum._utils.typing import BaselineType, TargetType, TensorOrTupleOfTensorsGeneric
from captum.attr._utils.approximation_methods import approximation_parameters
from captum.attr._utils.attribution import GradientAttribution
from captum.log import log_usage
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import expand_additional_args, expand_target
from captum_unified.backend import modified_gradients
from captum_unified.rules import GradientRule, Rule

__all__ = ["IntegratedGradients", "path_gradients"]


def path_gradients(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: TargetType,
    additional_args: tuple[Any, ...],
    n_steps: int,
    method: str,
    internal_batch_size: int | None = None,
    rule: Rule | None = None,
) -> tuple[Tensor, ...]:
    r"""Riemann/Gauss-Legendre estimate of
    :math:`\int_0^1 \partial^g S_c(\bar x + \alpha (x - \bar x)) / \partial x \, d\alpha`.

    The path points of several steps are stacked into one batch (at most
    ``internal_batch_size`` rows) and sent through the backend together. The
    weighted sum over steps is accumulated in float64 (float32 gradients
    summed over hundreds of steps otherwise lose about two digits).
    """
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
    step_sizes_fn, alphas_fn = approximation_parameters(method)
    step_sizes, alphas = step_sizes_fn(n_steps), alphas_fn(n_steps)
    batch = inputs[0].shape[0]
    per_chunk = n_steps if internal_batch_size is None else max(1, int(internal_batch_size) // batch)
    acc = torch.float64 if inputs[0].dtype in (torch.float16, torch.bfloat16, torch.float32) else inputs[0].dtype
    totals = [torch.zeros(x.shape, dtype=acc, device=x.device) for x in inputs]
    for start in range(0, n_steps, per_chunk):
        a = alphas[start : start + per_chunk]
        w = step_sizes[start : start + per_chunk]
        k = len(a)
        alpha = torch.tensor(a, dtype=inputs[0].dtype, device=inputs[0].device)
        scaled = tuple(
            (b.unsqueeze(0) + alpha.view((k,) + (1,) * x.dim()) * (x - b).unsqueeze(0)).reshape(
                (k * batch,) + tuple(x.shape[1:])
            )
            for x, b in zip(inputs, baselines)
        )
        points = AttributionCall(
            scaled,
            (),  # no baselines: the rule here needs no baseline pass
            expand_additional_args(additional_args, k) if k > 1 else additional_args,
            expand_target(target, k) if k > 1 else target,
            True,
        )
        result = modified_gradients(forward_func, points, rule or GradientRule())
        weights = torch.tensor(w, dtype=acc, device=inputs[0].device)
        for i, (g, x) in enumerate(zip(result.gradients, inputs)):
            g = g.reshape((k, batch) + tuple(x.shape[1:])).to(acc)
            totals[i] += torch.tensordot(weights, g, dims=([0], [0]))
    return tuple(t.to(x.dtype) for t, x in zip(totals, inputs))


class IntegratedGradients(GradientAttribution):
    r"""Integrated Gradients (Sundararajan et al. 2017; Ancona et al. Table 1):

    .. math::

        R_i^c(x) = (x_i - \bar x_i) \int_0^1
            \frac{\partial S_c(\tilde x)}{\partial \tilde x_i}
            \Big|_{\tilde x = \bar x + \alpha (x - \bar x)} d\alpha

    The integral uses Captum's approximation methods (``"gausslegendre"``,
    ``"riemann_left"``, ``"riemann_right"``, ``"riemann_middle"``,
    ``"riemann_trapezoid"``); the gradients come from the unified backend with
    the gradient rule. Same options and results as Captum's
    :class:`~captum.attr.IntegratedGradients`. In Taylor terms it is the first
    order term plus the independent terms plus half of every pairwise
    interactive term (Deng et al. Theorem 5).
    """

    def __init__(self, forward_func: Callable, multiply_by_inputs: bool = True) -> None:
        r"""
        Args:
            forward_func (Callable): the model or any function built from torch ops.
            multiply_by_inputs (bool, optional): multiply the path-averaged gradient
                by :math:`x - \bar x`. Default: True.
        """
        GradientAttribution.__init__(self, forward_func)
        self._multiply_by_inputs = multiply_by_inputs

    @property
    def multiplies_by_inputs(self) -> bool:
        return self._multiply_by_inputs

    def has_convergence_delta(self) -> bool:
        return True

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        *,
        return_convergence_delta: Literal[True],
    ) -> tuple[TensorOrTupleOfTensorsGeneric, Tensor]: ...

    @overload
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: Literal[False] = False,
    ) -> TensorOrTupleOfTensorsGeneric: ...

    @log_usage()
    def attribute(
        self,
        inputs: TensorOrTupleOfTensorsGeneric,
        baselines: BaselineType = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        n_steps: int = 50,
        method: str = "gausslegendre",
        internal_batch_size: int | None = None,
        return_convergence_delta: bool = False,
    ) -> TensorOrTupleOfTensorsGeneric | tuple[TensorOrTupleOfTensorsGeneric, Tensor]:
        r"""
        Args:
            inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
            baselines (scalar, Tensor, tuple, optional): path start
                :math:`\bar x` (Captum's forms). Default: zeros.
            target (int, tuple, Tensor, list, optional): Captum's output selection.
            additional_forward_args (Any, optional): extra ``forward_func`` args.
            n_steps (int, optional): integration steps. Default: 50.
            method (str, optional): approximation method. Default:
                ``"gausslegendre"``.
            internal_batch_size (int, optional): at most this many rows per
                forward/backward pass (bounds memory). Default: all steps at once.
            return_convergence_delta (bool, optional): also return
                :math:`\sum_i R_i - (S_c(x) - S_c(\bar x))` per sample.

        Returns:
            **attributions** (same type and shapes as ``inputs``), and **delta**
            (shape ``(batch,)``) if ``return_convergence_delta``.
        """
        call = AttributionCall.format(inputs, baselines, target, additional_forward_args).floating()
        avg = path_gradients(
            self.forward_func,
            call.inputs,
            call.baselines,
            call.target,
            call.additional_args,
            n_steps,
            method,
            internal_batch_size,
        )
        attrs = tuple(g * d for g, d in zip(avg, call.deltas)) if self._multiply_by_inputs else avg
        out = call.output(attrs)
        if not return_convergence_delta:
            return out
        return out, call.convergence_delta(self.forward_func, attrs)
