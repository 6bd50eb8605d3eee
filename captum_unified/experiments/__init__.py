"""Experiment pipelines behind ``captum-unified reproduce`` (Ancona et al. 2018,
Deng et al. 2021). The CLI only parses arguments; the logic lives here."""

from captum_unified.experiments.common import METHODS, ExperimentConfig, compute_attributions

__all__ = ["METHODS", "ExperimentConfig", "compute_attributions"]
