r"""Taylor attribution (Deng et al., AAAI 2021): second-order decomposition,
group interactions, the ReLU→Softplus swap and the Taylor reformulations of
seven attribution methods.

* :mod:`~captum_unified.taylor.terms` — gradient, HVPs, Hessian diagonal, decomposition.
* :mod:`~captum_unified.taylor.interactions` — group interaction matrices.
* :mod:`~captum_unified.taylor.softplus_swap` — ReLU → Softplus, reversibly.
* :mod:`~captum_unified.taylor.reformulations` — Theorems 1–5 and Table 3's metric.
* :mod:`~captum_unified.taylor.attribution` — :class:`TaylorAttribution`.
"""

from captum_unified.taylor.attribution import TaylorAttribution
from captum_unified.taylor.interactions import group_interactions
from captum_unified.taylor.reformulations import (
    deeplift_layer_reformulation,
    deeplift_reformulation,
    expected_gradients_reformulation,
    gradient_x_input_reformulation,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
)
from captum_unified.taylor.softplus_swap import SoftplusSwapMode, softplus_swap
from captum_unified.taylor.terms import TaylorDecomposition, hessian_diagonal, taylor_decomposition

__all__ = [
    "TaylorAttribution",
    "TaylorDecomposition",
    "taylor_decomposition",
    "hessian_diagonal",
    "group_interactions",
    "softplus_swap",
    "SoftplusSwapMode",
    "gradient_x_input_reformulation",
    "occlusion1_reformulation",
    "occlusion_patch_reformulation",
    "deeplift_layer_reformulation",
    "deeplift_reformulation",
    "integrated_gradients_reformulation",
    "expected_gradients_reformulation",
    "percentage_change",
]
