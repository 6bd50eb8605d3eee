"""The metric registry: a new metric is its own file (a
:class:`~captum_unified.metrics.base.Metric` subclass) plus one line here.

:func:`~captum_unified.metrics.evaluate` and ``captum-unified evaluate
--metrics`` accept these names (or metric objects)."""

from __future__ import annotations

import importlib
import inspect
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

#: what a metric's required argument is, for the error of a bare registry name
_NEEDS: dict[str, str] = {
    "percentage_change": " (method name -> reference attribution, e.g. a Taylor reformulation of the method)",
}


def metric_class(name: str) -> type[Metric]:
    """The metric class registered as ``name``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)} or pass a Metric object.")
    module, cls = METRICS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_metric(spec: Any) -> Metric:
    """A metric object from a registry name (default settings) or a :class:`Metric`.

    A metric with a setting that has no default (``percentage_change``'s
    ``references``) cannot be made from its name: give it as an object.

    Raises:
        ValueError: an unknown name, or the name of a metric that needs an argument.
    """
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        cls = metric_class(spec)
        required = [
            p.name
            for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
            if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]
        if required:
            needs = ", ".join(f"`{r}`" for r in required)
            raise ValueError(
                f"the metric {spec!r} has no default settings: it needs {needs}"
                + _NEEDS.get(spec, "")
                + f". Pass {cls.__name__}({', '.join(f'{r}=...' for r in required)}) instead of its name."
            )
        return cls()
    raise TypeError(f"a metric is a registry name ({sorted(METRICS)}) or a Metric object, got {type(spec).__name__}.")
