r"""The registries: every name the package answers to, one entry each.

* :data:`METHODS` — the attribution methods (a public class, with settings);
* :data:`METRICS` — the evaluation metrics (a
  :class:`~captum_unified.metrics.base.Metric` class, with its command-line options);
* :data:`ZOO` and :data:`ACTIVATIONS` — the model zoo the command line trains by name;
* :data:`PAPERS` — the reproduction pipelines (``captum-unified reproduce``);
* :data:`TARGETS` — which output a run explains.

This module is the one place these are registered; everything else is derived
from it: the command line's choices, options and help
(:mod:`captum_unified.cli`), the lists in the documentation
(``docs/pages/registry.inc``, written by ``docs/_static/make_registry_tables.py``),
the experiment pipelines' method table
(:data:`captum_unified.experiments.common.METHODS`), the metric registry
(:mod:`captum_unified.metrics.registry`) and the contract tests
(``tests/contracts``), which run every entry.

It holds names and lazy ``"module:attribute"`` references only, and imports
nothing heavy: the command line reads it to answer ``--help`` without
importing torch. :func:`load` resolves a reference.

Adding a method: its file (``captum_unified/attr/_core/<name>.py``, exported
from :mod:`captum_unified.attr` and :mod:`captum_unified`), one
:class:`MethodEntry` line in :data:`METHODS`, and its oracle test. Adding a
metric: its file (``captum_unified/metrics/<name>.py``), one
:class:`MetricEntry` line in :data:`METRICS`, and its test.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTIVATIONS",
    "METHODS",
    "METRICS",
    "PAPERS",
    "TARGETS",
    "ZOO",
    "MethodEntry",
    "MetricEntry",
    "Option",
    "Paper",
    "ZooModel",
    "load",
]


def load(ref: str) -> Any:
    """The object named by a ``"module:attribute"`` reference (imports the module)."""
    module, sep, attr = ref.partition(":")
    if not sep:
        raise ValueError(f"a reference is 'module:attribute', got {ref!r}.")
    return getattr(importlib.import_module(module), attr)


def _table(*entries: Any) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for e in entries:
        if e.name in table:
            raise ValueError(f"{e.name!r} is registered twice.")
        table[e.name] = e
    return table


# ------------------------------------------------------------------ methods
@dataclass(frozen=True)
class MethodEntry:
    """One attribution method by name.

    Attributes:
        name: the name on the command line and in the experiment pipelines.
        label: the name as the papers write it (reports, figures, the
            ``method`` column of ``captum-unified evaluate``).
        ref: ``"module:Class"`` of the public class.
        summary: one line for ``--help`` and the docs.
        kwargs: constructor settings of this entry (an entry is a class with
            settings: ``deeplift_ancona`` is ``DeepLiftRescale(products="gradient")``).
        needs: arguments without a default that a name alone cannot give
            (a ``layer``, a ``rule``, ``patch_shapes``, ...): such a method is
            used from Python; the command line lists it with what it needs.
        steps: the ``attribute`` argument that takes a run's step count
            (Integrated Gradients: ``n_steps``).
        captum: ``"module:Class"`` of the Captum class that computes the same
            thing with the same arguments (the contract tests compare them).
        default: run when no method is chosen (Ancona et al.'s Figure 4 five).
        random: the result depends on random draws (compared in distribution).
    """

    name: str
    label: str
    ref: str
    summary: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    needs: tuple[str, ...] = ()
    steps: str = ""
    captum: str = ""
    default: bool = False
    random: bool = False

    @property
    def cls(self) -> type:
        """The public class (imports it)."""
        return load(self.ref)

    def make(self, forward_func: Any, **needed: Any) -> Any:
        """The attribution object on ``forward_func``: ``needed`` gives the
        constructor's entries of :attr:`needs` (e.g. ``layer=model.fc1``)."""
        return self.cls(forward_func, **needed, **self.kwargs)

    @property
    def layer(self) -> bool:
        """A layer method (attributions have the layer's shape)."""
        return "layer" in self.needs

    @property
    def runs_by_name(self) -> bool:
        """Whether the name alone makes a working method (the command line offers it)."""
        return not self.needs


#: Every attribution method, by name (one line each).
METHODS: dict[str, MethodEntry] = _table(
    MethodEntry(
        "gi",
        "Gradient*Input",
        "captum_unified.attr:GradientXInput",
        "gradient times input, the plain chain rule (Shrikumar et al. 2016)",
        captum="captum.attr:InputXGradient",
        default=True,
    ),
    MethodEntry(
        "ig",
        "Integrated Gradients",
        "captum_unified.attr:IntegratedGradients",
        "the gradient averaged on the straight path from the baseline (Sundararajan et al. 2017)",
        steps="n_steps",
        captum="captum.attr:IntegratedGradients",
        default=True,
    ),
    MethodEntry(
        "lrp",
        "epsilon-LRP",
        "captum_unified.attr:EpsilonLRP",
        "epsilon-LRP (Bach et al. 2015) as a modified gradient, epsilon 1e-4 (Ancona et al. 2018, Prop. 1)",
        kwargs={"epsilon": 1e-4},
        default=True,
    ),
    MethodEntry(
        "deeplift",
        "DeepLIFT (Rescale)",
        "captum_unified.attr:DeepLiftRescale",
        "DeepLIFT's Rescale rule (Shrikumar et al. 2017) as a modified gradient (Ancona et al. 2018, Prop. 2)",
        captum="captum.attr:DeepLift",
        default=True,
    ),
    MethodEntry(
        "deeplift_ancona",
        "DeepLIFT (ordinary products)",
        "captum_unified.attr:DeepLiftRescale",
        "DeepLIFT Rescale with the ordinary product rule at products of activations (Ancona et al.'s original)",
        kwargs={"products": "gradient"},
    ),
    MethodEntry(
        "occlusion1",
        "Occlusion-1",
        "captum_unified.attr:Occlusion1",
        "the output change when one feature is set to the baseline (Zeiler and Fergus 2014)",
        captum="captum.attr:FeatureAblation",
        default=True,
    ),
    MethodEntry(
        "taylor",
        "Taylor (2nd order)",
        "captum_unified.taylor:TaylorAttribution",
        "second-order Taylor attribution at the input, gradient and Hessian terms (Deng et al. 2021)",
    ),
    MethodEntry(
        "eg",
        "Expected Gradients",
        "captum_unified.attr:ExpectedGradients",
        "Integrated Gradients averaged over sampled baselines (Erion et al. 2021)",
        needs=("baseline_stdevs",),
        random=True,
    ),
    MethodEntry(
        "occlusion_patch",
        "Occlusion-patch",
        "captum_unified.attr:OcclusionPatch",
        "the output change when a patch or feature group is set to the baseline",
        needs=("patch_shapes",),
    ),
    MethodEntry(
        "modified_gradient",
        "Modified gradient",
        "captum_unified.attr:ModifiedGradient",
        "the chain rule with each nonlinearity's derivative replaced by a Rule (Ancona et al. 2018, §3)",
        needs=("rule",),
    ),
    MethodEntry(
        "layer_gi",
        "Layer Gradient*Activation",
        "captum_unified.attr:LayerGradientXInput",
        "gradient times activation of a layer's neurons",
        needs=("layer",),
        captum="captum.attr:LayerGradientXActivation",
    ),
    MethodEntry(
        "layer_lrp",
        "Layer epsilon-LRP",
        "captum_unified.attr:LayerEpsilonLRP",
        "epsilon-LRP relevance of a layer's neurons",
        needs=("layer",),
    ),
    MethodEntry(
        "layer_deeplift",
        "Layer DeepLIFT (Rescale)",
        "captum_unified.attr:LayerDeepLiftRescale",
        "DeepLIFT Rescale contributions of a layer's neurons",
        needs=("layer",),
        captum="captum.attr:LayerDeepLift",
    ),
    MethodEntry(
        "layer_modified_gradient",
        "Layer modified gradient",
        "captum_unified.attr:LayerModifiedGradient",
        "a Rule's modified gradient times activation of a layer's neurons",
        needs=("layer", "rule"),
    ),
)


# ------------------------------------------------------------------ metrics
@dataclass(frozen=True)
class Option:
    """A command-line option of a metric: one constructor argument.

    Attributes:
        flag: the option, e.g. ``"--subsets"``.
        param: the constructor argument it sets, e.g. ``"n_subsets"``.
        kind: ``"int"`` (a positive integer), ``"ints"`` (one or more),
            ``"float"``, or ``"pairs"`` (``METHOD=REFERENCE`` method names,
            given to the metric as ``{label: reference method}``).
        help: what it means.
        default: the value when not given (``None``: the metric's own default).
        quick: the value under ``--quick`` when not given (``None``: ``default``).
        metavar: the value's name in ``--help``.
    """

    flag: str
    param: str
    kind: str
    help: str
    default: Any = None
    quick: Any = None
    metavar: str = ""


@dataclass(frozen=True)
class MetricEntry:
    """One metric by name.

    Attributes:
        name: the registry name (the :class:`~captum_unified.metrics.base.Metric`
            subclass's ``name``).
        ref: ``"module:Class"`` of the Metric subclass.
        summary: one line for ``--help`` and the docs.
        options: the command-line options of ``captum-unified evaluate`` that
            set its constructor arguments.
        data: what each data batch must carry after ``(inputs, labels)``
            (``"boxes"``: a bounding box per sample), ``""`` for nothing.
        default: evaluated when no metric is chosen.
    """

    name: str
    ref: str
    summary: str
    options: tuple[Option, ...] = ()
    data: str = ""
    default: bool = False

    @property
    def cls(self) -> type:
        """The Metric subclass (imports it)."""
        return load(self.ref)


#: Every metric, by name (one entry each; its options are part of the entry).
METRICS: dict[str, MetricEntry] = _table(
    MetricEntry(
        "sensitivity_n",
        "captum_unified.metrics.sensitivity_n:SensitivityN",
        "correlation of attribution sums and output changes on random n-feature subsets (Ancona et al. 2018)",
        default=True,
        options=(
            Option(
                "--n-list",
                "n",
                "ints",
                "Sensitivity-n subset sizes (default: 15 log-spaced sizes up to 80% of the features)",
                metavar="N",
            ),
            Option(
                "--subsets",
                "n_subsets",
                "int",
                "Sensitivity-n subsets per n (default 100, --quick 10)",
                default=100,
                quick=10,
            ),
        ),
    ),
    MetricEntry(
        "infidelity",
        "captum_unified.metrics.infidelity:Infidelity",
        "expected squared error of attributions against output changes of random squares removed (Yeh et al. 2019)",
        default=True,
        options=(
            Option("--patch-size", "patch_size", "int", "infidelity square side (default 4)", default=4),
            Option(
                "--perturbations",
                "n_perturb_samples",
                "int",
                "infidelity squares per sample (default 10, --quick 4)",
                default=10,
                quick=4,
            ),
        ),
    ),
    MetricEntry(
        "region_perturbation",
        "captum_unified.metrics.region_perturbation:RegionPerturbation",
        "output drop as the most relevant features are removed first, and its area (AOPC; Samek et al. 2016)",
        default=True,
        options=(
            Option(
                "--region-steps",
                "n_steps",
                "int",
                "region perturbation steps (default 16, --quick 8)",
                default=16,
                quick=8,
            ),
        ),
    ),
    MetricEntry(
        "bounding_box_accuracy",
        "captum_unified.metrics.bounding_box:BoundingBoxAccuracy",
        "share of the k most relevant pixels inside the object's box, k the box's area (Schulz et al. 2020)",
        data="boxes",
    ),
    MetricEntry(
        "percentage_change",
        "captum_unified.metrics.percentage_change:PercentageChange",
        "squared distance of a method's attributions to a reference's, in percent (Deng et al. 2021, Table 3)",
        options=(
            Option(
                "--references",
                "references",
                "pairs",
                "METHOD's attributions against REFERENCE's, both method names (e.g. ig=taylor); "
                "needed by percentage_change",
                metavar="METHOD=REFERENCE",
            ),
        ),
    ),
)


# --------------------------------------------------------------------- zoo
@dataclass(frozen=True)
class ZooModel:
    """A zoo model the command line trains and caches by name
    (:func:`captum_unified.models.build_model` builds it).

    Attributes:
        name: the zoo name.
        activation: the paper's activation (``None``: the model has no activation to choose).
        hidden: the default hidden widths (units or channels per hidden layer; Poly: its rank).
        summary: one line for ``--help`` and the docs.
    """

    name: str
    activation: str | None
    hidden: tuple[int, ...]
    summary: str


#: The model zoo, by name.
ZOO: dict[str, ZooModel] = _table(
    ZooModel("ancona_mlp", "relu", (512, 512), "Ancona et al.'s MNIST MLP (Dense512, Dense512, Dense10)"),
    ZooModel(
        "ancona_cnn", "relu", (32, 64, 128), "Ancona et al.'s MNIST CNN (Conv 32, Conv 64, MaxPool, Dense128, Dense10)"
    ),
    ZooModel("deng_poly", None, (4,), "Deng et al.'s Poly: a second-order polynomial of the input (rank 4)"),
    ZooModel("deng_mlp", "sigmoid", (256, 128), "Deng et al.'s 3-layer sigmoid MLP"),
    ZooModel("deng_cnn", "sigmoid", (16, 32), "Deng et al.'s 3-layer sigmoid CNN"),
    ZooModel("deng_cnn_softplus", "softplus", (16, 32), "Deng et al.'s softplus CNN"),
    ZooModel("loc_cnn", "relu", (16, 32, 32), "a small CNN for the digit-localisation task (Deng et al.'s Figure 3)"),
    ZooModel("ancona_lstm", None, (64,), "an LSTM reading a digit row by row"),
    ZooModel("vit", None, (32,), "a small vision transformer on 7x7 patches"),
)

#: The activations a zoo model can take: name -> ``torch.nn`` class name.
ACTIVATIONS: dict[str, str] = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid", "softplus": "Softplus"}

#: ``--target`` choices: which output each explained sample's attribution explains.
TARGETS: dict[str, str] = {
    "true": "the true class (Ancona et al.'s choice: 'the correct class')",
    "predicted": "the predicted class (Deng et al.'s choice: 'the predicted label')",
}


# ------------------------------------------------------------------ papers
@dataclass(frozen=True)
class Paper:
    """A reproduction pipeline (``captum-unified reproduce NAME``).

    Attributes:
        name: the command-line name.
        module: the pipeline's module (``run(cfg)``, ``DEFAULTS``, ``QUICK_DEFAULTS``).
        summary: what it reproduces.
        writes: ``(file, what it holds)`` for each file it writes into
            ``--out`` (files as shell patterns).
    """

    name: str
    module: str
    summary: str
    writes: tuple[tuple[str, str], ...]


#: The reproduction pipelines, by name.
PAPERS: dict[str, Paper] = _table(
    Paper(
        "ancona",
        "captum_unified.experiments.ancona",
        "Ancona et al. (ICLR 2018): Sensitivity-n of five methods on MNIST networks (Figure 4), completeness checks",
        (
            ("ancona_report.md", "the report: set-up, tables, figures, findings"),
            ("ancona_checks.csv", "completeness and agreement checks per model and method"),
            ("ancona_sensitivity_n.csv", "Sensitivity-n per model, method and n"),
            ("ancona_figure4.png", "Figure 4: the Sensitivity-n curves"),
            ("ancona_attributions.png", "attribution maps of three digits"),
        ),
    ),
    Paper(
        "deng",
        "captum_unified.experiments.deng",
        "Deng et al. (AAAI 2021): Taylor reformulations (Tables 2-3), infidelity and localisation (Figures 2-3)",
        (
            ("deng_report.md", "the report: set-up, tables, figures, findings"),
            ("deng_*.csv", "Tables 2 and 3, checks, infidelity, the data of Figures 2 and 3"),
            ("deng_*.png", "Figures 2 and 3, Table 3 as a plot, localisation examples"),
        ),
    ),
    Paper(
        "transformers",
        "captum_unified.experiments.language_models",
        "trained char GPT-2 / LLaMA and a sentiment BERT: DeepLIFT, LRP, GI against Captum's LayerIG and "
        "FeatureAblation (completeness, token deletion, Sensitivity-n, valence rank correlation, time)",
        (
            ("transformers_report.md", "the report: models, findings, the table per method"),
            (
                "transformers_methods.csv",
                "per model and method: completeness, deletion score, Sensitivity-n, Spearman, time x gradient",
            ),
            ("transformers_deletion.csv", "the token-deletion curves (MoRF, LeRF) per model and method"),
            ("transformers_sensitivity_n.csv", "Sensitivity-n per model, method and n"),
            ("transformers_tests.csv", "the paired t tests behind the report's rankings"),
            ("transformers_deletion.png", "the deletion curves"),
        ),
    ),
)
