"""Deng et al. (AAAI 2021) pipeline on MNIST: the Poly model, the 3-layer
sigmoid MLP and CNN and the softplus CNN.

For now: train/cache the models, attribute ``samples`` test digits with GI, IG,
epsilon-LRP, DeepLIFT and Occlusion-1 (baseline 0), record completeness deltas
and write ``deng_checks.csv`` and ``deng_report.md`` under ``out``. The Taylor
term comparisons (``captum_unified.taylor``) plug in at :func:`run`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional

import torch

from captum_unified.data import load_mnist
from captum_unified.experiments.common import (
    METHODS, ExperimentConfig, compute_attributions, progress, write_csv,
)
from captum_unified.models import load_or_train

__all__ = ["MODELS", "run"]

MODELS = [("deng_poly", None), ("deng_mlp", "sigmoid"), ("deng_cnn", "sigmoid"),
          ("deng_cnn_softplus", "softplus")]


def run(cfg: ExperimentConfig, models: Optional[List[tuple]] = None) -> Dict[str, Path]:
    models = models or (MODELS[:2] if cfg.n_train and cfg.n_train <= 500 else MODELS)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed)
    x, y = data[1][0][: cfg.samples], data[1][1][: cfg.samples]
    checks, accs = [], {}
    for name, act in progress(models, cfg.show_progress, desc="models"):
        model, acc = load_or_train(name, act, cache_dir=cfg.cache_dir, epochs=cfg.epochs,
                                   seed=cfg.seed, n_train=cfg.n_train, data=data,
                                   show_progress=cfg.show_progress)
        accs[(name, act or "-")] = acc
        for p in model.parameters():
            p.requires_grad_(False)
        with torch.no_grad():
            target = model(x).argmax(1)
        for m in cfg.methods:
            attr, delta = compute_attributions(model, m, x, target, 0.0, cfg.ig_steps)
            checks.append({"model": name, "activation": act or "-", "test_accuracy": round(acc, 4),
                           "method": m, "samples": len(x),
                           "mean_abs_attr": float(attr.abs().mean()),
                           "max_abs_delta": "" if delta is None else float(delta.abs().max())})
    paths = {"checks": write_csv(out / "deng_checks.csv", checks)}
    lines = ["# Deng et al. (2021): pipeline checks", "", f"Config: `{cfg.to_dict()}`", "",
             "| model | activation | test acc | method | max abs delta | mean abs attr |",
             "|---|---|---|---|---|---|"]
    for r in checks:
        d = r["max_abs_delta"]
        lines.append(f"| {r['model']} | {r['activation']} | {r['test_accuracy']:.3f} | "
                     f"{METHODS[r['method']][0]} | {'n/a' if d == '' else f'{d:.3g}'} | "
                     f"{r['mean_abs_attr']:.3g} |")
    (out / "deng_report.md").write_text("\n".join(lines) + "\n")
    paths["report"] = out / "deng_report.md"
    return paths
