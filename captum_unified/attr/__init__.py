"""Attribution methods (Captum-compatible classes), one per file in ``_core``."""

from captum_unified.attr._core.deeplift_rescale import DeepLiftRescale
from captum_unified.attr._core.epsilon_lrp import EpsilonLRP
from captum_unified.attr._core.expected_gradients import ExpectedGradients
from captum_unified.attr._core.gradient_x_input import GradientXInput, InputXGradient
from captum_unified.attr._core.integrated_gradients import IntegratedGradients
from captum_unified.attr._core.layer.layer_modified_gradient import (
    LayerDeepLiftRescale,
    LayerEpsilonLRP,
    LayerGradientXActivation,
    LayerGradientXInput,
    LayerModifiedGradient,
)
from captum_unified.attr._core.llm_attr import LLMGradientAttribution
from captum_unified.attr._core.modified_gradient import ModifiedGradient
from captum_unified.attr._core.occlusion import Occlusion1
from captum_unified.attr._core.occlusion_patch import OcclusionPatch
from captum_unified.attr._core.relevance_ledger import relevance_ledger

__all__ = [
    "ModifiedGradient",
    "GradientXInput",
    "InputXGradient",
    "EpsilonLRP",
    "DeepLiftRescale",
    "IntegratedGradients",
    "Occlusion1",
    "OcclusionPatch",
    "ExpectedGradients",
    "LayerModifiedGradient",
    "LayerGradientXInput",
    "LayerGradientXActivation",
    "LayerEpsilonLRP",
    "LayerDeepLiftRescale",
    "LLMGradientAttribution",
    "relevance_ledger",
]
