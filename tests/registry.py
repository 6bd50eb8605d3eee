"""The contract tests' view of the package's registries
(:mod:`captum_unified.registry`): every registered method and metric, ready to
run on the tests' tiny models. Nothing is listed here per method or metric:
a method or metric added to the registry is in every contract test at once.

A method's ``needs`` (arguments a name alone cannot give) are supplied by
argument name from :data:`NEEDS`; :data:`FAST` only shrinks sizes. Every
method is built on a model that has ``model.linears`` (``conftest.MLP``):
layer methods use ``model.linears[0]``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from captum_unified.attr import LLMGradientAttribution
from captum_unified.registry import METHODS as METHOD_ENTRIES
from captum_unified.registry import METRICS as METRIC_TABLE
from captum_unified.registry import MethodEntry, MetricEntry, load
from captum_unified.rules import RescaleRule

#: what an entry's ``needs`` get in the tests, by argument name (model -> value)
NEEDS: dict[str, Callable[[Any], Any]] = {
    "layer": lambda model: model.linears[0],
    "rule": lambda model: RescaleRule(),
    "patch_shapes": lambda model: 2,  # an int: every input tensor, one or a tuple
    "baseline_stdevs": lambda model: 0.1,
}

#: smaller sizes and fixed seeds, by registry name (speed and reproducibility only)
FAST: dict[str, dict[str, Any]] = {"ig": {"n_steps": 8}, "eg": {"n_samples": 4, "seed": 0}}


def _split_needs(entry: MethodEntry) -> tuple[list[str], list[str]]:
    """``needs`` as (constructor arguments, attribute arguments), by the class's signature."""
    missing = [n for n in entry.needs if n not in NEEDS]
    if missing:
        raise KeyError(f"tests/registry.py: add how the tests supply {missing} (needed by {entry.name}) to NEEDS.")
    init_params = inspect.signature(entry.cls.__init__).parameters
    return [n for n in entry.needs if n in init_params], [n for n in entry.needs if n not in init_params]


#: public classes that wrap a method above (text in, Captum's LLMAttributionResult out): the
#: tensor contracts do not apply; their tests are tests/attr/test_llm_attr.py
WRAPPERS = (LLMGradientAttribution,)


@dataclass(frozen=True)
class MethodCase:
    """A registered method as the contract tests use it.

    Attributes:
        name: the registry name (test ids).
        entry: the registry entry.
    """

    name: str
    entry: MethodEntry

    @property
    def cls(self) -> type:
        return self.entry.cls

    @property
    def layer(self) -> bool:
        return self.entry.layer

    @property
    def random(self) -> bool:
        return self.entry.random

    @property
    def perturbation(self) -> bool:
        from captum.attr._utils.attribution import PerturbationAttribution

        return issubclass(self.cls, PerturbationAttribution)

    @property
    def baselines(self) -> bool:
        """``attribute`` takes ``baselines``."""
        return "baselines" in inspect.signature(self.cls.attribute).parameters

    @property
    def delta(self) -> bool:
        """``attribute`` can return a convergence delta."""
        return "return_convergence_delta" in inspect.signature(self.cls.attribute).parameters

    def make(self, model: Any) -> Any:
        """The attribution object on ``model``."""
        init, _ = _split_needs(self.entry)
        return self.entry.make(model, **{n: NEEDS[n](model) for n in init})

    def call_kwargs(self, model: Any) -> dict[str, Any]:
        """``attribute`` arguments every call of the tests passes (the needs, the fast sizes)."""
        _, call = _split_needs(self.entry)
        return {**{n: NEEDS[n](model) for n in call}, **FAST.get(self.name, {})}

    @property
    def kwargs(self) -> dict[str, Any]:
        """``call_kwargs`` (the attribute arguments of :data:`NEEDS` do not use the model)."""
        return self.call_kwargs(None)

    def twin(self, model: Any) -> Any | None:
        """Captum's class computing the same thing with the same arguments, or None."""
        if not self.entry.captum:
            return None
        init, _ = _split_needs(self.entry)
        return load(self.entry.captum)(model, **{n: NEEDS[n](model) for n in init})


METHODS = [MethodCase(name, e) for name, e in METHOD_ENTRIES.items()]
BY_NAME = {c.name: c for c in METHODS}


# ---------------------------------------------------------------- metrics
#: what a metric's required constructor arguments get in the tests, by name
METRIC_NEEDS: dict[str, Callable[[], Any]] = {
    "references": lambda: {"m": lambda inputs, target: 2 * inputs},
}


@dataclass(frozen=True)
class MetricCase:
    """A registered metric as the contract tests use it (through the
    :class:`~captum_unified.metrics.base.Metric` protocol)."""

    name: str
    entry: MetricEntry
    settings: dict[str, Any] = field(default_factory=dict)

    def make(self) -> Any:
        from captum_unified.metrics.registry import required_arguments

        cls = self.entry.cls
        needed = {a: METRIC_NEEDS[a]() for a in required_arguments(cls)}
        return cls(**needed)


METRICS = [MetricCase(name, e) for name, e in METRIC_TABLE.items()]


def ids(entries):
    return [e.name for e in entries]
