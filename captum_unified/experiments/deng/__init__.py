"""Deng et al. (AAAI 2021) pipeline on MNIST: Table 3 (reformulations), the
first- vs second-order infidelity, Table 2 (principles), Figure 2 (infidelity
vs principles) and Figure 3 (bounding-box accuracy vs principles).

Models (:data:`MODELS`): the Poly model, the 3-layer sigmoid MLP (M-sg) and CNN
(C-sg), the softplus CNN (C-sp), and a CNN trained on a localisation task
(:func:`captum_unified.data.load_mnist_localization`). :func:`run` trains/caches
them and writes under ``out``:

* ``deng_table3.csv`` -- Table 3: the average percentage change
  ``d = mean ||a_o - a_r||^2 / ||a_o||^2 * 100%`` between each original method
  (GI, Occlusion-1, Occlusion-2x2, Occlusion-4x4, DeepLIFT Rescale, Integrated
  Gradients) and its second-order Taylor reformulation, on Poly, M-sg and C-sg;
  DeepLIFT per layer, averaged over layers (Deng: "we compute the percentage
  change of each layer and then average them"); the normalised second-order
  approximation error ``eps_bar = mean |eps| / |Delta f|`` of each model (Deng:
  0, 0.084, 0.420).
* ``deng_dl_layers.csv`` -- DeepLIFT's ``d`` per layer, for both readings of the
  per-layer protocol (:func:`~captum_unified.taylor.deeplift_layer_reformulation`).
* ``deng_infidelity.csv`` -- infidelity of first- vs second-order Taylor
  attribution on C-sg and C-sp, scaled and unscaled
  (:mod:`~captum_unified.experiments.yeh_infidelity`: Yeh et al.'s squares).
* ``deng_table2.csv`` -- Table 2, the principles each method follows.
* ``deng_figure2.csv`` / ``.png`` -- infidelity of GI, Occ-1, Occ-p, DL, IG, EG on
  M-sg, C-sg and C-sp against the number of principles, with Spearman's rank
  correlation.
* ``deng_figure3.csv`` / ``.png`` -- bounding-box accuracy of the six methods on
  the localisation task against the number of principles.
* ``deng_figure4.png`` -- Figure 4: the saliency maps of a few canvases of the
  localisation task side by side (the plain gradient, GI, Occ-p, DL, IG, EG, EG
  (data)), red positive, blue negative.
* ``deng_checks.csv``, ``deng_figure.png`` (Table 3 and the Taylor infidelity),
  ``deng_report.md`` (every table, with sentences generated from the numbers by
  :mod:`captum_unified.experiments.findings`: a conclusion only from a trained
  model, enough samples and, for a correlation, a significant test).

Target: the predicted class, Deng's ("the predicted label"); samples drawn
class-stratified from the test digits.

Baselines: all methods, reformulations and removed squares use ``cfg.baseline``
(default 0: the black background of the default [0, 1] pixels);
Gradient*Input's baseline is 0 by definition (Theorem 1).

The Poly model is not an ``nn.Sequential``; for DeepLIFT it is rewritten as an
equivalent one (one Linear, an element-wise "square the quadratic units"
activation, a fixed summing Linear) so that both DeepLIFT (Rescale) and its
layer-wise Taylor reformulation (Theorem 4) apply (the backend's op table
treats ``torch.square`` as an element-wise function).

One job a file:

* :mod:`~captum_unified.experiments.deng.protocol` -- the paper's models,
  methods, principles, sizes and published numbers;
* :mod:`~captum_unified.experiments.deng.rewriting` -- the Poly model as an
  ``nn.Sequential``;
* :mod:`~captum_unified.experiments.deng.maps` -- the methods' attribution maps;
* :mod:`~captum_unified.experiments.deng.tables` -- the rows of Tables 2 and 3,
  the Taylor infidelity and Figure 2;
* :mod:`~captum_unified.experiments.deng.plots` -- the figures;
* :mod:`~captum_unified.experiments.deng.localization` -- Figure 3 on the
  localisation task;
* :mod:`~captum_unified.experiments.deng.report` -- ``deng_report.md``;
* :mod:`~captum_unified.experiments.deng.pipeline` -- :func:`run`, which ties
  them together.
"""

from captum_unified.experiments.deng.maps import method_maps, reference_set, taylor_maps
from captum_unified.experiments.deng.pipeline import run
from captum_unified.experiments.deng.plots import plot_principles, plot_saliency, plot_table3
from captum_unified.experiments.deng.protocol import (
    DEFAULTS,
    EG_REFERENCES,
    EG_SAMPLES,
    EG_STDEV,
    EG_VARIANT,
    FIGURE4_METHODS,
    FIGURE_METHODS,
    MODELS,
    OCC_P,
    PAPER_APPROX_ERROR,
    PAPER_INFIDELITY,
    PAPER_TABLE3,
    PRINCIPLES,
    QUICK_DEFAULTS,
    QUICK_SQUARE_SIZES,
    TABLE3_METHODS,
)
from captum_unified.experiments.deng.report import infidelity_protocol, write_report
from captum_unified.experiments.deng.rewriting import poly_as_sequential
from captum_unified.experiments.deng.tables import (
    deeplift_layer_d,
    figure2_rows,
    infidelity_rows,
    sum_share,
    table2_rows,
    table3_rows,
)

__all__ = [
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "MODELS",
    "TABLE3_METHODS",
    "PAPER_TABLE3",
    "PAPER_INFIDELITY",
    "PAPER_APPROX_ERROR",
    "PRINCIPLES",
    "FIGURE_METHODS",
    "FIGURE4_METHODS",
    "EG_VARIANT",
    "EG_STDEV",
    "EG_SAMPLES",
    "EG_REFERENCES",
    "OCC_P",
    "QUICK_SQUARE_SIZES",
    "poly_as_sequential",
    "method_maps",
    "reference_set",
    "taylor_maps",
    "deeplift_layer_d",
    "table3_rows",
    "infidelity_rows",
    "figure2_rows",
    "sum_share",
    "table2_rows",
    "plot_table3",
    "plot_principles",
    "plot_saliency",
    "infidelity_protocol",
    "write_report",
    "run",
]
