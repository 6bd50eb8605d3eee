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
* ``deng_checks.csv``, ``deng_figure.png`` (Table 3 and the Taylor infidelity),
  ``deng_report.md`` (every table, with sentences generated from the numbers by
  :mod:`captum_unified.experiments.findings`).

Baselines: all methods, reformulations and removed squares use ``cfg.baseline``
(default 0: the black background of the default [0, 1] pixels);
Gradient*Input's baseline is 0 by definition (Theorem 1).

The Poly model is not an ``nn.Sequential``; for DeepLIFT it is rewritten as an
equivalent one (one Linear, an element-wise "square the quadratic units"
activation, a fixed summing Linear) so that both DeepLIFT (Rescale) and its
layer-wise Taylor reformulation (Theorem 4) apply (the backend's op table
treats ``torch.square`` as an element-wise function).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

import captum_unified as cu
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
from captum_unified.experiments.yeh_infidelity import (
    YEH_SOURCE,
    YEH_SQUARE_SIZES,
    infidelity_from_sums,
    output_changes,
    square_sums,
)
from captum_unified.models import PolyModel
from captum_unified.taylor import (
    TaylorAttribution,
    deeplift_layer_reformulation,
    gradient_x_input_reformulation,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
)

__all__ = [
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "MODELS",
    "PAPER_TABLE3",
    "PAPER_INFIDELITY",
    "PAPER_APPROX_ERROR",
    "PRINCIPLES",
    "FIGURE_METHODS",
    "EG_STDEV",
    "poly_as_sequential",
    "method_maps",
    "table3_rows",
    "infidelity_rows",
    "figure2_rows",
    "run",
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

#: Sizes of ``reproduce deng`` when ``--samples`` etc. are not given.
DEFAULTS: dict[str, Any] = dict(samples=100, ig_steps=50, baseline=0.0, pixel_range=(0.0, 1.0), recipe="adadelta-es")
#: ``--quick``: small, but trained enough for the paper's qualitative facts to show
#: (Adam, 10 epochs on 600 digits: Adadelta needs many more steps).
QUICK_DEFAULTS = dict(
    samples=10, ig_steps=32, epochs=10, n_train=600, baseline=0.0, pixel_range=(0.0, 1.0), recipe="adam"
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


class _SquareFirst(nn.Module):
    """Element-wise: square the first ``n`` units, identity on the rest."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def forward(self, z: Tensor) -> Tensor:
        return torch.cat([torch.square(z[:, : self.n]), z[:, self.n :]], dim=1)


def poly_as_sequential(model: PolyModel) -> nn.Sequential:
    """The same function as ``model`` as ``Flatten, Linear, square-activation,
    Linear`` (the last one sums each class's ``rank`` squares and its linear part)."""
    c, r = model.n_classes, model.rank
    nq = c * r
    d = model.quad.weight.shape[1]
    first = nn.Linear(d, nq + c)
    last = nn.Linear(nq + c, c, bias=False)
    with torch.no_grad():
        first.weight.copy_(torch.cat([model.quad.weight, model.linear.weight]))
        first.bias.copy_(torch.cat([torch.zeros(nq), model.linear.bias]))
        w = torch.zeros(c, nq + c)
        for k in range(c):
            w[k, k * r : (k + 1) * r] = 1.0
            w[k, nq + k] = 1.0
        last.weight.copy_(w)
    seq = nn.Sequential(nn.Flatten(), first, _SquareFirst(nq), last).eval()
    for p in seq.parameters():
        p.requires_grad_(False)
    return seq


def _patch_mask(x: Tensor, p: int) -> Tensor:
    from captum_unified.feature_groups import FeatureGroups

    return FeatureGroups.patches((x,), ((1, p, p),)).ids[0]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def _as_sequential(model: nn.Module) -> nn.Sequential | None:
    if isinstance(model, PolyModel):
        return poly_as_sequential(model)
    return model if isinstance(model, nn.Sequential) else None


def method_maps(
    model: nn.Module,
    x: Tensor,
    target: Tensor,
    baseline: float,
    methods: Sequence[str],
    ig_steps: int = 50,
    seed: int = 0,
    pixel_span: float = 1.0,
    batch: int = 50,
    references: Tensor | None = None,
) -> dict[str, Tensor]:
    """Attribution maps of Deng's methods (names of Table 3 and the figures:
    ``GI``, ``Occ-1``, ``Occ-2x2``, ``Occ-4x4``, ``Occ-p`` (= ``Occ-4x4``), ``DL``,
    ``IG``, ``EG`` (Gaussian baselines), ``EG (data)`` (baselines drawn from
    ``references``)) with the library's classes; baseline ``baseline`` (GI: 0)."""
    seq = _as_sequential(model)
    out: dict[str, list[Tensor]] = {m: [] for m in methods}
    for sl in _batches(len(x), batch):
        xb, tb = x[sl], target[sl]
        b = torch.full_like(xb, baseline)
        for m in methods:
            if m == "GI":
                a = cu.GradientXInput(model).attribute(xb, target=tb)
            elif m == "Occ-1":
                a = cu.Occlusion1(model).attribute(xb, baselines=baseline, target=tb)
            elif m in ("Occ-2x2", "Occ-4x4", "Occ-p"):
                p = OCC_P if m == "Occ-p" else int(m[4])
                a = cu.OcclusionPatch(model).attribute(xb, patch_shapes=(1, p, p), baselines=baseline, target=tb)
            elif m == "DL":
                a = cu.DeepLiftRescale(seq if seq is not None else model).attribute(xb, baselines=b, target=tb)
            elif m == "IG":
                a = cu.IntegratedGradients(model).attribute(xb, baselines=b, target=tb, n_steps=ig_steps)
            elif m == "EG":
                a = cu.ExpectedGradients(model).attribute(
                    xb, baseline_stdevs=EG_STDEV * pixel_span, n_samples=EG_SAMPLES, seed=seed + sl.start, target=tb
                )
            elif m == EG_VARIANT:
                if references is None:
                    raise ValueError(f"{EG_VARIANT} needs references (training samples).")
                a = cu.ExpectedGradients(model).attribute(
                    xb, baselines=references, n_samples=EG_SAMPLES, seed=seed + sl.start, target=tb
                )
            else:
                raise ValueError(f"unknown method {m!r}")
            out[m].append(a.detach())
    return {m: torch.cat(v) for m, v in out.items()}


def reference_set(train: tuple, seed: int, n: int = EG_REFERENCES) -> Tensor:
    """EG (data)'s reference samples: ``n`` training images drawn class-stratified."""
    from captum_unified.data import stratified_sample

    x, y = train
    return x[torch.as_tensor(stratified_sample(y, min(n, len(y)), seed + 1))]


def _layer_name(seq: nn.Sequential, module: nn.Module) -> str:
    idx = next(i for i, m in enumerate(seq) if m is module)
    if idx == 0:
        return "input"
    return f"after {type(seq[idx - 1]).__name__} (module {idx - 1})"


def _dl_layer_pairs(model: nn.Module, x: Tensor, base: Tensor, target: Tensor, upstream: str):
    """``[(layer name, DeepLIFT's layer attributions, reformulation)]`` for every layer
    that a nonlinearity follows: :class:`~captum_unified.LayerDeepLiftRescale` at the
    layer's input against :func:`~captum_unified.taylor.deeplift_layer_reformulation`."""
    seq = _as_sequential(model)
    if seq is None:
        raise TypeError("DeepLIFT's Taylor reformulation needs an nn.Sequential of affine layers and activations.")
    pairs = []
    for module, reform in deeplift_layer_reformulation(seq, x, base, target, upstream=upstream):
        original = cu.LayerDeepLiftRescale(seq, module).attribute(
            x, baselines=base, target=target, attribute_to_layer_input=True
        )
        pairs.append((_layer_name(seq, module), original.detach(), reform))
    return pairs


def deeplift_layer_d(
    model: nn.Module, x: Tensor, baseline: float, target: Tensor, upstream: str = "deeplift"
) -> list[tuple]:
    """DeepLIFT's Table-3 ``d`` per layer: ``[(layer name, d in %)]``; their mean is
    Deng's DL entry."""
    base = torch.full_like(x, baseline)
    return [(name, percentage_change(o, r)) for name, o, r in _dl_layer_pairs(model, x, base, target, upstream)]


def table3_rows(
    model: nn.Module,
    short: str,
    x: Tensor,
    target: Tensor,
    baseline: float,
    ig_steps: int,
    maps: dict[str, Tensor],
    batch: int = 25,
    methods: Sequence[str] = tuple(TABLE3_METHODS),
) -> tuple:
    """Deng's Table 3 on one model: ``(rows, dl_layer_rows)``; ``maps`` holds the
    original methods' attributions (:func:`method_maps`); ``methods`` a subset
    of :data:`TABLE3_METHODS` to compute."""
    seq = _as_sequential(model) if "DL" in methods else None
    reform: dict[str, list[Tensor]] = {m: [] for m in methods if m != "DL"}
    reform.setdefault("IG", [])  # IG's per-sample d is correlated with eps
    layers: dict[str, dict[str, list[tuple]]] = {"deeplift": {}, "taylor": {}}
    eps_ratio: list[Tensor] = []
    for sl in _batches(len(x), batch):
        xb, tb = x[sl], target[sl]
        b = torch.full_like(xb, baseline)
        if "GI" in reform:
            reform["GI"].append(cast(Tensor, gradient_x_input_reformulation(model, xb, target=tb)))
        if "Occ-1" in reform:
            reform["Occ-1"].append(cast(Tensor, occlusion1_reformulation(model, xb, baselines=b, target=tb)))
        reform["IG"].append(cast(Tensor, integrated_gradients_reformulation(model, xb, baselines=b, target=tb)))
        for p in (2, 4):
            if f"Occ-{p}x{p}" in reform:
                reform[f"Occ-{p}x{p}"].append(
                    cast(Tensor, occlusion_patch_reformulation(model, xb, _patch_mask(xb, p), baselines=b, target=tb))
                )
        if seq is not None:
            for upstream in layers:
                for name, o, r in _dl_layer_pairs(model, xb, b, tb, upstream):
                    layers[upstream].setdefault(name, []).append((o, r))
        _, delta = TaylorAttribution(model, order=2).attribute(xb, b, tb, return_convergence_delta=True)
        with torch.no_grad():
            idx = torch.arange(len(xb))
            df = model(xb)[idx, tb] - model(b)[idx, tb]
        eps_ratio.append((delta.abs() / df.abs().clamp_min(1e-12)).detach().double())
    eps = torch.cat(eps_ratio)
    d_ig = cast(Tensor, percentage_change(maps["IG"], torch.cat(reform["IG"]).detach(), per_sample=True))
    corr = float(torch.corrcoef(torch.stack([d_ig.double(), eps]))[0, 1]) if len(eps) > 2 else float("nan")
    common = {
        "model": short,
        "approx_error": float(eps.mean()),
        "approx_error_median": float(eps.median()),
        "paper_approx_error": PAPER_APPROX_ERROR[short],
        "corr_d_ig_eps": corr,
        "samples": len(x),
    }
    layer_rows, layer_mean = [], {}
    for upstream, by_layer in layers.items():
        ds = []
        for name, pairs in by_layer.items():
            d = percentage_change(
                torch.cat([o.flatten(1) for o, _ in pairs]), torch.cat([r.flatten(1) for _, r in pairs])
            )
            ds.append(d)
            layer_rows.append({"model": short, "layer": name, "upstream": upstream, "d_percent": d, "samples": len(x)})
        if ds:
            layer_mean[upstream] = sum(ds) / len(ds)
            layer_rows.append(
                {
                    "model": short,
                    "layer": "mean over layers",
                    "upstream": upstream,
                    "d_percent": layer_mean[upstream],
                    "samples": len(x),
                }
            )
    rows = []
    for m in methods:
        row = {**common, "method": m, "paper_d_percent": PAPER_TABLE3[short][m], "note": ""}
        if m == "DL":
            if "deeplift" not in layer_mean:
                rows.append({**row, "d_percent": "", "note": "n/a: model is not an nn.Sequential"})
                continue
            row.update(
                d_percent=layer_mean["deeplift"],
                note=f"mean over {len(layers['deeplift'])} layers; each layer's Rescale step reformulated",
            )
        else:
            row["d_percent"] = percentage_change(maps[m], torch.cat(reform[m]).detach())
        rows.append(row)
    return rows, layer_rows


def taylor_maps(model: nn.Module, x: Tensor, target: Tensor, baseline: float) -> dict[int, Tensor]:
    """First- and second-order Taylor attribution at the baseline."""
    b = torch.full_like(x, baseline)
    return {order: TaylorAttribution(model, order=order).attribute(x, b, target).detach() for order in (1, 2)}


def _infidelities(changes: Tensor, attr: Tensor, sizes: Sequence[int]) -> dict[str, float]:
    sums = square_sums(attr, sizes)
    return {
        "infidelity_scaled": float(infidelity_from_sums(changes, sums, True).mean()),
        "infidelity_unscaled": float(infidelity_from_sums(changes, sums, False).mean()),
    }


def infidelity_rows(
    short: str, changes: Tensor, taylor: dict[int, Tensor], n: int, sizes: Sequence[int] = YEH_SQUARE_SIZES
) -> list[dict]:
    """Infidelity of first- and second-order Taylor attribution (Yeh's squares);
    ``changes`` from :func:`~captum_unified.experiments.yeh_infidelity.output_changes`
    with the same ``sizes``."""
    return [
        {
            "model": short,
            "order": order,
            **_infidelities(changes, taylor[order], sizes),
            "paper_infidelity": PAPER_INFIDELITY[short][order],
            "samples": n,
            "squares_per_sample": changes.shape[1],
        }
        for order in (1, 2)
    ]


def figure2_rows(
    short: str, changes: Tensor, maps: dict[str, Tensor], n: int, sizes: Sequence[int] = YEH_SQUARE_SIZES
) -> list[dict]:
    """Infidelity of Figure 2's six methods (and of ``EG (data)``, if in ``maps``)
    on one model, with their principle counts."""
    methods = FIGURE_METHODS + ([EG_VARIANT] if EG_VARIANT in maps else [])
    return [
        {
            "model": short,
            "method": m,
            "principles": sum(PRINCIPLES[m]),
            **_infidelities(changes, maps[m], sizes),
            "samples": n,
            "squares_per_sample": changes.shape[1],
        }
        for m in methods
    ]


def table2_rows() -> list[dict]:
    """Deng's Table 2 (the paper's seven methods; not the EG variant)."""
    rows = []
    for m, (a, b, c) in PRINCIPLES.items():
        if m == EG_VARIANT:
            continue
        rows.append(
            {
                "method": m,
                "low_approximation_error": a,
                "correct_assignment": b,
                "unbiased_baseline": c,
                "principles": a + b + c,
                "note": "partially follows the second (counted 1/2)" if b == 0.5 else "",
            }
        )
    return rows


def _fmt(v, spec: str = ".3g") -> str:
    return "n/a" if v == "" or v is None else format(float(v), spec)


def _plot_table3(table3: list[dict], infid: list[dict], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover
        return None
    import numpy as np

    FLOOR = 1e-13  # d of exact reformulations is ~1e-9 .. 1e-13 (float rounding)
    fig = Figure(figsize=(12, 4.6))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    models = [m for m in ("Poly", "M-sg", "C-sg") if any(r["model"] == m for r in table3)]
    xs = np.arange(len(TABLE3_METHODS))
    w = 0.8 / max(len(models), 1)
    colors = {"Poly": "tab:blue", "M-sg": "tab:orange", "C-sg": "tab:green"}
    for k, m in enumerate(models):
        ours = [
            next((r["d_percent"] for r in table3 if r["model"] == m and r["method"] == me), "") for me in TABLE3_METHODS
        ]
        ours = [np.nan if v == "" else max(float(v), FLOOR) for v in ours]
        paper = [max(PAPER_TABLE3[m][me], FLOOR) for me in TABLE3_METHODS]
        pos = xs - 0.4 + w * (k + 0.5)
        ax1.bar(pos, ours, w, color=colors[m], label=f"{m} (ours)")
        ax1.scatter(pos, paper, marker="_", s=200, color="k", zorder=3, label="Deng et al. (paper)" if k == 0 else None)
    ax1.set_yscale("log")
    ax1.set_ylim(FLOOR / 3, 1000)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(TABLE3_METHODS)
    ax1.set_ylabel(f"d (%), log scale; 0 drawn at {FLOOR:g}")
    ax1.set_title("Table 3: original vs second-order Taylor reformulation")
    ax1.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    groups = [m for m in ("C-sg", "C-sp") if any(r["model"] == m for r in infid)]
    shown = [1.0]
    for k, m in enumerate(groups):
        rs = {int(r["order"]): r for r in infid if r["model"] == m}
        for j, (kind, hatch) in enumerate((("scaled", ""), ("unscaled", "//"))):
            ratio = float(rs[2][f"infidelity_{kind}"]) / float(rs[1][f"infidelity_{kind}"])
            shown.append(ratio)
            ax2.bar(
                k + (j - 0.5) * 0.35,
                ratio,
                0.35,
                color="0.75" if j else "0.5",
                hatch=hatch,
                label=f"ours, {kind}" if k == 0 else None,
            )
        shown.append(PAPER_INFIDELITY[m][2] / PAPER_INFIDELITY[m][1])
        ax2.scatter(
            k, shown[-1], marker="_", s=500, color="k", zorder=3, label="Deng et al. (paper)" if k == 0 else None
        )
    ax2.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax2.set_yscale("log")
    ax2.set_ylim(min(shown) / 1.6, max(max(shown) * 1.6, 2.0))
    from matplotlib.ticker import FormatStrFormatter

    ax2.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax2.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax2.tick_params(axis="y", which="minor", labelsize=7)
    ax2.set_xticks(range(len(groups)))
    ax2.set_xticklabels(groups)
    ax2.set_ylabel("infidelity ratio 2nd / 1st order (< 1: 2nd better)")
    ax2.set_title("Taylor infidelity, Yeh's squares")
    if groups:
        ax2.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return path


#: Deng's Figure 2/3 markers per method and colours per model.
_MARKERS = {"GI": "o", "Occ-1": "v", "Occ-p": "^", "DL": "s", "IG": "D", "EG": "*", EG_VARIANT: "*"}
_COLORS = {"M-sg": "tab:blue", "C-sg": "tab:green", "C-sp": "tab:red", "Loc-CNN": "tab:purple"}


def plot_principles(
    rows: list[dict],
    value_keys: Sequence[str],
    ylabels: Sequence[str],
    titles: Sequence[str],
    path: Path,
    log: bool = True,
    chance: float | None = None,
) -> Path | None:
    """Deng's Figures 2/3: one point per method and model, x the number of
    principles, one panel per ``value_keys`` entry, Spearman's rho in the legend;
    ``chance``: a dashed line at that level (e.g. a constant map's score)."""
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
        from matplotlib.figure import Figure
        from matplotlib.lines import Line2D
    except ImportError:  # pragma: no cover
        return None
    fig = Figure(figsize=(5.2 * len(value_keys) + 2.0, 4.2))
    axes = fig.subplots(1, len(value_keys), squeeze=False)[0]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, key, ylabel, title in zip(axes, value_keys, ylabels, titles):
        for m in models:
            color = _COLORS.get(m, "0.4")
            pts = sorted(
                (float(r["principles"]), float(r[key]), r["method"])
                for r in rows
                if r["model"] == m and r["method"] in FIGURE_METHODS
            )
            ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, lw=0.8, alpha=0.6)
            for px, py, meth in pts:
                ax.scatter(
                    px, py, marker=_MARKERS.get(meth, "o"), color=color, s=55, edgecolor="k", linewidth=0.4, zorder=3
                )
            for r in rows:
                if r["model"] == m and r["method"] == EG_VARIANT:  # hollow star, off the line
                    ax.scatter(
                        float(r["principles"]) + 0.08,
                        float(r[key]),
                        marker="*",
                        s=80,
                        facecolor="none",
                        edgecolor=color,
                        linewidth=1.0,
                        zorder=3,
                    )
            rho = findings.spearman([p[0] for p in pts], [p[1] for p in pts])
            ax.plot([], [], color=color, label=f"{m} (Spearman {rho:+.2f})")
        if chance is not None:
            ax.axhline(chance, color="0.5", ls="--", lw=0.8, label=f"chance level ({chance:.3f})")
        if log:
            ax.set_yscale("log")
        ax.set_xticks([0, 0.5, 1, 2, 3])
        ax.set_xlabel("number of principles followed (Table 2)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    handles = [
        Line2D([], [], ls="", marker=_MARKERS[m], color="0.5", markeredgecolor="k", label=m) for m in FIGURE_METHODS
    ]
    if any(r["method"] == EG_VARIANT for r in rows):
        handles.append(
            Line2D(
                [],
                [],
                ls="",
                marker="*",
                markerfacecolor="none",
                markeredgecolor="0.3",
                label=f"{EG_VARIANT} (not in the line or rho)",
            )
        )
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(path, dpi=120)
    return path


def run(cfg: ExperimentConfig, models: list[ModelSpec] | None = None) -> dict[str, Path]:
    models = models or MODELS
    threads = set_threads(cfg)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    pixel_range = tuple(cfg.pixel_range or DEFAULTS["pixel_range"])
    data = load_mnist(n=cfg.n_train, seed=cfg.seed, pixel_range=pixel_range)
    x, labels = draw_samples(data[1], cfg.samples, cfg.seed)
    span = pixel_range[1] - pixel_range[0]
    sizes = QUICK_SQUARE_SIZES if cfg.small else YEH_SQUARE_SIZES
    references = reference_set(data[0], cfg.seed)
    checks, table3, dl_layers, infid, fig2, accs, seconds = [], [], [], [], [], {}, {}
    warned: dict[str, list[str]] = {}
    for spec in progress([m for m in models if "figure3" not in m.roles], cfg.show_progress, desc="models"):
        t0 = time.perf_counter()
        model, acc = load_model(spec, cfg, data)
        accs[spec.label] = acc
        for p in model.parameters():
            p.requires_grad_(False)
        target = select_targets(model, x, labels, cfg.target)
        for m in cfg.methods:
            with collect_attribution_warnings(warned, f"{spec.label} {METHODS[m][0]}"):
                attr, delta = compute_attributions(model, m, x, target, cfg.baseline, cfg.ig_steps)
            checks.append(
                {
                    "model": spec.name,
                    "activation": spec.activation or "-",
                    "test_accuracy": round(acc, 4),
                    "method": m,
                    "samples": len(x),
                    "baseline": cfg.baseline,
                    "mean_abs_attr": float(attr.abs().mean()),
                    "max_abs_delta": "" if delta is None else float(delta.abs().max()),
                }
            )
        wanted = set()
        if "table3" in spec.roles:
            wanted |= set(TABLE3_METHODS)
        if "figure2" in spec.roles:
            wanted |= set(FIGURE_METHODS) | {EG_VARIANT}
        same = f"Occ-{OCC_P}x{OCC_P}"  # Occ-p is this map when both are wanted
        todo = [
            m
            for m in ("GI", "Occ-1", "Occ-2x2", "Occ-4x4", "Occ-p", "DL", "IG", "EG", EG_VARIANT)
            if m in wanted and not (m == "Occ-p" and same in wanted)
        ]
        with collect_attribution_warnings(warned, f"{spec.label} (Deng's methods)"):
            maps = method_maps(
                model, x, target, cfg.baseline, todo, cfg.ig_steps, cfg.seed, span, references=references
            )
            if "Occ-p" in wanted and "Occ-p" not in maps:
                maps["Occ-p"] = maps[same]
            if "table3" in spec.roles:
                rows, layer_rows = table3_rows(model, spec.label, x, target, cfg.baseline, cfg.ig_steps, maps)
                table3 += [{**r, "test_accuracy": round(acc, 4)} for r in rows]
                dl_layers += layer_rows
            if {"taylor_infidelity", "figure2"} & set(spec.roles):
                changes = output_changes(model, x, target, cfg.baseline, sizes)
                if "taylor_infidelity" in spec.roles:
                    taylor = taylor_maps(model, x, target, cfg.baseline)
                    infid += [
                        {**r, "test_accuracy": round(acc, 4)}
                        for r in infidelity_rows(spec.label, changes, taylor, len(x), sizes)
                    ]
                if "figure2" in spec.roles:
                    fig2 += [
                        {**r, "test_accuracy": round(acc, 4)}
                        for r in figure2_rows(spec.label, changes, maps, len(x), sizes)
                    ]
        seconds[spec.label] = time.perf_counter() - t0
    paths = {
        "checks": write_csv(out / "deng_checks.csv", checks),
        "table2": write_csv(out / "deng_table2.csv", table2_rows()),
    }
    if table3:
        paths["table3"] = write_csv(out / "deng_table3.csv", table3)
        paths["dl_layers"] = write_csv(out / "deng_dl_layers.csv", dl_layers)
    if infid:
        paths["infidelity"] = write_csv(out / "deng_infidelity.csv", infid)
    if fig2:
        paths["figure2_csv"] = write_csv(out / "deng_figure2.csv", fig2)
        fig = plot_principles(
            fig2,
            ["infidelity_scaled", "infidelity_unscaled"],
            ["infidelity, Yeh's optimal scaling (log)", "infidelity, unscaled (log)"],
            ["Figure 2: infidelity, scaled (Yeh's code)", "Figure 2: infidelity, unscaled"],
            out / "deng_figure2.png",
        )
        if fig is not None:
            paths["figure2"] = fig
    fig3 = []
    for spec in (m for m in models if "figure3" in m.roles):
        t0 = time.perf_counter()
        written, rows = figure3(spec, cfg, out, warned)
        paths.update(written)
        fig3 += rows
        accs[spec.label] = float(rows[0]["test_accuracy"])
        seconds[spec.label] = time.perf_counter() - t0
    if table3 or infid:
        fig = _plot_table3(table3, infid, out / "deng_figure.png")
        if fig is not None:
            paths["figure"] = fig
    paths["report"] = _report(
        out / "deng_report.md",
        cfg,
        threads,
        labels,
        accs,
        seconds,
        checks,
        table3,
        dl_layers,
        infid,
        fig2,
        fig3,
        warned,
    )
    return paths


def figure3(spec: ModelSpec, cfg: ExperimentConfig, out: Path, warned: dict) -> tuple:
    """Figure 3 (bounding-box accuracy on the localisation task): ``(paths, rows)``,
    from :mod:`captum_unified.experiments.localization`."""
    from captum_unified.experiments import localization

    return localization.run(spec, cfg, out, warned)


def _report(
    path: Path, cfg, threads, labels, accs, seconds, checks, table3, dl_layers, infid, fig2, fig3, warned
) -> Path:
    rec = recipe_for(cfg)
    pixel_range = tuple(cfg.pixel_range or DEFAULTS["pixel_range"])
    lines = [
        "# Deng et al. (2021): reproduction",
        "",
        f"Config: `{cfg.to_dict()}`; torch threads: {threads}.",
        "",
        samples_line(labels, cfg.seed, cfg.target),
        "",
        f"Pixels in [{pixel_range[0]:g}, {pixel_range[1]:g}]; baseline {cfg.baseline:g} for every method and "
        "removed square (Gradient*Input: 0 by definition). Training: " + rec.describe() + ".",
        "",
        "Test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accs.items()) + ". Seconds per model "
        "(train/load + attribute + evaluate): " + ", ".join(f"{k} {v:.0f}" for k, v in seconds.items()) + ".",
        "",
    ]
    if table3:
        mods = list(dict.fromkeys(r["model"] for r in table3))
        lines += [
            "## Table 3: average percentage change d (%), ours / paper",
            "",
            "| method | " + " | ".join(mods) + " |",
            "|---|" + "---|" * len(mods),
        ]
        for me in TABLE3_METHODS:
            cells = []
            for m in mods:
                r = next(r for r in table3 if r["model"] == m and r["method"] == me)
                cells.append(f"{_fmt(r['d_percent'])} / {r['paper_d_percent']:g}")
            lines.append(f"| {me} | " + " | ".join(cells) + " |")
        for key, label in (
            ("approx_error", "eps_bar = mean abs(eps)/abs(Delta f)"),
            ("approx_error_median", "median abs(eps)/abs(Delta f)"),
        ):
            cells = []
            for m in mods:
                r = next(r for r in table3 if r["model"] == m)
                paper = f" / {r['paper_approx_error']:g}" if key == "approx_error" else ""
                cells.append(f"{float(r[key]):.3g}{paper}")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "DL: d of each layer a nonlinearity follows (DeepLIFT's layer attributions, "
            "`LayerDeepLiftRescale`, against the layer's Theorem-4 reformulation with DeepLIFT's own "
            "relevance arriving from above), averaged over the layers. Per layer and with the "
            "alternative reading (every layer above reformulated too):",
            "",
            "| model | layer | d (%), layer's step only | d (%), all layers above reformulated |",
            "|---|---|---|---|",
        ]
        by = {(r["model"], r["layer"], r["upstream"]): r["d_percent"] for r in dl_layers}
        for m, layer, up in by:
            if up == "deeplift":
                lines.append(
                    f"| {m} | {layer} | {_fmt(by[(m, layer, 'deeplift')])} | {_fmt(by.get((m, layer, 'taylor')))} |"
                )
        lines += [""] + findings.deng_table3_sentences(table3, dl_layers) + [""]
    if infid:
        lines += [
            "## Infidelity of first- vs second-order Taylor attribution",
            "",
            "| model | order | infidelity, scaled | infidelity, unscaled | paper |",
            "|---|---|---|---|---|",
        ]
        for r in infid:
            lines.append(
                f"| {r['model']} | {r['order']} | {_fmt(r['infidelity_scaled'])} | "
                f"{_fmt(r['infidelity_unscaled'])} | {r['paper_infidelity']:g} |"
            )
        sizes = QUICK_SQUARE_SIZES if cfg.small else YEH_SQUARE_SIZES
        lines += ["", infidelity_protocol(cfg.baseline, infid[0]["squares_per_sample"], sizes), ""]
        lines += findings.deng_infidelity_sentences(infid) + [""]
    lines += ["## Table 2: principles followed", "", "| method | 1st | 2nd | 3rd | count |", "|---|---|---|---|---|"]
    for r in table2_rows():
        lines.append(
            f"| {r['method']} | {r['low_approximation_error']:g} | {r['correct_assignment']:g} | "
            f"{r['unbiased_baseline']:g} | {r['principles']:g} |"
        )
    lines += ["", "Occlusion-1 and Occlusion-p follow the second principle partially (counted 1/2).", ""]
    if fig2:
        mods = list(dict.fromkeys(r["model"] for r in fig2))
        lines += [
            "## Figure 2: infidelity vs number of principles",
            "",
            "![Figure 2](deng_figure2.png)",
            "",
            "| method | principles | " + " | ".join(f"{m} scaled | {m} unscaled" for m in mods) + " |",
            "|---|---|" + "---|---|" * len(mods),
        ]
        for me in FIGURE_METHODS + [EG_VARIANT]:
            if not any(r["method"] == me for r in fig2):
                continue
            cells = []
            for m in mods:
                r = next(r for r in fig2 if r["model"] == m and r["method"] == me)
                cells.append(f"{_fmt(r['infidelity_scaled'])} | {_fmt(r['infidelity_unscaled'])}")
            lines.append(f"| {me} | {sum(PRINCIPLES[me]):g} | " + " | ".join(cells) + " |")
        lines += [
            "",
            f"Occ-p: {OCC_P}x{OCC_P} patches. EG: {EG_SAMPLES} Gaussian baselines per sample around "
            f"the input, sigma = {EG_STDEV:g} of the pixel range (Deng: x_bar ~ N(x, sigma^2), sigma not "
            f"given). {EG_VARIANT}: {EG_SAMPLES} baselines per sample drawn from {EG_REFERENCES} training "
            "digits (Erion et al.'s choice; not part of the line or of rho). IG: "
            f"{cfg.ig_steps} steps. Squares as above.",
            "",
        ]
        lines += findings.deng_figure2_sentences(fig2) + [""]
    if fig3:
        from captum_unified.experiments.localization import report_lines

        lines += report_lines(fig3) + [""]
    lines += [
        "## Pipeline checks",
        "",
        "| model | activation | test acc | method | max abs delta | mean abs attr |",
        "|---|---|---|---|---|---|",
    ]
    for r in checks:
        d = r["max_abs_delta"]
        lines.append(
            f"| {r['model']} | {r['activation']} | {r['test_accuracy']:.3f} | "
            f"{METHODS[r['method']][0]} | {'n/a' if d == '' else f'{d:.3g}'} | "
            f"{r['mean_abs_attr']:.3g} |"
        )
    lines += warnings_section(warned)
    path.write_text("\n".join(lines) + "\n")
    return path


def infidelity_protocol(baseline: float, squares: int, sizes: Sequence[int] = YEH_SQUARE_SIZES) -> str:
    """The sentence documenting the infidelity perturbation."""
    sides = (
        f"{sizes[0]}-{sizes[-1]}"
        if tuple(sizes) == tuple(range(sizes[0], sizes[-1] + 1))
        else ", ".join(str(v) for v in sizes) + " (--quick; Yeh: 1-10)"
    )
    return (
        f"Infidelity (Yeh et al. 2019) as in their reference code ({YEH_SOURCE}): every square of side "
        f"{sides} at every position ({squares} squares per sample), set "
        f"to the baseline ({baseline:g}); the perturbation is the square's indicator, so I^T a is the sum of "
        "the attributions in the square; all squares weigh 1; mean over squares of (Delta f - beta I^T a)^2, "
        "then mean over samples. 'Scaled': beta is Yeh's optimal scale per sample (their code always applies "
        "it; Captum's normalize=True); 'unscaled': beta = 1 (their paper's definition). Deng et al. name the "
        "metric and 'the square removal perturbation' but give neither the squares nor whether the "
        "attributions were scaled, so which variant their numbers use is not determined by the paper."
    )
