r"""Evaluation metrics for attributions: Sensitivity-n (Ancona et al. 2018),
infidelity with square removal (Yeh et al. 2019), region perturbation (Samek et
al. 2016), bounding-box accuracy (Schulz et al. 2020) and an evaluation runner
writing tidy rows."""
from captum_unified.metrics.bounding_box import bounding_box_accuracy, boxes_to_mask
from captum_unified.metrics.infidelity import infidelity, square_removal_perturbation
from captum_unified.metrics.region_perturbation import RegionPerturbationResult, region_perturbation
from captum_unified.metrics.runner import FIELDS, evaluate
from captum_unified.metrics.sensitivity_n import SensitivityNResult, default_n_list, sensitivity_n

__all__ = [
    "FIELDS",
    "RegionPerturbationResult",
    "SensitivityNResult",
    "bounding_box_accuracy",
    "boxes_to_mask",
    "default_n_list",
    "evaluate",
    "infidelity",
    "region_perturbation",
    "sensitivity_n",
    "square_removal_perturbation",
]
