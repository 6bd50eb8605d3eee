"""Deng et al.'s Figure 3 on a localisation task made from the shipped digits.

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
``deng_figure3.png`` and ``deng_localization_examples.png``.
"""

from __future__ import annotations

from pathlib import Path

import torch

from captum_unified.data import class_counts, load_mnist_localization, stratified_sample
from captum_unified.experiments import findings
from captum_unified.experiments.common import collect_attribution_warnings, select_targets, write_csv
from captum_unified.models import TrainingRecipe, load_or_train

__all__ = ["RECIPE", "QUICK_RECIPE", "run", "report_lines"]

#: Training of ``loc_cnn`` (our task, not the paper's: Adam, fixed epochs).
RECIPE = TrainingRecipe("adam", lr=1e-3, epochs=30, batch_size=64)
QUICK_RECIPE = TrainingRecipe("adam", lr=1e-3, epochs=4, batch_size=32)
BASELINE = 0.0


def run(spec, cfg, out: Path, warned: dict) -> tuple[dict[str, Path], list[dict]]:
    """Figure 3 of ``reproduce deng`` for the model ``spec`` (a
    :class:`~captum_unified.experiments.common.ModelSpec` of a zoo CNN); returns
    ``(paths written, rows of deng_figure3.csv)``."""
    from captum_unified.experiments.deng import (
        EG_VARIANT,
        FIGURE_METHODS,
        PRINCIPLES,
        method_maps,
        plot_principles,
        reference_set,
    )
    from captum_unified.metrics import bounding_box_accuracy

    task = load_mnist_localization(seed=cfg.seed, n=cfg.n_train)
    model, acc = load_or_train(
        spec.name,
        spec.activation,
        cache_dir=cfg.cache_dir,
        seed=cfg.seed,
        data=(task.train, task.test),
        recipe=QUICK_RECIPE if cfg.small else RECIPE,
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
            BASELINE,
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
    caption = f"{spec.label} on the localisation task; green box: the digit's bounding box"
    fig = plot_principles(
        rows,
        ["bbox_accuracy"],
        ["bounding-box accuracy (signed ranking)"],
        ["Figure 3: bounding-box accuracy, localisation task"],
        out / "deng_figure3.png",
        log=False,
        chance=chance,
    )
    if fig is not None:
        paths["figure3"] = fig
        paths["localization_examples"] = _examples(
            x[:3],
            boxes[:3],
            labels[:3],
            {m: maps[m][:3] for m in FIGURE_METHODS},
            out / "deng_localization_examples.png",
            caption,
        )
    return paths, rows


def _examples(x, boxes, labels, maps, path: Path, caption: str) -> Path:
    import warnings

    from matplotlib.patches import Rectangle

    from captum_unified.plots import plot_attribution_grid

    with warnings.catch_warnings():  # Captum's note on maps close to 0 (EG's): each map is scaled to its own max
        warnings.filterwarnings("ignore", message="Attempting to normalize by value approximately 0")
        fig, axes = plot_attribution_grid(
            x,
            maps,
            image_range=(0.0, 1.0),
            titles=[f"true class {int(c)}" for c in labels],
            shared_colorbar=True,
            caption=caption,
        )
    for r in range(len(x)):
        top, left, bottom, right = (int(v) for v in boxes[r])
        for ax in axes[r]:
            ax.add_patch(Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, color="lime", lw=1))
    fig.savefig(path, dpi=100)
    return path


def report_lines(rows: list[dict]) -> list[str]:
    """The report's Figure 3 section from ``deng_figure3.csv`` rows."""
    if not rows:
        return []
    r0 = rows[0]
    lines = [
        "## Figure 3: bounding-box accuracy vs number of principles (localisation task)",
        "",
        "![Figure 3](deng_figure3.png)",
        "",
        "Task: each real test digit pasted at a random place of a 56x56 canvas with four fragments of other "
        f"digits; the box is the tight box of the digit's strokes. Model: {r0['model']} (`loc_cnn`, test accuracy "
        f"{float(r0['test_accuracy']):.3f}). {r0['samples']} canvases (class counts {r0['class_counts']}); "
        f"target: the {r0['target']} class; baseline 0. Bounding-box accuracy (Schulz et al. 2020): for a box "
        "of n pixels, the share of the n highest-attributed pixels inside it (signed values ranked; ties "
        "counted by their expected share); boxes covering 33% of the image or more would be left out "
        f"(none here). Chance level (a constant map): {float(r0['chance']):.3f}.",
        "",
        "| method | principles | bounding-box accuracy | ranked by magnitude |",
        "|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {float(r['principles']):g} | {float(r['bbox_accuracy']):.3f} | "
            f"{float(r['bbox_accuracy_abs']):.3f} |"
        )
    return lines + [""] + findings.deng_figure3_sentences(rows)
