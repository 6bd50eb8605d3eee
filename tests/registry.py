"""The one table of public attribution methods that drives the contract tests.

Adding a public method means: its own file in the package, one ``MethodEntry``
line here, and (where one exists) its oracle test. Contract tests (no trace on
the model, clear errors, empty batches, integer inputs, train mode, NoiseTunnel,
...) parametrise over :data:`METHODS`; ``test_registry.py`` checks that every
public attribution class of ``captum_unified.__all__`` appears here.

Every entry is built on a model that has ``model.linears`` (``conftest.MLP``):
layer methods use ``model.linears[0]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import captum.attr as ca

import captum_unified as cu
from captum_unified.rules import RescaleRule


@dataclass(frozen=True)
class MethodEntry:
    """One public method as the contract tests use it.

    Attributes:
        name: short id used in test ids.
        cls: the public class.
        make: ``model -> attribution object``.
        kwargs: extra ``attribute`` keyword arguments for the contract tests
            (small sizes so that the tests stay fast).
        baselines: the method takes ``baselines``.
        delta: the method can return a convergence delta.
        layer: a layer method (attributions have the layer's shape).
        perturbation: a perturbation method (integer inputs are fine).
        twin: ``model -> Captum object`` computing the same thing, if any.
        twin_kwargs: ``attribute`` keyword arguments for the twin (in addition
            to the shared ones).
        oracle: where the method's independent correctness check lives.
        random: the result depends on random draws of the batch (e.g.
            sampled baselines), so it is only compared in distribution.
    """

    name: str
    cls: type
    make: Callable[[Any], Any]
    kwargs: dict[str, Any] = field(default_factory=dict)
    baselines: bool = True
    delta: bool = True
    layer: bool = False
    perturbation: bool = False
    twin: Callable[[Any], Any] | None = None
    twin_kwargs: dict[str, Any] = field(default_factory=dict)
    oracle: str = ""
    random: bool = False


METHODS = [
    MethodEntry(
        "mg",
        cu.ModifiedGradient,
        lambda m: cu.ModifiedGradient(m, RescaleRule()),
        oracle="test_propositions.py (rule = DeepLIFT)",
    ),
    MethodEntry(
        "gi",
        cu.GradientXInput,
        lambda m: cu.GradientXInput(m),
        baselines=False,
        delta=False,
        twin=lambda m: ca.InputXGradient(m),
        oracle="test_captum_agreement.py",
    ),
    MethodEntry(
        "lrp",
        cu.EpsilonLRP,
        lambda m: cu.EpsilonLRP(m, 1e-6),
        baselines=False,
        oracle="test_lrp_oracle.py (explicit Eq. 2 propagation)",
    ),
    MethodEntry(
        "dl",
        cu.DeepLiftRescale,
        lambda m: cu.DeepLiftRescale(m),
        twin=lambda m: ca.DeepLift(m),
        oracle="test_propositions.py (explicit Eq. 3-4 propagation)",
    ),
    MethodEntry(
        "ig",
        cu.IntegratedGradients,
        lambda m: cu.IntegratedGradients(m),
        kwargs={"n_steps": 8},
        twin=lambda m: ca.IntegratedGradients(m),
        oracle="test_captum_agreement.py",
    ),
    MethodEntry(
        "eg",
        cu.ExpectedGradients,
        lambda m: cu.ExpectedGradients(m),
        kwargs={"n_samples": 4, "seed": 0, "baseline_stdevs": 0.1},
        oracle="test_expected_gradients.py",
        random=True,
    ),
    MethodEntry(
        "occ",
        cu.Occlusion1,
        lambda m: cu.Occlusion1(m),
        delta=False,
        perturbation=True,
        twin=lambda m: ca.FeatureAblation(m),
        oracle="test_perturbation_engine.py",
    ),
    MethodEntry(
        "occp",
        cu.OcclusionPatch,
        lambda m: cu.OcclusionPatch(m),
        kwargs={"patch_shapes": (2,)},
        delta=False,
        perturbation=True,
        oracle="test_occlusion_patch.py",
    ),
    MethodEntry(
        "taylor", cu.TaylorAttribution, lambda m: cu.TaylorAttribution(m), oracle="test_taylor.py (autograd Hessian)"
    ),
    MethodEntry(
        "lmg",
        cu.LayerModifiedGradient,
        lambda m: cu.LayerModifiedGradient(m, m.linears[0], RescaleRule()),
        layer=True,
        oracle="test_propositions.py",
    ),
    MethodEntry(
        "lgi",
        cu.LayerGradientXInput,
        lambda m: cu.LayerGradientXInput(m, m.linears[0]),
        baselines=False,
        delta=False,
        layer=True,
        twin=lambda m: ca.LayerGradientXActivation(m, m.linears[0]),
    ),
    MethodEntry(
        "llrp",
        cu.LayerEpsilonLRP,
        lambda m: cu.LayerEpsilonLRP(m, m.linears[0]),
        baselines=False,
        layer=True,
        oracle="test_lrp_oracle.py",
    ),
    MethodEntry(
        "ldl",
        cu.LayerDeepLiftRescale,
        lambda m: cu.LayerDeepLiftRescale(m, m.linears[0]),
        layer=True,
        twin=lambda m: ca.LayerDeepLift(m, m.linears[0]),
    ),
]

BY_NAME = {e.name: e for e in METHODS}

#: public classes that wrap a method above (text in, Captum's LLMAttributionResult out): the
#: tensor contracts do not apply; their tests are tests/attr/test_llm_attr.py
WRAPPERS = (cu.LLMGradientAttribution,)


@dataclass(frozen=True)
class MetricEntry:
    """One public metric function as the contract tests call it.

    Attributes:
        name: the metric's name in ``captum_unified.metrics.registry.METRICS``.
        call: ``(model, inputs, attributions) -> per-sample values`` (the model
            takes ``(batch, 4)`` inputs; images are made by the test).
        image: the metric needs image-shaped ``(batch, 1, 2, 2)`` inputs.
    """

    name: str
    call: Callable[[Any, Any, Any], Any]
    image: bool = False


def _boxes(x):
    return [[0, 0, 1, 2]] * x.shape[0]


METRIC_ENTRIES = [
    MetricEntry(
        "sensitivity_n", lambda m, x, a: cu.metrics.sensitivity_n(m, x, a, n=[1, 2], target=1, n_subsets=4).correlations
    ),
    MetricEntry(
        "infidelity", lambda m, x, a: cu.metrics.infidelity(m, x, a, patch_size=2, n_perturb_samples=3, target=1)
    ),
    MetricEntry("region_perturbation", lambda m, x, a: cu.metrics.region_perturbation(m, x, a, target=1).aopc),
    MetricEntry("bounding_box_accuracy", lambda m, x, a: cu.metrics.bounding_box_accuracy(a, _boxes(x)), image=True),
    MetricEntry("percentage_change", lambda m, x, a: cu.metrics.percentage_change_per_sample(a, 2 * a)),
]


def ids(entries):
    return [e.name for e in entries]
