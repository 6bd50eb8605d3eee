r"""One ``attribute(...)`` call's arguments, formatted once and carried through.

Every method turns Captum's flexible arguments (a tensor or a tuple of tensors,
baselines as numbers / per-sample tensors / batch-1 tensors / tuples,
``additional_forward_args`` of any form, ``target``) into an
:class:`AttributionCall` at the top of ``attribute`` and passes that value on:
to the backend, the perturbation engine, the convergence delta and the output
formatting. Nothing below ``attribute`` formats inputs again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum._utils.typing import TargetType
from torch import Tensor

from captum_unified._utils.common import (
    _format_output,
    _is_tuple,
    check_target_count,
    format_additional_args,
    format_baselines,
    format_inputs,
    require_floating,
    run_forward,
    sum_per_sample,
)

__all__ = ["AttributionCall"]


@dataclass
class AttributionCall:
    """The formatted arguments of one attribution call.

    Attributes:
        inputs (tuple of Tensor): the inputs, batch first (never modified).
        baselines (tuple of Tensor): one per input, each with batch 1 or the
            inputs' batch and broadcastable to its input.
        additional_args (tuple): ``additional_forward_args`` as a tuple.
        target: Captum's ``target``, unchanged.
        is_tuple (bool): whether the user passed a tuple of inputs (the
            attributions are returned with the same tuple-ness).
    """

    inputs: tuple[Tensor, ...]
    baselines: tuple[Tensor, ...]
    additional_args: tuple[Any, ...]
    target: TargetType
    is_tuple: bool
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def format(
        cls,
        inputs: Any,
        baselines: Any = None,
        target: TargetType = None,
        additional_forward_args: Any = None,
        *,
        allow_empty: bool = False,
        same_batch: bool = True,
    ) -> AttributionCall:
        """Validate and format Captum-style arguments (see
        :func:`~captum_unified._utils.common.format_inputs` and
        :func:`~captum_unified._utils.common.format_baselines` for the accepted
        forms and the errors).

        Args:
            allow_empty (bool): accept a batch of 0 samples. Default False: an
                empty batch is a ``ValueError`` that says so.
            same_batch (bool): require every input tensor to have the batch
                size of ``inputs[0]`` (default). ``False``: perturbation
                methods accept first dimensions that differ, as Captum's do.
        """
        is_tuple = _is_tuple(inputs)
        fmt = format_inputs(inputs, same_batch=same_batch)
        if not allow_empty and fmt[0].shape[0] == 0:
            raise ValueError(
                "The inputs hold 0 samples (batch dimension of size 0); pass at least one sample, batch first."
            )
        if same_batch:  # the user's batch, before any method repeats it
            check_target_count(target, int(fmt[0].shape[0]))
        base = format_baselines(baselines, fmt)
        args = format_additional_args(additional_forward_args)
        return cls(fmt, base, args, target, is_tuple)

    def floating(self) -> AttributionCall:
        """The call of a gradient method: integer or bool inputs are a
        ``TypeError`` that points to the layer methods
        (:func:`~captum_unified._utils.common.require_floating`); integer
        baselines become the default float dtype."""
        require_floating(self.inputs)
        if all(x.is_floating_point() for x in self.inputs + self.baselines):
            return self
        return AttributionCall(
            tuple(_as_float(x) for x in self.inputs),
            tuple(_as_float(b) for b in self.baselines),
            self.additional_args,
            self.target,
            self.is_tuple,
        )

    def with_baselines(self, baselines: Any) -> AttributionCall:
        """The same call with other baselines, formatted against the call's
        inputs (the inputs are not formatted again)."""
        return AttributionCall(
            self.inputs, format_baselines(baselines, self.inputs), self.additional_args, self.target, self.is_tuple
        )

    # ------------------------------------------------------------------ shape
    @property
    def batch(self) -> int:
        return int(self.inputs[0].shape[0])

    @property
    def shared_baseline(self) -> bool:
        """True when one baseline sample serves every input sample and no
        additional argument is per-sample (a batch-1 reference pass suffices)."""
        if self.batch == 1 or any(b.shape[0] != 1 for b in self.baselines):
            return False
        return not any(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == self.batch for a in self.additional_args)

    def _cached(self, key: str, make: Callable[[], Any]) -> Any:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    @property
    def expanded_baselines(self) -> tuple[Tensor, ...]:
        """Baselines expanded to the inputs' shapes (views, no copy)."""
        return self._cached("expanded", lambda: tuple(b.expand(x.shape) for b, x in zip(self.baselines, self.inputs)))

    @property
    def deltas(self) -> tuple[Tensor, ...]:
        r""":math:`x - \bar x` per input (floating)."""
        return self._cached(
            "deltas", lambda: tuple(_as_float(x) - _as_float(b) for x, b in zip(self.inputs, self.baselines))
        )

    # ------------------------------------------------------------------ model
    def forward(self, forward_func: Callable, inputs: tuple[Tensor, ...] | None = None) -> Tensor:
        """Selected model outputs ``S_c`` of ``inputs`` (default: the call's
        inputs), shape ``(batch,)``, without gradients."""
        with torch.no_grad():
            return run_forward(
                forward_func, self.inputs if inputs is None else inputs, self.target, self.additional_args
            )

    def baseline_forward(self, forward_func: Callable) -> Tensor:
        r""":math:`S_c(\bar x)` per sample, shape ``(batch,)``."""
        return self.forward(forward_func, self.expanded_baselines)

    def convergence_delta(
        self,
        forward_func: Callable,
        attributions: tuple[Tensor, ...],
        outputs: Tensor | None = None,
        baseline_outputs: Tensor | None = None,
    ) -> Tensor:
        r"""Captum's delta :math:`\sum_i R_i - (S_c(x) - S_c(\bar x))` per sample.

        ``outputs`` / ``baseline_outputs`` are used when the caller already has
        them (the backend returns both); missing ones cost one forward pass.
        """
        if outputs is None:
            outputs = self.forward(forward_func)
        if baseline_outputs is None:
            baseline_outputs = self.baseline_forward(forward_func)
        return sum_per_sample(attributions) - (outputs - baseline_outputs)

    # ----------------------------------------------------------------- output
    def output(self, attributions: tuple[Tensor, ...]) -> Any:
        """The attributions with the tuple-ness the user passed."""
        return _format_output(self.is_tuple, attributions)


def _as_float(t: Tensor) -> Tensor:
    return t if t.is_floating_point() else t.to(torch.get_default_dtype())
