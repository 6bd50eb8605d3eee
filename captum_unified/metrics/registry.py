"""The metric registry: a new metric is its own file (a
:class:`~captum_unified.metrics.base.Metric` subclass) plus one line here.

:func:`~captum_unified.metrics.evaluate` and ``captum-unified evaluate
--metrics`` accept these names (or metric objects)."""

from __future__ import annotations

import importlib
from typing import Any

from captum_unified.metrics.base import Metric

__all__ = ["METRICS", "metric_class", "make_metric"]

#: name -> "module:Class"
METRICS: dict[str, str] = {
    "sensitivity_n": "captum_unified.metrics.sensitivity_n:SensitivityN",
    "infidelity": "captum_unified.metrics.infidelity:Infidelity",
    "region_perturbation": "captum_unified.metrics.region_perturbation:RegionPerturbation",
    "bounding_box_accuracy": "captum_unified.metrics.bounding_box:BoundingBoxAccuracy",
    "percentage_change": "captum_unified.metrics.percentage_change:PercentageChange",
}


def metric_class(name: str) -> type[Metric]:
    """The metric class registered as ``name``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)} or pass a Metric object.")
    module, cls = METRICS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_metric(spec: Any) -> Metric:
    """A metric object from a registry name (default settings) or a :class:`Metric`."""
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        return metric_class(spec)()
    raise TypeError(f"a metric is a registry name ({sorted(METRICS)}) or a Metric object, got {type(spec).__name__}.")
