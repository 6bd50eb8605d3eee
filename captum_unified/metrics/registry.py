"""Metrics by name: the metric entries of :data:`captum_unified.registry.METRICS`
as classes and objects.

A new metric is its own file (a :class:`~captum_unified.metrics.base.Metric`
subclass) plus one :class:`~captum_unified.registry.MetricEntry` in
:data:`captum_unified.registry.METRICS`: :func:`~captum_unified.metrics.evaluate`,
``captum-unified evaluate --metrics`` (with the entry's options), the docs'
list and the contract tests (which run every registered metric through the
command line) take it from there.
"""

from __future__ import annotations

import inspect
from typing import Any

from captum_unified.metrics.base import Metric
from captum_unified.registry import METRICS

__all__ = ["METRICS", "metric_class", "make_metric"]


def metric_class(name: str) -> type[Metric]:
    """The metric class registered as ``name``."""
    if name not in METRICS:
        raise ValueError(f"unknown metric {name!r}; choose from {sorted(METRICS)} or pass a Metric object.")
    return METRICS[name].cls


def required_arguments(cls: type[Metric]) -> list[str]:
    """The constructor arguments of a metric class that have no default."""
    return [
        p.name
        for p in list(inspect.signature(cls.__init__).parameters.values())[1:]
        if p.default is inspect.Parameter.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]


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
        required = required_arguments(cls)
        if required:
            needs = ", ".join(f"`{r}`" for r in required)
            raise ValueError(
                f"the metric {spec!r} has no default settings: it needs {needs} ({METRICS[spec].summary})"
                + f". Pass {cls.__name__}({', '.join(f'{r}=...' for r in required)}) instead of its name."
            )
        return cls()
    raise TypeError(f"a metric is a registry name ({sorted(METRICS)}) or a Metric object, got {type(spec).__name__}.")
