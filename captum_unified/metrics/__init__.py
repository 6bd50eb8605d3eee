r"""Evaluation metrics for attributions: Sensitivity-n (Ancona et al. 2018),
infidelity with square removal (Yeh et al. 2019), region perturbation (Samek et
al. 2016), bounding-box accuracy (Schulz et al. 2020), Deng et al.'s percentage
change, and an evaluation runner (methods x metrics over a data set, on one
process or many) writing tidy rows.

Each metric is a function (``sensitivity_n(model, x, attributions, ...)``) and
a :class:`~captum_unified.metrics.base.Metric` class for
:func:`evaluate`; :mod:`captum_unified.metrics.registry` lists them by name.
"""

from captum_unified.metrics.base import EvalBatch, Metric, MetricScores, sample_seed
from captum_unified.metrics.bounding_box import (
    BoundingBoxAccuracy,
    bounding_box_accuracy,
    boxes_to_mask,
)
from captum_unified.metrics.infidelity import (
    Infidelity,
    infidelity,
    square_masks,
    square_removal_perturbation,
)
from captum_unified.metrics.percentage_change import (
    PercentageChange,
    percentage_change_per_sample,
)
from captum_unified.metrics.region_perturbation import (
    RegionPerturbation,
    RegionPerturbationResult,
    region_perturbation,
)
from captum_unified.metrics.registry import METRICS, make_metric
from captum_unified.metrics.runner import FIELDS, evaluate, read_rows
from captum_unified.metrics.sensitivity_n import (
    SensitivityN,
    SensitivityNResult,
    default_n_list,
    sensitivity_n,
)
from captum_unified.metrics.stats import pearson

__all__ = [
    "FIELDS",
    "METRICS",
    "BoundingBoxAccuracy",
    "EvalBatch",
    "Infidelity",
    "Metric",
    "MetricScores",
    "PercentageChange",
    "RegionPerturbation",
    "RegionPerturbationResult",
    "SensitivityN",
    "SensitivityNResult",
    "bounding_box_accuracy",
    "boxes_to_mask",
    "default_n_list",
    "evaluate",
    "infidelity",
    "make_metric",
    "pearson",
    "percentage_change_per_sample",
    "read_rows",
    "region_perturbation",
    "sample_seed",
    "sensitivity_n",
    "square_masks",
    "square_removal_perturbation",
]
