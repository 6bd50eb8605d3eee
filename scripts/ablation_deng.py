"""Ablation of the gaps between our Deng et al. Table 3 and the paper's.

Each candidate cause of a gap is varied alone from the reference setting, the
pipeline's default (``reproduce deng``: pixels in [0, 1], baseline 0 = black,
Adadelta with early stopping, the default architectures, 4,000 training digits,
class-stratified test digits, the predicted class as target), and ``d`` of
Occlusion-1, Occlusion-2x2, DeepLIFT and IG plus ``eps_bar`` (the normalised
second-order approximation error) are measured on M-sg (50 digits) and C-sg (25
digits), each with the standard error of its mean over the samples.

The causes (read from the paper's setup, line by line; what the paper does not
state is varied):

* the input scale, through training: inputs normalised by the training digits'
  mean and std (PyTorch's usual ``Normalize``), occluded to 0 = the mean pixel,
  so that every background pixel changes; raw pixel values in [0, 255], and
  in [0, 4] and [0, 16] (the paper states no scale);
* the occlusion / baseline value with the same weights: the mean pixel in
  [0, 1]; black in normalised coordinates;
* the target (Deng attributes "to the predicted label"; the true class);
* the sample: all 1,000 test digits (the paper averages over "3k validation"
  digits; M-sg only: Occlusion-1's reformulation needs C-sg's Hessian diagonal,
  784 Hessian-vector products per digit, too slow on a shared CPU; C-sg's
  settings explain 25 digits, and the standard errors say how far that is from
  the mean);
* the architecture ("a three-layer MLP / CNN with sigmoid activation", nothing
  more): a further hidden layer; max pooling in C-sg instead of average pooling;
* training: weight decay 1e-3, 3e-3 and 1e-2; Adam for 5 epochs (the earlier pipeline's);
* which layers DeepLIFT's ``d`` averages over: the output layer counted too;
  every layer above reformulated too (computed from the reference run).

A model whose test accuracy is below
:data:`captum_unified.experiments.findings.TRAINED_ACCURACY` is flagged
(``trained`` = False) and left out of every conclusion.

Usage (about an hour on one thread of an unloaded machine; models cached in
``--cache-dir``)::

    python scripts/ablation_deng.py --out docs/_static/results/ablation --cache-dir .cache/ablation

writes ``ablation.csv`` (one row per setting, model and metric; after every
setting, so a partial run keeps what it has), ``ablation_summary.csv``,
``ablation.md`` (a table and the sentences of
:func:`captum_unified.experiments.findings.ablation_sentences`) and
``ablation_findings.rst`` for the docs. ``--only NAME ...`` runs some
settings; ``--report-only`` rewrites the report from ``ablation.csv``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import time
from pathlib import Path

import torch
from torch import nn

from captum_unified.data import load_mnist, stratified_sample, stratified_split
from captum_unified.experiments import deng, findings
from captum_unified.experiments.common import read_csv, select_targets, write_csv
from captum_unified.models import RECIPES, TrainingRecipe, evaluate, load_or_train, train

#: The reference: the pipeline's default (experiments.deng.protocol.DEFAULTS), 50 digits.
REFERENCE = dict(
    scale="[0, 1]",
    baseline="black",
    recipe=RECIPES["adadelta-es"],
    arch="default",
    samples={"M-sg": 50, "C-sg": 25},
    target="predicted",
)

#: (setting, cause, changes from REFERENCE); cheap settings first.
SETTINGS = [
    ("reference", "-", {}),
    ("target: the true class", "target", dict(target="true")),
    ("baseline: the mean pixel (0.13), same weights", "occlusion value", dict(baseline="mean")),
    ("all 1,000 test digits", "sample", dict(samples={"M-sg": 1000})),
    ("Adam, 5 epochs", "training recipe", dict(recipe=TrainingRecipe("adam", lr=1e-3, epochs=5, batch_size=128))),
    ("inputs normalised, baseline 0 (the mean pixel)", "input scale", dict(scale="normalised", baseline="zero")),
    ("inputs normalised, baseline black", "occlusion value", dict(scale="normalised", baseline="black")),
    ("pixels in [0, 255], baseline 0", "input scale", dict(scale="[0, 255]")),
    # between [0, 1] and [0, 255], where the paper's Occlusion-1 values lie (the paper states no scale)
    ("pixels in [0, 4], baseline 0", "input scale", dict(scale="[0, 4]")),
    ("pixels in [0, 16], baseline 0", "input scale", dict(scale="[0, 16]")),
    ("weight decay 1e-3", "training recipe", dict(recipe=RECIPES["adadelta-es"].replace(weight_decay=1e-3))),
    ("weight decay 3e-3", "training recipe", dict(recipe=RECIPES["adadelta-es"].replace(weight_decay=3e-3))),
    ("weight decay 1e-2", "training recipe", dict(recipe=RECIPES["adadelta-es"].replace(weight_decay=1e-2))),
    ("one more hidden layer", "architecture", dict(arch="deeper")),
    ("C-sg: max pooling", "architecture", dict(arch="maxpool", samples={"C-sg": 25})),
]
#: DeepLIFT's per-layer readings, from the reference run: (setting, layer row, upstream)
DL_READINGS = [
    ("DL: output layer counted too", findings.MEAN_LAYERS_OUTPUT, "deeplift"),
    ("DL: every layer above reformulated too", findings.MEAN_LAYERS, "taylor"),
]
MODELS = {"M-sg": ("deng_mlp", "sigmoid"), "C-sg": ("deng_cnn", "sigmoid")}
METHODS = ("Occ-1", "Occ-2x2", "DL", "IG")


def scaled(data, scale: str, stats: tuple[float, float]):
    """The [0, 1] digits in the coordinates of ``scale``; returns ``(data, to_model)``."""
    mean, std = stats
    if scale == "normalised":
        to_model = lambda t: (t - mean) / std  # noqa: E731
    else:  # "[0, K]": the [0, 1] digits times K
        top = float(scale.strip("[]").split(",")[1])
        to_model = lambda t: t * top  # noqa: E731
    (xtr, ytr), (xte, yte) = data
    return ((to_model(xtr), ytr), (to_model(xte), yte)), to_model


def custom_model(short: str, arch: str) -> nn.Sequential:
    """Variants beyond the zoo's: ``"deeper"``, one more sigmoid layer (M-sg
    784-256-128-64-10; C-sg a third 3x3 convolution), and ``"maxpool"``, C-sg
    with max pooling in place of average pooling."""
    if short == "M-sg":
        widths = (784, 256, 128, 64)
        layers: list[nn.Module] = [nn.Flatten()]
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.Sigmoid()]
        return nn.Sequential(*layers, nn.Linear(widths[-1], 10))
    convs: list[nn.Module] = [nn.Conv2d(1, 16, 3), nn.Sigmoid(), nn.Conv2d(16, 32, 3), nn.Sigmoid()]
    if arch == "deeper":
        convs += [nn.Conv2d(32, 32, 3), nn.Sigmoid()]
    side = (28 - 2 * (len(convs) // 2)) // 2
    pool = nn.MaxPool2d(2) if arch == "maxpool" else nn.AvgPool2d(2)
    return nn.Sequential(*convs, pool, nn.Flatten(), nn.Linear(32 * side * side, 10))


def load_custom(short, arch, data, recipe, cache_dir, seed):
    """Train (or load from ``cache_dir``) a :func:`custom_model`; ``(model, test accuracy)``."""
    (xtr, ytr), test = data
    torch.manual_seed(seed)
    model = custom_model(short, arch)
    digest = hashlib.sha1(xtr.numpy().tobytes() + ytr.numpy().tobytes()).hexdigest()[:8]
    key = f"ablation-{short}-{arch}-{recipe.key()}-s{seed}-t{torch.get_num_threads()}-d{digest}"
    path = Path(cache_dir or ".cache/ablation") / f"{key}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        fit, held = stratified_split(ytr.numpy(), recipe.val_fraction, seed)
        val = (xtr[held], ytr[held]) if recipe.patience is not None else None
        fit_data = (xtr[fit], ytr[fit]) if val is not None else (xtr, ytr)
        train(model, fit_data, seed=seed, recipe=recipe, val_data=val)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(model.state_dict(), path.with_suffix(".tmp"))
        os.replace(path.with_suffix(".tmp"), path)
    model.eval()
    return model, evaluate(model, test)


def get_model(short, s, data, args):
    if s["arch"] != "default":
        return load_custom(short, s["arch"], data, s["recipe"], args.cache_dir, args.seed)
    name, act = MODELS[short]
    return load_or_train(name, act, cache_dir=args.cache_dir, seed=args.seed, data=data, recipe=s["recipe"])


def run_setting(name, cause, changes, args, raw, stats):
    s = {**REFERENCE, **changes}
    data, to_model = scaled(raw, s["scale"], stats)
    baseline = {
        "black": float(to_model(torch.tensor(0.0))),
        "zero": 0.0,
        "mean": float(to_model(torch.tensor(stats[0]))),
    }[s["baseline"]]
    xte, yte = data[1]
    rows, layer_rows = [], []
    for short, n in s["samples"].items():
        t0 = time.perf_counter()
        idx = torch.as_tensor(stratified_sample(yte, min(n, len(yte)), args.seed))
        x, labels = xte[idx], yte[idx]
        model, acc = get_model(short, s, data, args)
        for p in model.parameters():
            p.requires_grad_(False)
        target = select_targets(model, x, labels, s["target"])
        # Theorem 4's per-layer reformulation needs affine layers and element-wise activations
        methods = [m for m in METHODS if not (m == "DL" and s["arch"] == "maxpool")]
        maps = deng.method_maps(model, x, target, baseline, methods, args.ig_steps)
        t3, layers = deng.table3_rows(model, short, x, target, baseline, args.ig_steps, maps, methods=methods)
        common = {
            "setting": name,
            "cause": cause,
            "model": short,
            "test_accuracy": round(acc, 4),
            "trained": acc >= findings.TRAINED_ACCURACY,
            "samples": len(x),
            "baseline": round(baseline, 4),
            "seconds": round(time.perf_counter() - t0, 1),
        }
        for r in t3:
            rows.append(
                {
                    **common,
                    "metric": f"d {r['method']} (%)",
                    "value": r["d_percent"],
                    "sem": r["d_sem_percent"],
                    "paper": r["paper_d_percent"],
                }
            )
        rows.append(
            {
                **common,
                "metric": "eps_bar",
                "value": t3[0]["approx_error"],
                "sem": t3[0]["approx_error_sem"],
                "paper": deng.PAPER_APPROX_ERROR[short],
            }
        )
        layer_rows += [{**common, **r} for r in layers]
        print(
            f"{name:50s} {short}: acc {acc:.3f} "
            + " ".join(f"{r['method']} {float(r['d_percent']):.3g}" for r in t3)
            + f" eps {t3[0]['approx_error']:.3g} ({common['seconds']:.0f} s)",
            flush=True,
        )
    return rows, layer_rows


def dl_reading_rows(ref_rows, ref_layers):
    """The reference's DL entry read the two other ways (no retraining)."""
    rows = []
    for setting, layer, upstream in DL_READINGS:
        for r in ref_layers:
            if r["layer"] == layer and r["upstream"] == upstream:
                base = next(q for q in ref_rows if q["model"] == r["model"] and q["metric"] == "d DL (%)")
                rows.append(
                    {
                        **{k: base[k] for k in ("model", "test_accuracy", "trained", "samples", "baseline")},
                        "setting": setting,
                        "cause": "DeepLIFT's per-layer reading",
                        "seconds": 0.0,
                        "metric": "d DL (%)",
                        "value": r["d_percent"],
                        "sem": "",
                        "paper": base["paper"],
                    }
                )
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="results/ablation")
    p.add_argument("--cache-dir", default=None)
    p.add_argument("--ig-steps", type=int, default=50)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--only", nargs="*", default=None, help="run only these setting names (tests)")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from OUT/ablation.csv")
    p.add_argument(
        "--append",
        action="store_true",
        help="keep the rows of OUT/ablation.csv and replace or add those of the settings run (with --only)",
    )
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        write_report(out, read_csv(out / "ablation.csv"), (out / "ablation_note.txt").read_text().strip())
        return 0
    raw = load_mnist(seed=args.seed, pixel_range=(0.0, 1.0))
    stats = (float(raw[0][0].mean()), float(raw[0][0].std()))
    order = [name for name, _, _ in SETTINGS] + [name for name, _, _ in DL_READINGS]
    kept = read_csv(out / "ablation.csv") if args.append and (out / "ablation.csv").exists() else []
    rows: list[dict] = []
    t0 = time.perf_counter()
    for name, cause, changes in SETTINGS:
        if args.only is not None and name not in args.only:
            continue
        new, layers = run_setting(name, cause, changes, args, raw, stats)
        rows += new
        if name == "reference":
            rows += dl_reading_rows(new, layers)
        done = {r["setting"] for r in rows}
        merged = [r for r in kept if r["setting"] not in done] + rows
        merged.sort(key=lambda r: order.index(r["setting"]) if r["setting"] in order else len(order))
        write_csv(out / "ablation.csv", merged)
    rows = merged
    minutes = (time.perf_counter() - t0) / 60
    note = (
        f"IG {args.ig_steps} steps, {args.threads} torch thread(s), seed {args.seed}; training digits' mean "
        f"{stats[0]:.4f} and std {stats[1]:.4f} (normalised inputs); "
        + (f"{minutes:.0f} minutes in all" if not kept else f"{minutes:.0f} minutes for the settings added")
        + " on a 2-core machine shared with other jobs."
    )
    if kept and (out / "ablation_note.txt").exists():
        note = (
            out / "ablation_note.txt"
        ).read_text().strip() + f" Added later ({', '.join(args.only or [])}): {minutes:.0f} minutes."
    (out / "ablation_note.txt").write_text(note + "\n")
    write_report(out, rows, note)
    return 0


def summary_rows(rows):
    """One row per setting, one column per (model, metric), ``value ± sem``, and
    the test accuracies (untrained ones marked): the table of the docs."""
    metrics = list(dict.fromkeys((r["model"], r["metric"]) for r in rows))
    paper = {(r["model"], r["metric"]): r["paper"] for r in rows}
    val = {(r["setting"], r["model"], r["metric"]): r for r in rows}
    out = [{"setting": "paper", **{f"{m} {k}": f"{float(paper[(m, k)]):g}" for m, k in metrics}, "test accuracy": ""}]
    for s in dict.fromkeys(r["setting"] for r in rows):
        row = {"setting": s}
        for m, k in metrics:
            r = val.get((s, m, k))
            if r is None:
                row[f"{m} {k}"] = ""
                continue
            sem = findings._f(r.get("sem"))
            row[f"{m} {k}"] = findings._g(r["value"]) + (f" ± {findings._g(sem, '.2g')}" if sem == sem else "")
        accs = []
        for m in dict.fromkeys(r["model"] for r in rows):
            r = next((q for q in rows if q["setting"] == s and q["model"] == m), None)
            if r is not None:
                flag = "" if str(r["trained"]) == "True" else " (not trained)"
                accs.append(f"{m} {float(r['test_accuracy']):.1%}{flag}")
        row["test accuracy"] = ", ".join(accs)
        out.append(row)
    return out


def write_report(out: Path, rows, note: str = "") -> None:
    """``ablation.md``, ``ablation_summary.csv`` and ``ablation_findings.rst`` from the rows."""
    sentences = findings.ablation_sentences(rows)
    summary = summary_rows(rows)
    write_csv(out / "ablation_summary.csv", summary)
    lines = [
        "# Ablation of the Table 3 gaps (Deng et al. 2021)",
        "",
        "Reference: the pipeline's default (pixels in [0, 1], baseline 0, Adadelta with early stopping), "
        "class-stratified test digits (M-sg 50, C-sg 25 unless stated), the predicted class as target; each "
        "setting changes one thing. "
        "Values: mean over the samples ± its standard error. " + note,
        "",
        "| " + " | ".join(summary[0]) + " |",
        "|" + "---|" * len(summary[0]),
    ]
    lines += ["| " + " | ".join(str(v) for v in r.values()) + " |" for r in summary]
    lines += ["", *sentences, ""]
    (out / "ablation.md").write_text("\n".join(lines) + "\n")
    (out / "ablation_findings.rst").write_text(findings.to_rst(sentences))


if __name__ == "__main__":
    raise SystemExit(main())
