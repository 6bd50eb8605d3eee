"""Why Expected Gradients has the worst infidelity in our Deng et al. Figure 2.

Deng et al. count three principles for Expected Gradients (EG), the most of
Figure 2's six methods, and find infidelity falling with that count; ours is
highest for EG on every model. This script varies what EG's definition leaves
open and measures the infidelity (Yeh et al.'s squares, scaled and unscaled, as
``reproduce deng``) and what the attributions sum to (a share of the output
change from the input to the removal baseline, black), on the pipeline's
default models (M-sg, C-sg) and explained digits (predicted class):

* the pipeline's EG: 50 baselines per digit from ``N(x, 0.1^2)`` around the
  input (Deng: "a common choice ... x_bar ~ N(x, sigma^2)"), one random point
  on each path (Erion et al.);
* its sample count (500 baselines), its path integral (16 Gauss-Legendre
  points per baseline), its sigma (0.3, 1.0);
* where the baselines are: ``N(0, 0.1^2)`` around the black image that
  infidelity removes squares to; training digits (Erion et al.; ``EG (data)``);
* references: IG from the black image, and a map of zeros (what "explaining
  nothing" scores).

For each EG variant also Spearman's rho (exact permutation p) of Figure 2's
trend with that variant in EG's place. Usage (minutes on one thread; models
from ``--cache-dir``, trained there if missing)::

    python scripts/ablation_deng_eg.py --out docs/_static/results/ablation --cache-dir .cache/ablation

writes ``eg_infidelity.csv``, ``eg_infidelity_summary.csv``, ``eg_infidelity.md``
and ``eg_infidelity_findings.rst`` (sentences of
:func:`captum_unified.experiments.findings.deng_eg_sentences`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import captum_unified as cu
from captum_unified.data import load_mnist, stratified_sample
from captum_unified.experiments import deng, findings
from captum_unified.experiments.common import read_csv, select_targets, write_csv
from captum_unified.experiments.deng.tables import sum_share
from captum_unified.experiments.yeh_infidelity import (
    YEH_SQUARE_SIZES,
    infidelity_from_sums,
    output_changes,
    square_sums,
)
from captum_unified.models import RECIPES, load_or_train

MODELS = {"M-sg": ("deng_mlp", "sigmoid", 50), "C-sg": ("deng_cnn", "sigmoid", 50)}
#: (variant, what changes) -> keyword arguments of ExpectedGradients.attribute;
#: "refs" marks a reference set drawn by the script.
VARIANTS = [
    ("EG: N(x, 0.1^2), 50 baselines (the pipeline's)", dict(baseline_stdevs=0.1, n_samples=50)),
    ("EG: N(x, 0.1^2), 500 baselines", dict(baseline_stdevs=0.1, n_samples=500)),
    ("EG: N(x, 0.1^2), 50 baselines x 16 path points", dict(baseline_stdevs=0.1, n_samples=50, n_steps=16)),
    ("EG: N(x, 0.3^2), 50 baselines", dict(baseline_stdevs=0.3, n_samples=50)),
    ("EG: N(x, 1^2), 50 baselines", dict(baseline_stdevs=1.0, n_samples=50)),
    ("EG: N(0, 0.1^2) around the removal baseline, 50 baselines", dict(refs="noise", n_samples=50)),
    ("EG: training digits, 50 baselines (EG (data))", dict(refs="data", n_samples=50)),
]
OTHERS = ("GI", "Occ-1", "Occ-p", "DL", "IG")


def eg_map(model, x, target, kw, refs, seed):
    kw = dict(kw)
    kind = kw.pop("refs", None)
    if kind is not None:
        kw["baselines"] = refs[kind]
    out = []
    for i in range(0, len(x), 25):
        out.append(
            cu.ExpectedGradients(model)
            .attribute(x[i : i + 25], target=target[i : i + 25], seed=seed + i, internal_batch_size=2000, **kw)
            .detach()
        )
    return torch.cat(out)


def run_model(short, args, data):
    name, act, n = MODELS[short]
    model, acc = load_or_train(
        name, act, cache_dir=args.cache_dir, seed=args.seed, data=data, recipe=RECIPES["adadelta-es"]
    )
    for p in model.parameters():
        p.requires_grad_(False)
    xte, yte = data[1]
    idx = torch.as_tensor(stratified_sample(yte, n, args.seed))
    x, labels = xte[idx], yte[idx]
    target = select_targets(model, x, labels, "predicted")
    t0 = time.perf_counter()
    changes = output_changes(model, x, target, 0.0, YEH_SQUARE_SIZES)
    with torch.no_grad():
        i = torch.arange(len(x))
        df = model(x)[i, target] - model(torch.zeros_like(x))[i, target]
    g = torch.Generator().manual_seed(args.seed)
    refs = {
        "noise": 0.1 * torch.randn((200, *x.shape[1:]), generator=g),
        "data": deng.reference_set(data[0], args.seed),
    }
    maps = deng.method_maps(model, x, target, 0.0, list(OTHERS), args.ig_steps, args.seed)
    maps["zero map"] = torch.zeros_like(x)
    for variant, kw in VARIANTS:
        maps[variant] = eg_map(model, x, target, kw, refs, args.seed)
    base = {m: _scores(changes, maps[m], df) for m in OTHERS}
    rows = []
    for m, a in maps.items():
        sc = base[m] if m in base else _scores(changes, a, df)
        row = {
            "model": short,
            "test_accuracy": round(acc, 4),
            "samples": len(x),
            "map": m,
            "principles": sum(deng.PRINCIPLES[m]) if m in deng.PRINCIPLES else "",
            **sc,
        }
        if m.startswith("EG"):
            for kind in ("scaled", "unscaled"):
                xs = [sum(deng.PRINCIPLES[o]) for o in OTHERS] + [3]
                ys = [base[o][f"infidelity_{kind}"] for o in OTHERS] + [sc[f"infidelity_{kind}"]]
                rho, p = findings.spearman_test(xs, ys)
                row[f"rho_{kind}"], row[f"p_{kind}"] = rho, p
        rows.append(row)
    print(f"{short}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def _scores(changes, attr, df):
    sums = square_sums(attr, YEH_SQUARE_SIZES)
    out = {}
    for kind, scaled in (("scaled", True), ("unscaled", False)):
        per = infidelity_from_sums(changes, sums, scaled)
        out[f"infidelity_{kind}"] = float(per.mean())
        out[f"sem_{kind}"] = float(per.std() / len(per) ** 0.5)
    out["sum_share"] = sum_share(attr, df) if attr.abs().sum() > 0 else 0.0
    return out


def summary_rows(rows: list[dict]) -> list[dict]:
    """One row per map, per model: infidelity (scaled, unscaled) ± standard error,
    the sum share and Figure 2's rho (p) with the map as EG: the docs' table."""
    out = []
    for r in rows:
        row = {"model": r["model"], "map": r["map"]}
        for k in ("scaled", "unscaled"):
            row[f"infidelity, {k}"] = f"{findings._g(r[f'infidelity_{k}'])} ± {findings._g(r[f'sem_{k}'], '.2g')}"
        row["sum share"] = findings._g(r["sum_share"], ".3f")
        for k in ("scaled", "unscaled"):
            has = str(r.get(f"rho_{k}", "")) != ""
            row[f"rho, {k} (p)"] = (
                f"{findings._g(r[f'rho_{k}'], '+.2f')} ({findings._g(r[f'p_{k}'], '.2g')})" if has else ""
            )
        out.append(row)
    return out


def write_report(out: Path, rows: list[dict], note: str) -> None:
    sentences = findings.deng_eg_sentences(rows)
    lines = [
        "# Expected Gradients in Figure 2 (Deng et al. 2021): baselines, samples, integration",
        "",
        note,
        "",
        "| model | map | infidelity, scaled | infidelity, unscaled | sum share | rho scaled (p) | rho unscaled (p) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        rho = [
            f"{findings._g(r.get(f'rho_{k}'), '+.2f')} ({findings._g(r.get(f'p_{k}'), '.2g')})"
            if str(r.get(f"rho_{k}", "")) != ""
            else ""
            for k in ("scaled", "unscaled")
        ]
        inf = [
            f"{findings._g(r[f'infidelity_{k}'])} ± {findings._g(r[f'sem_{k}'], '.2g')}" for k in ("scaled", "unscaled")
        ]
        lines.append(
            f"| {r['model']} | {r['map']} | {inf[0]} | {inf[1]} | {findings._g(r['sum_share'], '.3f')} | "
            f"{rho[0]} | {rho[1]} |"
        )
    lines += ["", *sentences, ""]
    (out / "eg_infidelity.md").write_text("\n".join(lines) + "\n")
    write_csv(out / "eg_infidelity_summary.csv", summary_rows(rows))
    (out / "eg_infidelity_findings.rst").write_text(findings.to_rst(sentences))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/ablation")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true", help="rewrite the report from OUT/eg_infidelity.csv")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    note = (
        "Pipeline defaults: pixels in [0, 1], squares removed to 0 (black), Adadelta with early stopping, "
        "the predicted class; 50 class-stratified test digits per model; mean over the digits ± its "
        f"standard error. IG {args.ig_steps} steps; seed {args.seed}; {args.threads} torch thread(s). Sum share: "
        "mean over digits of the sum of the attributions / mean of f(x) - f(black). rho: Spearman's rank "
        "correlation of Figure 2 (principles vs infidelity, GI, Occ-1, Occ-p, DL, IG and this map as EG), "
        "two-sided exact permutation p."
    )
    if args.report_only:
        write_report(out, read_csv(out / "eg_infidelity.csv"), note)
        return 0
    data = load_mnist(seed=args.seed, pixel_range=(0.0, 1.0))
    rows: list[dict] = []
    for short in MODELS:
        rows += run_model(short, args, data)
        write_csv(out / "eg_infidelity.csv", rows)
    write_report(out, rows, note)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
