"""Deng et al. (AAAI 2021) pipeline on MNIST: the Poly model, the 3-layer
sigmoid MLP and CNN and the softplus CNN.

:func:`run` trains/caches the models and writes under ``out``:

* ``deng_table3.csv`` — Deng's Table 3: the average percentage change
  ``d = mean ||a_o - a_r||^2 / ||a_o||^2 * 100%`` between each original method
  (the library's classes: GI, Occlusion-1, Occlusion-2x2, Occlusion-4x4,
  DeepLIFT Rescale, Integrated Gradients) and its second-order Taylor
  reformulation (:mod:`captum_unified.taylor`), on Poly, M-sg and C-sg, with
  the paper's figures and the normalised second-order approximation error
  ``mean |eps| / |Delta f|`` of each model (Deng: 0, 0.084, 0.420).
* ``deng_infidelity.csv`` — infidelity (Yeh et al. 2019, square removal,
  :func:`captum_unified.metrics.infidelity.infidelity`) of first- vs
  second-order :class:`~captum_unified.taylor.TaylorAttribution` on C-sg and
  C-sp, with the paper's figures.
* ``deng_checks.csv`` — completeness deltas of the attribution methods.
* ``deng_report.md`` and ``deng_figure.png`` (bar charts).

Baselines: Gradient*Input is baseline 0 by definition (Theorem 1); every other
method, its reformulation and the infidelity perturbations use
``cfg.baseline`` (-1, the black background of our [-1, 1] pixels, which is
Deng's 0 of [0, 1] pixels).

The Poly model is not an ``nn.Sequential``; for DeepLIFT it is rewritten as an
equivalent one (one Linear, an element-wise "square the quadratic units"
activation, a fixed summing Linear) so that both DeepLIFT (Rescale) and its
layer-wise Taylor reformulation (Theorem 4) apply. The square is registered
as a backend nonlinearity (``torch.square``) for that.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.data import load_mnist
from captum_unified.experiments.common import (
    METHODS, ExperimentConfig, collect_attribution_warnings, compute_attributions, progress,
    warnings_section, write_csv,
)
from captum_unified.models import PolyModel, load_or_train
from captum_unified.taylor import (
    TaylorAttribution,
    deeplift_reformulation,
    gradient_x_input_reformulation,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
)

__all__ = ["DEFAULTS", "QUICK_DEFAULTS", "MODELS", "TABLE3_MODELS", "INFIDELITY_MODELS", "PAPER_TABLE3", "PAPER_INFIDELITY",
           "PAPER_APPROX_ERROR", "poly_as_sequential", "table3_rows", "infidelity_rows", "run"]

MODELS = [("deng_poly", None), ("deng_mlp", "sigmoid"), ("deng_cnn", "sigmoid"),
          ("deng_cnn_softplus", "softplus")]
TABLE3_MODELS = MODELS[:3]
INFIDELITY_MODELS = MODELS[2:]
SHORT = {"deng_poly": "Poly", "deng_mlp": "M-sg", "deng_cnn": "C-sg", "deng_cnn_softplus": "C-sp"}
TABLE3_METHODS = ["GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG"]

#: Sizes of ``reproduce deng`` when ``--samples``/``--subsets``/``--epochs`` are not given
#: (``subsets``: square-removal perturbations per sample for infidelity).
DEFAULTS = dict(samples=100, subsets=100, ig_steps=50, baseline=-1.0)
#: ``--quick``: small, but trained enough for the paper's qualitative facts to show.
QUICK_DEFAULTS = dict(samples=8, subsets=32, ig_steps=32, epochs=10, n_train=600, baseline=-1.0)

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
        return torch.cat([torch.square(z[:, : self.n]), z[:, self.n:]], dim=1)


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
            w[k, k * r:(k + 1) * r] = 1.0
            w[k, nq + k] = 1.0
        last.weight.copy_(w)
    seq = nn.Sequential(nn.Flatten(), first, _SquareFirst(nq), last).eval()
    for p in seq.parameters():
        p.requires_grad_(False)
    return seq


def _patch_mask(x: Tensor, p: int) -> Tensor:
    from captum_unified.attr._core.occlusion_patch import patch_groups

    (mask,), _ = patch_groups((x,), ((1, p, p),))
    return mask


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(i + size, n))


def table3_rows(model: nn.Module, short: str, x: Tensor, target: Tensor, baseline: float,
                ig_steps: int, batch: int = 25) -> List[dict]:
    """Percentage change ``d`` (in %) of the six methods of Deng's Table 3 on one model."""
    seq = poly_as_sequential(model) if isinstance(model, PolyModel) else model
    dl_ok = isinstance(seq, nn.Sequential)
    pairs: Dict[str, List[Tensor]] = {m: [[], []] for m in TABLE3_METHODS}
    eps_ratio = []
    for sl in _batches(len(x), batch):
        xb, tb = x[sl], target[sl]
        b = torch.full_like(xb, baseline)
        out = {
            "GI": (cu.GradientXInput(model).attribute(xb, target=tb),
                   gradient_x_input_reformulation(model, xb, target=tb)),
            "Occ-1": (cu.Occlusion1(model).attribute(xb, baselines=baseline, target=tb),
                      occlusion1_reformulation(model, xb, baselines=b, target=tb)),
            "IG": (cu.IntegratedGradients(model).attribute(xb, baselines=b, target=tb, n_steps=ig_steps),
                   integrated_gradients_reformulation(model, xb, baselines=b, target=tb)),
        }
        for p in (2, 4):
            out[f"Occ-{p}x{p}"] = (
                cu.OcclusionPatch(model).attribute(xb, patch_shapes=(1, p, p), baselines=baseline, target=tb),
                occlusion_patch_reformulation(model, xb, _patch_mask(xb, p), baselines=b, target=tb))
        if dl_ok:
            out["DL"] = (cu.DeepLiftRescale(seq).attribute(xb, baselines=b, target=tb),
                         deeplift_reformulation(seq, xb, baselines=b, target=tb, remainder="second"))
        for m, (ao, ar) in out.items():
            pairs[m][0].append(ao.detach())
            pairs[m][1].append(ar.detach())
        _, delta = TaylorAttribution(model, order=2).attribute(xb, b, tb, return_convergence_delta=True)
        with torch.no_grad():
            idx = torch.arange(len(xb))
            df = model(xb)[idx, tb] - model(b)[idx, tb]
        eps_ratio.append((delta.abs() / df.abs().clamp_min(1e-12)).detach())
    eps = float(torch.cat(eps_ratio).mean())
    rows = []
    for m in TABLE3_METHODS:
        if not pairs[m][0]:
            rows.append({"model": short, "method": m, "d_percent": "", "paper_d_percent": PAPER_TABLE3[short][m],
                         "approx_error": eps, "paper_approx_error": PAPER_APPROX_ERROR[short],
                         "samples": len(x), "note": "n/a: model is not an nn.Sequential"})
            continue
        d = percentage_change(torch.cat(pairs[m][0]), torch.cat(pairs[m][1]))
        rows.append({"model": short, "method": m, "d_percent": d, "paper_d_percent": PAPER_TABLE3[short][m],
                     "approx_error": eps, "paper_approx_error": PAPER_APPROX_ERROR[short],
                     "samples": len(x), "note": "input-layer attributions" if m == "DL" else ""})
    return rows


def infidelity_rows(model: nn.Module, short: str, x: Tensor, target: Tensor, baseline: float,
                    n_perturb: int, seed: int, patch_size: int = 4) -> List[dict]:
    """Mean infidelity of first- and second-order Taylor attribution (square removal)."""
    try:
        from captum_unified.metrics.infidelity import infidelity
    except ImportError:
        return [{"model": short, "order": o, "infidelity": "", "paper_infidelity": PAPER_INFIDELITY[short][o],
                 "infidelity_normalized": "", "samples": len(x),
                 "note": "n/a: captum_unified.metrics.infidelity not available"}
                for o in (1, 2)]
    rows = []
    b = torch.full_like(x, baseline)
    for order in (1, 2):
        attr = TaylorAttribution(model, order=order).attribute(x, b, target).detach()
        kw = dict(patch_size=patch_size, n_perturb_samples=n_perturb, baselines=baseline,
                  target=target, seed=seed)
        inf = torch.as_tensor(infidelity(model, x, attr, **kw), dtype=torch.float64)
        inf_n = torch.as_tensor(infidelity(model, x, attr, normalize=True, **kw), dtype=torch.float64)
        rows.append({"model": short, "order": order, "infidelity": float(inf.mean()),
                     "infidelity_normalized": float(inf_n.mean()),
                     "paper_infidelity": PAPER_INFIDELITY[short][order], "samples": len(x),
                     "patch_size": patch_size, "n_perturb_samples": n_perturb, "note": ""})
    return rows


def _fmt(v, spec: str = ".3g") -> str:
    return "n/a" if v == "" or v is None else format(float(v), spec)


def _plot(table3: List[dict], infid: List[dict], path: Path) -> Optional[Path]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover
        return None
    import numpy as np

    FLOOR = 1e-13  # d of exact reformulations is ~1e-9 .. 1e-13 (float rounding)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    models = [m for m in ("Poly", "M-sg", "C-sg") if any(r["model"] == m for r in table3)]
    xs = np.arange(len(TABLE3_METHODS))
    w = 0.8 / max(len(models), 1)
    colors = {"Poly": "tab:blue", "M-sg": "tab:orange", "C-sg": "tab:green"}
    for k, m in enumerate(models):
        ours = [next((r["d_percent"] for r in table3 if r["model"] == m and r["method"] == me), "")
                for me in TABLE3_METHODS]
        ours = [np.nan if v == "" else max(float(v), FLOOR) for v in ours]
        paper = [max(PAPER_TABLE3[m][me], FLOOR) for me in TABLE3_METHODS]
        pos = xs - 0.4 + w * (k + 0.5)
        ax1.bar(pos, ours, w, color=colors[m], label=f"{m} (ours)")
        ax1.scatter(pos, paper, marker="_", s=200, color="k", zorder=3,
                    label="Deng et al. (paper)" if k == 0 else None)
    ax1.set_yscale("log")
    ax1.set_ylim(FLOOR / 3, 300)
    ax1.set_xticks(xs)
    ax1.set_xticklabels(TABLE3_METHODS)
    ax1.set_ylabel(f"d (%), log scale; 0 drawn at {FLOOR:g}")
    ax1.set_title("Table 3: original vs second-order Taylor reformulation")
    ax1.legend(fontsize=8)
    # infidelity scales differ (model outputs, square sizes): compare the ratio 2nd / 1st order
    groups = [m for m in ("C-sg", "C-sp") if any(r["model"] == m for r in infid)]
    for k, m in enumerate(groups):
        rs = {r["order"]: r for r in infid if r["model"] == m}
        ok = all(rs[o]["infidelity_normalized"] not in ("", None) for o in (1, 2))
        ratio = rs[2]["infidelity_normalized"] / rs[1]["infidelity_normalized"] if ok else np.nan
        ax2.bar(k, ratio, 0.5, color="0.6", label="ours" if k == 0 else None)
        ax2.scatter(k, PAPER_INFIDELITY[m][2] / PAPER_INFIDELITY[m][1], marker="_", s=400, color="k",
                    zorder=3, label="Deng et al. (paper)" if k == 0 else None)
    ax2.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax2.set_xticks(range(len(groups)))
    ax2.set_xticklabels(groups)
    ax2.set_ylabel("ratio (< 1: second order is better)")
    ax2.set_title("Infidelity, 2nd / 1st order Taylor")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(cfg: ExperimentConfig, models: Optional[List[tuple]] = None) -> Dict[str, Path]:
    models = models or MODELS
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed)
    x = data[1][0][: cfg.samples]
    checks, table3, infid, accs, warned = [], [], [], {}, {}
    for name, act in progress(models, cfg.show_progress, desc="models"):
        model, acc = load_or_train(name, act, cache_dir=cfg.cache_dir, epochs=cfg.epochs,
                                   batch_size=cfg.batch_size, seed=cfg.seed, n_train=cfg.n_train, data=data,
                                   show_progress=cfg.show_progress)
        accs[SHORT[name]] = acc
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            target = model(x).argmax(1)
        for m in cfg.methods:
            with collect_attribution_warnings(warned, f"{SHORT[name]} {METHODS[m][0]}"):
                attr, delta = compute_attributions(model, m, x, target, 0.0, cfg.ig_steps)
            checks.append({"model": name, "activation": act or "-", "test_accuracy": round(acc, 4),
                           "method": m, "samples": len(x),
                           "mean_abs_attr": float(attr.abs().mean()),
                           "max_abs_delta": "" if delta is None else float(delta.abs().max())})
        if (name, act) in TABLE3_MODELS:
            for r in table3_rows(model, SHORT[name], x, target, cfg.baseline, cfg.ig_steps):
                table3.append({**r, "test_accuracy": round(acc, 4)})
        if (name, act) in INFIDELITY_MODELS:
            for r in infidelity_rows(model, SHORT[name], x, target, cfg.baseline, cfg.subsets, cfg.seed):
                infid.append({**r, "test_accuracy": round(acc, 4)})
    paths = {"checks": write_csv(out / "deng_checks.csv", checks)}
    if table3:
        paths["table3"] = write_csv(out / "deng_table3.csv", table3)
    if infid:
        paths["infidelity"] = write_csv(out / "deng_infidelity.csv", infid)
    fig = _plot(table3, infid, out / "deng_figure.png") if (table3 or infid) else None
    if fig is not None:
        paths["figure"] = fig
    lines = ["# Deng et al. (2021): reproduction", "", f"Config: `{cfg.to_dict()}`", "",
             "Test accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in accs.items()), ""]
    if table3:
        mods = [m for m in ("Poly", "M-sg", "C-sg") if any(r["model"] == m for r in table3)]
        lines += ["## Table 3: average percentage change d (%), ours / paper", "",
                  "| method | " + " | ".join(mods) + " |", "|---|" + "---|" * len(mods)]
        for me in TABLE3_METHODS:
            cells = []
            for m in mods:
                r = next(r for r in table3 if r["model"] == m and r["method"] == me)
                cells.append(f"{_fmt(r['d_percent'])} / {r['paper_d_percent']:g}")
            lines.append(f"| {me} | " + " | ".join(cells) + " |")
        cells = []
        for m in mods:
            r = next(r for r in table3 if r["model"] == m)
            cells.append(f"{r['approx_error']:.3g} / {r['paper_approx_error']:g}")
        lines += ["| approx. error mean abs(eps)/abs(Delta f) | " + " | ".join(cells) + " |", "",
                  "GI uses baseline 0 (Theorem 1); the other methods use baseline "
                  f"{cfg.baseline:g}. DL compares input-layer attributions (Deng averages over layers).", ""]
    if infid:
        lines += ["## Infidelity of Taylor attribution (square removal)", "",
                  "| model | first order | second order | ratio 2nd / 1st | paper: first / second (ratio) "
                  "| unscaled first / second |", "|---|---|---|---|---|---|"]
        for m in ("C-sg", "C-sp"):
            rs = {r["order"]: r for r in infid if r["model"] == m}
            if rs:
                a, b = rs[1]["infidelity_normalized"], rs[2]["infidelity_normalized"]
                ratio = "n/a" if "" in (a, b) else f"{b / a:.2f}"
                pa, pb = rs[1]["paper_infidelity"], rs[2]["paper_infidelity"]
                lines.append(f"| {m} | {_fmt(a)} | {_fmt(b)} | {ratio} | {pa:g} / {pb:g} ({pb / pa:.2f}) | "
                             f"{_fmt(rs[1]['infidelity'])} / {_fmt(rs[2]['infidelity'])} |")
        lines += ["", "Infidelity (Yeh et al. 2019): mean over samples of E[(beta I^T a - (S(x) - S(x - I)))^2] "
                  f"with random 4x4 squares set to the baseline ({cfg.baseline:g}), {cfg.subsets} squares per "
                  "sample, target logit; beta is the optimal scale of the attributions, as in Yeh et al.'s "
                  "reference code (Captum's `normalize=True`). The unscaled values (beta = 1) are in the last "
                  "column. The absolute scale depends on the model outputs and the square sizes (Yeh's code "
                  "uses every square of side 1-10), so compare the ratio with the paper's.", ""]
    lines += ["## Pipeline checks (baseline 0)", "",
              "| model | activation | test acc | method | max abs delta | mean abs attr |",
              "|---|---|---|---|---|---|"]
    for r in checks:
        d = r["max_abs_delta"]
        lines.append(f"| {r['model']} | {r['activation']} | {r['test_accuracy']:.3f} | "
                     f"{METHODS[r['method']][0]} | {'n/a' if d == '' else f'{d:.3g}'} | "
                     f"{r['mean_abs_attr']:.3g} |")
    lines += warnings_section(warned)
    (out / "deng_report.md").write_text("\n".join(lines) + "\n")
    paths["report"] = out / "deng_report.md"
    return paths
