r"""captum_unified: the unified gradient framework (Ancona et al., ICLR 2018) and
the Taylor attribution framework (Deng et al., AAAI 2021) for Captum.

Where things are:

* :mod:`captum_unified.rules` — what replaces a nonlinearity's derivative.
* :mod:`captum_unified.ops` — the op table: how every torch op is classified.
* :mod:`captum_unified.backend` — the modified chain rule (one backend for all).
* :mod:`captum_unified.attr` — the attribution methods (Captum classes), and
  :class:`~captum_unified.LLMGradientAttribution` for language models.
* :mod:`captum_unified.canonizers` — Hugging Face modules computed as the fused
  op they spell out (``F.gelu``, ``F.rms_norm``) inside a ``with`` block.
* :mod:`captum_unified.integrations` — the methods inside other libraries
  (inseq), each an optional extra imported on demand.
* :mod:`captum_unified.perturbation` — the batched perturbation engine.
* :mod:`captum_unified.taylor` — the Taylor framework (Deng et al. 2021).
* :mod:`captum_unified.metrics` — Sensitivity-n and the other evaluators.
* :mod:`captum_unified.registry` — every method, metric and zoo model by name.
* :mod:`captum_unified.data`, :mod:`captum_unified.models`,
  :mod:`captum_unified.experiments` — shipped data, model zoo, reproductions.
* :mod:`captum_unified.text` — trained language models on shipped text (optional
  ``text`` extra; imported on its own, never by ``import captum_unified``).

The public names below are loaded on first use (``captum_unified.IntegratedGradients``
imports the methods and torch then): ``import captum_unified`` itself imports
no torch, so that the command line answers ``--help`` at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it (setuptools dynamic)

#: each public name -> the module that defines it (for a submodule: itself). The one runtime
#: table: ``__all__`` is derived from it; the ``TYPE_CHECKING`` imports at the end say the same
#: for type checkers and editors (tests/contracts/test_registry.py checks that they agree).
_PUBLIC: dict[str, str] = {
    "AttributionWarning": "captum_unified._utils.common",
    "Rule": "captum_unified.rules",
    "GradientRule": "captum_unified.rules",
    "EpsilonLRPRule": "captum_unified.rules",
    "OpCall": "captum_unified.rules",
    "RescaleRule": "captum_unified.rules",
    "derivative": "captum_unified.rules",
    "ops": "captum_unified.ops",
    "OpTable": "captum_unified.ops",
    "default_op_table": "captum_unified.ops",
    "RuleContext": "captum_unified.backend",
    "modified_gradients": "captum_unified.backend",
    "ModifiedGradient": "captum_unified.attr",
    "GradientXInput": "captum_unified.attr",
    "InputXGradient": "captum_unified.attr",
    "EpsilonLRP": "captum_unified.attr",
    "DeepLiftRescale": "captum_unified.attr",
    "IntegratedGradients": "captum_unified.attr",
    "Occlusion1": "captum_unified.attr",
    "OcclusionPatch": "captum_unified.attr",
    "ExpectedGradients": "captum_unified.attr",
    "TaylorAttribution": "captum_unified.taylor",
    "taylor": "captum_unified.taylor",
    "metrics": "captum_unified.metrics",
    "LayerModifiedGradient": "captum_unified.attr",
    "LayerGradientXInput": "captum_unified.attr",
    "LayerGradientXActivation": "captum_unified.attr",
    "LayerEpsilonLRP": "captum_unified.attr",
    "LayerDeepLiftRescale": "captum_unified.attr",
    "LLMGradientAttribution": "captum_unified.attr",
    "relevance_ledger": "captum_unified.attr",
    "RelevanceLedger": "captum_unified.backend.ledger",
    "ConservationWarning": "captum_unified.backend.ledger",
}

__all__ = list(_PUBLIC)


def __getattr__(name: str) -> Any:
    """Load a public name on first use (PEP 562)."""
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'captum_unified' has no attribute {name!r}")
    loaded = importlib.import_module(module)
    value = loaded if module == f"captum_unified.{name}" else getattr(loaded, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # the names as type checkers and editors see them (``as``: re-exported)
    from captum_unified import metrics as metrics
    from captum_unified import ops as ops
    from captum_unified import taylor as taylor
    from captum_unified._utils.common import AttributionWarning as AttributionWarning
    from captum_unified.attr import DeepLiftRescale as DeepLiftRescale
    from captum_unified.attr import EpsilonLRP as EpsilonLRP
    from captum_unified.attr import ExpectedGradients as ExpectedGradients
    from captum_unified.attr import GradientXInput as GradientXInput
    from captum_unified.attr import InputXGradient as InputXGradient
    from captum_unified.attr import IntegratedGradients as IntegratedGradients
    from captum_unified.attr import LayerDeepLiftRescale as LayerDeepLiftRescale
    from captum_unified.attr import LayerEpsilonLRP as LayerEpsilonLRP
    from captum_unified.attr import LayerGradientXActivation as LayerGradientXActivation
    from captum_unified.attr import LayerGradientXInput as LayerGradientXInput
    from captum_unified.attr import LayerModifiedGradient as LayerModifiedGradient
    from captum_unified.attr import LLMGradientAttribution as LLMGradientAttribution
    from captum_unified.attr import ModifiedGradient as ModifiedGradient
    from captum_unified.attr import Occlusion1 as Occlusion1
    from captum_unified.attr import OcclusionPatch as OcclusionPatch
    from captum_unified.attr import relevance_ledger as relevance_ledger
    from captum_unified.backend import RuleContext as RuleContext
    from captum_unified.backend import modified_gradients as modified_gradients
    from captum_unified.backend.ledger import ConservationWarning as ConservationWarning
    from captum_unified.backend.ledger import RelevanceLedger as RelevanceLedger
    from captum_unified.ops import OpTable as OpTable
    from captum_unified.ops import default_op_table as default_op_table
    from captum_unified.rules import EpsilonLRPRule as EpsilonLRPRule
    from captum_unified.rules import GradientRule as GradientRule
    from captum_unified.rules import OpCall as OpCall
    from captum_unified.rules import RescaleRule as RescaleRule
    from captum_unified.rules import Rule as Rule
    from captum_unified.rules import derivative as derivative
    from captum_unified.taylor import TaylorAttribution as TaylorAttribution
