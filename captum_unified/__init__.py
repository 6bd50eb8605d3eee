r"""captum_unified: the unified gradient framework (Ancona et al., ICLR 2018) and
the Taylor attribution framework (Deng et al., AAAI 2021) for Captum.

Where things are:

* :mod:`captum_unified.rules` — what replaces a nonlinearity's derivative.
* :mod:`captum_unified.ops` — the op table: how every torch op is classified.
* :mod:`captum_unified.backend` — the modified chain rule (one backend for all).
* :mod:`captum_unified.attr` — the attribution methods (Captum classes).
* :mod:`captum_unified.perturbation` — the batched perturbation engine.
* :mod:`captum_unified.taylor` — the Taylor framework (Deng et al. 2021).
* :mod:`captum_unified.metrics` — Sensitivity-n and the other evaluators.
* :mod:`captum_unified.data`, :mod:`captum_unified.models`,
  :mod:`captum_unified.experiments` — shipped data, model zoo, reproductions.
* :mod:`captum_unified.text` — trained language models on shipped text (optional
  ``text`` extra; imported on its own, never by ``import captum_unified``).
"""

from captum_unified import metrics, ops, taylor
from captum_unified._utils.common import AttributionWarning
from captum_unified.attr import (
    DeepLiftRescale,
    EpsilonLRP,
    ExpectedGradients,
    GradientXInput,
    InputXGradient,
    IntegratedGradients,
    LayerDeepLiftRescale,
    LayerEpsilonLRP,
    LayerGradientXActivation,
    LayerGradientXInput,
    LayerModifiedGradient,
    ModifiedGradient,
    Occlusion1,
    OcclusionPatch,
)
from captum_unified.backend import RuleContext, modified_gradients
from captum_unified.ops import OpTable, default_op_table
from captum_unified.rules import EpsilonLRPRule, GradientRule, OpCall, RescaleRule, Rule, derivative
from captum_unified.taylor import TaylorAttribution

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (setuptools dynamic)

__all__ = [
    "AttributionWarning",
    "Rule",
    "GradientRule",
    "EpsilonLRPRule",
    "OpCall",
    "RescaleRule",
    "derivative",
    "ops",
    "OpTable",
    "default_op_table",
    "RuleContext",
    "modified_gradients",
    "ModifiedGradient",
    "GradientXInput",
    "InputXGradient",
    "EpsilonLRP",
    "DeepLiftRescale",
    "IntegratedGradients",
    "Occlusion1",
    "OcclusionPatch",
    "ExpectedGradients",
    "TaylorAttribution",
    "taylor",
    "metrics",
    "LayerModifiedGradient",
    "LayerGradientXInput",
    "LayerGradientXActivation",
    "LayerEpsilonLRP",
    "LayerDeepLiftRescale",
]
