"""The ``reproduce deng`` pipeline: :func:`run` draws the samples, trains or
loads each model and hands the maps to the tables, figures and report."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from captum_unified.data import load_mnist
from captum_unified.experiments.common import (
    METHODS,
    ExperimentConfig,
    ModelSpec,
    collect_attribution_warnings,
    compute_attributions,
    draw_samples,
    load_model,
    progress,
    select_targets,
    set_threads,
    write_csv,
)
from captum_unified.experiments.deng import localization
from captum_unified.experiments.deng.maps import method_maps, reference_set, taylor_maps
from captum_unified.experiments.deng.plots import plot_principles, plot_table3
from captum_unified.experiments.deng.protocol import (
    DEFAULTS,
    EG_VARIANT,
    FIGURE_METHODS,
    MODELS,
    OCC_P,
    QUICK_SQUARE_SIZES,
    TABLE3_METHODS,
)
from captum_unified.experiments.deng.report import write_report
from captum_unified.experiments.deng.tables import figure2_rows, infidelity_rows, table2_rows, table3_rows
from captum_unified.experiments.yeh_infidelity import YEH_SQUARE_SIZES, output_changes

__all__ = ["run"]


def run(cfg: ExperimentConfig, models: list[ModelSpec] | None = None) -> dict[str, Path]:
    """``reproduce deng``: train or load the models of ``models`` (default
    :data:`~captum_unified.experiments.deng.protocol.MODELS`), compute each
    one's part of the tables and figures as its ``roles`` say, and write the
    CSVs, figures and report under ``cfg.out``; returns ``{name: path}``."""
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
                    with torch.no_grad():  # the output change to the removal baseline, for sum_share
                        i = torch.arange(len(x))
                        df = model(x)[i, target] - model(torch.full_like(x, cfg.baseline))[i, target]
                    fig2 += [
                        {**r, "test_accuracy": round(acc, 4)}
                        for r in figure2_rows(spec.label, changes, maps, len(x), sizes, output_change=df)
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
        paths["figure2"] = plot_principles(
            fig2,
            ["infidelity_scaled", "infidelity_unscaled"],
            ["infidelity, Yeh's optimal scaling (log)", "infidelity, unscaled (log)"],
            ["Figure 2: infidelity, scaled (Yeh's code)", "Figure 2: infidelity, unscaled"],
            out / "deng_figure2.png",
        )
    fig3 = []
    for spec in (m for m in models if "figure3" in m.roles):
        t0 = time.perf_counter()
        written, rows = localization.run(spec, cfg, out, warned)
        paths.update(written)
        fig3 += rows
        accs[spec.label] = float(rows[0]["test_accuracy"])
        seconds[spec.label] = time.perf_counter() - t0
    if table3 or infid:
        paths["figure"] = plot_table3(table3, infid, out / "deng_figure.png")
    paths["report"] = write_report(
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
