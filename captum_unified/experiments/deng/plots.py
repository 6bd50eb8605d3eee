"""The figures of ``reproduce deng``: Table 3 and the Taylor infidelity
(``deng_figure.png``), Figures 2 and 3 (a point per method and model against
the number of principles) and the localisation examples.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FormatStrFormatter

from captum_unified.experiments import findings
from captum_unified.experiments.deng.protocol import (
    EG_VARIANT,
    FIGURE_METHODS,
    PAPER_INFIDELITY,
    PAPER_TABLE3,
    TABLE3_METHODS,
)
from captum_unified.plots import plot_attribution_grid

__all__ = ["plot_table3", "plot_principles", "localization_examples"]


def plot_table3(table3: list[dict], infid: list[dict], path: Path) -> Path:
    """``deng_figure.png``: Table 3's ``d`` of each method and model beside the
    paper's, and the ratio of second- to first-order Taylor infidelity."""
    matplotlib.use("Agg", force=False)
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
) -> Path:
    """Deng's Figures 2/3: one point per method and model, x the number of
    principles, one panel per ``value_keys`` entry, Spearman's rho in the legend;
    ``chance``: a dashed line at that level (e.g. a constant map's score)."""
    matplotlib.use("Agg", force=False)
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


def localization_examples(x, boxes, labels, maps, path: Path, caption: str) -> Path:
    """``deng_localization_examples.png``: a few canvases with every method's map
    and the digit's bounding box (green)."""
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
