r"""Deng et al.'s percentage change (AAAI 2021, Table 3) between a method's
attributions and a reference, usually the method's Taylor reformulation
(:mod:`captum_unified.taylor.reformulations`):

.. math::

    d(x) = \frac{\lVert a_o(x) - a_r(x) \rVert^2}{\lVert a_o(x) \rVert^2} \times 100\%,

the norm over all features of the sample (all inputs of a tuple). Table 3
reports the mean over samples (:func:`captum_unified.taylor.percentage_change`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from captum_unified.metrics.base import (
    EvalBatch,
    Metric,
    MetricScores,
    attribute_with,
    format_attributions,
)

__all__ = ["PercentageChange", "percentage_change_per_sample"]


def percentage_change_per_sample(original: Any, reformulated: Any) -> Tensor:
    r""":math:`d` per sample, in percent, float64 ``(batch,)``.

    A sample with :math:`a_o = 0` counts 0 if :math:`a_r = 0` too, else ``inf``.

    Args:
        original: :math:`a_o`, a tensor or tuple of tensors, batch first.
        reformulated: :math:`a_r`, same shapes.

    Raises:
        ValueError: shapes that differ, an empty batch, NaN values.
    """
    o = original if isinstance(original, tuple) else (original,)
    if o and isinstance(o[0], Tensor) and o[0].shape[0] == 0:
        raise ValueError("the attributions hold 0 samples (batch dimension of size 0).")
    r = format_attributions(reformulated, tuple(t.detach() for t in o), "reformulated")
    o = format_attributions(o, r, "original")
    batch = o[0].shape[0]
    a = torch.cat([t.reshape(batch, -1).to(torch.float64) for t in o], dim=1)
    b = torch.cat([t.reshape(batch, -1).to(torch.float64).to(a.device) for t in r], dim=1)
    num = ((a - b) ** 2).sum(dim=1)
    den = (a**2).sum(dim=1)
    ratio = torch.where(
        den > 0,
        num / torch.where(den > 0, den, torch.ones_like(den)),
        torch.where(num > 0, torch.full_like(num, float("inf")), torch.zeros_like(num)),
    )
    return ratio * 100.0


class PercentageChange(Metric):
    """Deng's percentage change as a metric of :func:`~captum_unified.metrics.evaluate`.

    Args:
        references: ``method name -> reference``; a reference is a callable
            ``(inputs, target) -> attributions`` (e.g. a lambda around a Taylor
            reformulation) or an attribution object. Methods without a
            reference get no rows.

    Rows: ``("percentage_change", None)`` per sample, in percent. No forward
    pass beyond the references'.
    """

    name = "percentage_change"

    def __init__(self, references: Mapping[str, Any]) -> None:
        if not references:
            raise ValueError("percentage_change needs references: method name -> reformulation.")
        self.references: dict[str, Any] = dict(references)

    def config(self) -> dict[str, Any]:
        return {"references": sorted(self.references)}

    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        call = batch.call
        inputs = call.inputs if call.is_tuple else call.inputs[0]
        out = {}
        for name, a in attributions.items():
            if name not in self.references:
                continue
            ref = attribute_with(self.references[name], inputs, call.target)
            out[name] = MetricScores({(self.name, None): percentage_change_per_sample(a, ref)})
        return out
