"""Sentences about trends, generated from the reproductions' CSV rows.

Every function takes the rows of a CSV the pipelines write (values may be
strings, as :func:`~captum_unified.experiments.common.read_csv` returns them)
and returns plain-text sentences: a claim (e.g. "as in the paper") is made only
when the numbers support it; otherwise the sentence says what the numbers
show. The reports (``*_report.md``) and the docs' results page (the
``*_findings.rst`` fragments that ``scripts/make_results.py`` writes) use the
same functions, so a rerun with other numbers changes the text with them.

The sentences live by reproduction (:mod:`.deng`, :mod:`.ancona`); the
formatting and the statistical tests they follow in :mod:`.common`.
"""

from __future__ import annotations

from captum_unified.experiments.findings.ancona import (
    ACTIVATION_NAMES,
    ANCONA_METHOD_NAMES,
    ANCONA_MIN_SAMPLES,
    EQUAL_TOLERANCE,
    FAIL_LEVEL,
    LINEAR_TOLERANCE,
    MIN_ACCURACY,
    REGION_TABLE_K,
    STEP_TOLERANCE,
    ancona_network,
    ancona_panel_title,
    ancona_region_sentences,
    ancona_sentences,
    ancona_tables,
    fmt_pcc,
)
from captum_unified.experiments.findings.common import (  # _f, _g: the reports format their numbers alike
    MIN_SAMPLES,
    PERMUTATIONS,
    TRAINED_ACCURACY,
    _f,
    _g,
    evidence,
    mean_spearman_test,
    pearson_p,
    spearman,
    spearman_test,
    to_rst,
)
from captum_unified.experiments.findings.deng import (
    EG_VARIANT,
    FIGURE_METHODS,
    MEAN_LAYERS,
    MEAN_LAYERS_OUTPUT,
    OUTPUT_LAYER,
    ablation_sentences,
    deng_eg_sentences,
    deng_figure2_sentences,
    deng_figure3_sentences,
    deng_infidelity_sentences,
    deng_table3_sentences,
)
from captum_unified.experiments.significance import ALPHA

__all__ = [
    "spearman",
    "deng_table3_sentences",
    "deng_infidelity_sentences",
    "deng_figure2_sentences",
    "deng_figure3_sentences",
    "deng_eg_sentences",
    "ancona_sentences",
    "ancona_region_sentences",
    "ancona_tables",
    "ancona_network",
    "ancona_panel_title",
    "ANCONA_METHOD_NAMES",
    "ACTIVATION_NAMES",
    "fmt_pcc",
    "ablation_sentences",
    "to_rst",
    "ALPHA",
    "MIN_SAMPLES",
    "ANCONA_MIN_SAMPLES",
    "PERMUTATIONS",
    "TRAINED_ACCURACY",
    "MIN_ACCURACY",
    "EQUAL_TOLERANCE",
    "FAIL_LEVEL",
    "LINEAR_TOLERANCE",
    "STEP_TOLERANCE",
    "REGION_TABLE_K",
    "EG_VARIANT",
    "FIGURE_METHODS",
    "MEAN_LAYERS",
    "MEAN_LAYERS_OUTPUT",
    "OUTPUT_LAYER",
    "evidence",
    "mean_spearman_test",
    "pearson_p",
    "spearman_test",
    "_f",
    "_g",
]
