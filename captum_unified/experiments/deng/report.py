"""``deng_report.md``: the tables of ``reproduce deng`` in markdown, with the
paper's numbers beside ours, the protocol sentences and the findings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from captum_unified.experiments import findings
from captum_unified.experiments.common import METHODS, TARGETS, recipe_for, samples_line, warnings_section
from captum_unified.experiments.deng.localization import FIGURE4_SAMPLES
from captum_unified.experiments.deng.protocol import (
    DEFAULTS,
    EG_REFERENCES,
    EG_SAMPLES,
    EG_STDEV,
    EG_VARIANT,
    FIGURE_METHODS,
    OCC_P,
    PRINCIPLES,
    QUICK_SQUARE_SIZES,
    TABLE3_METHODS,
)
from captum_unified.experiments.deng.tables import table2_rows
from captum_unified.experiments.yeh_infidelity import YEH_SOURCE, YEH_SQUARE_SIZES

__all__ = ["write_report", "infidelity_protocol", "figure3_lines", "figure4_lines", "tests_line", "protocol_line"]


def _fmt(v, spec: str = ".3g") -> str:
    return "n/a" if v == "" or v is None else format(float(v), spec)


def write_report(
    path: Path, cfg, threads, labels, accs, seconds, checks, table3, dl_layers, infid, fig2, fig3, warned
) -> Path:
    """``deng_report.md``: every table with the paper's numbers beside ours and
    the sentences :mod:`~captum_unified.experiments.findings` writes from them."""
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
        tests_line(),
        "",
    ]
    if table3:
        mods = list(dict.fromkeys(r["model"] for r in table3))
        lines += [
            "## Table 3: average percentage change d (%), ours / paper",
            "",
            protocol_line("table3", len(labels), cfg.target),
            "",
            "| method | " + " | ".join(mods) + " |",
            "|---|" + "---|" * len(mods),
        ]
        for me in TABLE3_METHODS:
            cells = []
            for m in mods:
                r = next(r for r in table3 if r["model"] == m and r["method"] == me)
                sem = "" if r.get("d_sem_percent", "") in ("", None) else f" ± {_fmt(r['d_sem_percent'], '.2g')}"
                cells.append(f"{_fmt(r['d_percent'])}{sem} / {r['paper_d_percent']:g}")
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
            protocol_line("infidelity", len(labels), cfg.target),
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
            protocol_line("figure2", len(labels), cfg.target),
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
        lines += figure3_lines(fig3) + [""] + figure4_lines(fig3) + [""]
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


def tests_line() -> str:
    """What every conclusion of the report needs (:mod:`~captum_unified.experiments.findings`)."""
    return (
        f"Conclusions: drawn only from a model with at least {findings.TRAINED_ACCURACY:.0%} test accuracy "
        f"(chance: 10%) and at least {findings.MIN_SAMPLES} explained samples; a correlation only when its "
        f"two-sided test gives p < {findings.ALPHA:g} (Spearman: exact permutation test over the methods; "
        "Pearson: Student's t). Otherwise the report says there is not enough to conclude."
    )


#: Deng et al.'s own protocol per experiment, and ours (``protocol_line``).
PAPER_PROTOCOL = {
    "table3": "Deng: Table 3 averaged over '3k validation' MNIST digits, the predicted label",
    "infidelity": "Deng: MNIST, the predicted label; samples not stated",
    "figure2": "Deng: MNIST (MLP, C-sg, C-sp), the predicted label; samples not stated",
    "figure3": "Deng: ImageNet validation images whose box covers less than 33%, VGG16/19 and ResNet18",
}


def protocol_line(part: str, n: int, target: str) -> str:
    """The paper's protocol for ``part`` and what this run did."""
    return f"Protocol: {PAPER_PROTOCOL[part]}. Here: {n} class-stratified test digits, target {TARGETS[target]}."


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


def figure3_lines(rows: list[dict]) -> list[str]:
    """The report's Figure 3 section from ``deng_figure3.csv`` rows."""
    if not rows:
        return []
    r0 = rows[0]
    lines = [
        "## Figure 3: bounding-box accuracy vs number of principles (localisation task)",
        "",
        "![Figure 3](deng_figure3.png)",
        "",
        f"Protocol: {PAPER_PROTOCOL['figure3']} (not reachable offline). Here: a stand-in task. "
        "Each real test digit pasted at a random place of a 56x56 canvas with four fragments of other "
        f"digits; the box is the tight box of the digit's strokes. Model: {r0['model']} (`loc_cnn`, test accuracy "
        f"{float(r0['test_accuracy']):.3f}). {r0['samples']} canvases (class counts {r0['class_counts']}); "
        f"target: {TARGETS.get(r0['target'], r0['target'])}; baseline 0. Bounding-box accuracy (Schulz et "
        "al. 2020): for a box of n pixels, the share of the n highest-attributed pixels inside it (signed "
        "values ranked; ties counted by their expected share); boxes covering 33% of the image or more "
        f"would be left out (none here). Chance level (a constant map): {float(r0['chance']):.3f}.",
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


def figure4_lines(rows: list[dict]) -> list[str]:
    """The report's Figure 4 section (the saliency maps of ``deng_figure4.png``)."""
    r0 = rows[0]
    return [
        "## Figure 4: saliency maps side by side (localisation task)",
        "",
        "![Figure 4](deng_figure4.png)",
        "",
        "Protocol: Deng: ImageNet images (VGG16), Gradient, GI, Occ-p, DL, IG and EG, a black-image baseline. "
        f"Here: the first {FIGURE4_SAMPLES} canvases of Figure 3 ({r0['model']}, test accuracy "
        f"{float(r0['test_accuracy']):.3f}); the plain gradient, GI, Occ-p, DL, IG, EG and {EG_VARIANT}; baseline 0 "
        "(black). Red positive, blue negative; each map divided by its largest absolute value. The paper's "
        "reading of its figure is visual (noisy Gradient and GI maps, sharp EG maps) and states no number; "
        "none is concluded here.",
    ]
