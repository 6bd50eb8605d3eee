"""Deng et al.'s Figures 3 and 4 on a localisation task made from the shipped digits.

Deng et al. measure bounding-box accuracy (Schulz et al. 2020) of six methods
on ImageNet with VGG16/19 and ResNet18, which cannot be reached offline. Our
stand-in (:func:`captum_unified.data.load_mnist_localization`): every real
MNIST digit pasted at a random position of a 56x56 canvas with four fragments
of other digits as clutter; the box is the tight box around the digit's
strokes (about 10% of the image, below Schulz et al.'s 33% limit); a small CNN
(``loc_cnn``: three ReLU convolutions, max pooling, global average
pooling, dense output) classifies the digit. :func:`run` trains/caches it,
attributes class-stratified test canvases with GI, Occ-1, Occ-p, DL, IG and
EG (baseline 0, the black background) and writes ``deng_figure3.csv`` (mean
bounding-box accuracy per method, with the number of principles),
``deng_figure3.png`` and ``deng_figure4.png`` (Deng's Figure 4: the saliency
maps of a few canvases side by side, with the plain gradient); the report's
sections are :func:`captum_unified.experiments.deng.report.figure3_lines`.
"""

from __future__ import annotations

from pathlib import Path

import torch

from captum_unified.data import class_counts, load_mnist_localization, stratified_sample
from captum_unified.experiments.common import collect_attribution_warnings, select_targets, write_csv
from captum_unified.experiments.deng.maps import method_maps, reference_set
from captum_unified.experiments.deng.plots import plot_principles, plot_saliency
from captum_unified.experiments.deng.protocol import (
    EG_VARIANT,
    FIGURE4_METHODS,
    FIGURE_METHODS,
    LOCALIZATION_BASELINE,
    LOCALIZATION_QUICK_RECIPE,
    LOCALIZATION_RECIPE,
    PRINCIPLES,
)
from captum_unified.metrics import bounding_box_accuracy
from captum_unified.models import load_or_train

__all__ = ["run", "FIGURE4_SAMPLES"]

#: Canvases shown in Figure 4 (the first of the stratified draw: classes 0, 1, 2, 3).
FIGURE4_SAMPLES = 4


def run(spec, cfg, out: Path, warned: dict) -> tuple[dict[str, Path], list[dict]]:
    """Figure 3 of ``reproduce deng`` for the model ``spec`` (a
    :class:`~captum_unified.experiments.common.ModelSpec` of a zoo CNN); returns
    ``(paths written, rows of deng_figure3.csv)``."""
    task = load_mnist_localization(seed=cfg.seed, n=cfg.n_train)
    model, acc = load_or_train(
        spec.name,
        spec.activation,
        cache_dir=cfg.cache_dir,
        seed=cfg.seed,
        data=(task.train, task.test),
        recipe=LOCALIZATION_QUICK_RECIPE if cfg.small else LOCALIZATION_RECIPE,
        show_progress=cfg.show_progress,
    )
    for p in model.parameters():
        p.requires_grad_(False)
    xte, yte = task.test
    idx = torch.as_tensor(stratified_sample(yte, min(cfg.samples, len(yte)), cfg.seed))
    x, labels, boxes = xte[idx], yte[idx], task.test_boxes[idx]
    target = select_targets(model, x, labels, cfg.target)
    with collect_attribution_warnings(warned, f"{spec.label} (Figure 3)"):
        maps = method_maps(
            model,
            x,
            target,
            LOCALIZATION_BASELINE,
            FIGURE_METHODS + [EG_VARIANT],
            cfg.ig_steps,
            cfg.seed,
            1.0,
            batch=25,
            references=reference_set(task.train, cfg.seed),
        )
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])).double()
    chance = float((area / (x.shape[-1] * x.shape[-2])).mean())
    counts = ", ".join(f"{c}: {k}" for c, k in class_counts(labels).items())
    rows: list[dict] = []
    for m in FIGURE_METHODS + [EG_VARIANT]:
        signed = bounding_box_accuracy(maps[m], boxes, max_box_fraction=0.33)
        magnitude = bounding_box_accuracy(maps[m].abs(), boxes, max_box_fraction=0.33)
        rows.append(
            {
                "model": spec.label,
                "method": m,
                "principles": sum(PRINCIPLES[m]),
                "bbox_accuracy": float(torch.nanmean(signed)),
                "bbox_accuracy_abs": float(torch.nanmean(magnitude)),
                "chance": chance,
                "samples": int((~signed.isnan()).sum()),
                "test_accuracy": round(acc, 4),
                "class_counts": counts,
                "target": cfg.target,
            }
        )
    paths = {"figure3_csv": write_csv(out / "deng_figure3.csv", rows)}
    paths["figure3"] = plot_principles(
        rows,
        ["bbox_accuracy"],
        ["bounding-box accuracy (signed ranking)"],
        ["Figure 3: bounding-box accuracy, localisation task"],
        out / "deng_figure3.png",
        log=False,
        chance=chance,
    )
    shown = slice(0, FIGURE4_SAMPLES)
    with collect_attribution_warnings(warned, f"{spec.label} (Figure 4)"):
        extra = method_maps(model, x[shown], target[shown], LOCALIZATION_BASELINE, ["Gradient"], cfg.ig_steps)
    paths["figure4"] = plot_saliency(
        x[shown],
        {m: (extra[m] if m in extra else maps[m][shown]) for m in FIGURE4_METHODS},
        out / "deng_figure4.png",
        boxes=boxes[shown],
        row_titles=[f"class {int(c)}, explained {int(t)}" for c, t in zip(labels[shown], target[shown])],
        caption=(
            f"Deng's Figure 4 on the localisation task: {spec.label} (test accuracy {acc:.1%}); red positive, blue "
            "negative, each map divided by its largest |value|; dashed box: the digit's bounding box."
        ),
    )
    return paths, rows
