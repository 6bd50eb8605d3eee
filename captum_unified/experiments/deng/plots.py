"""The figures of ``reproduce deng``: Table 3 and the Taylor infidelity
(``deng_figure.png``), Figures 2 and 3 (a point per method and model against
the number of principles) and Figure 4 (saliency maps side by side).

Each ``*_figure`` function builds a :class:`matplotlib.figure.Figure` (what the
tests read); the ``plot_*`` functions save it. Attribution maps follow both
papers' colours: red positive, blue negative, white 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from captum_unified.experiments import findings
from captum_unified.experiments.deng.protocol import (
    EG_VARIANT,
    FIGURE_METHODS,
    PAPER_INFIDELITY,
    PAPER_TABLE3,
    TABLE3_METHODS,
)

__all__ = [
    "table3_figure",
    "plot_table3",
    "principles_figure",
    "plot_principles",
    "saliency_figure",
    "plot_saliency",
    "MARKERS",
    "COLORS",
    "SALIENCY_CMAP",
]

#: Deng's Figure 2/3 markers per method (the paper's: circle, triangle down,
#: triangle up, square, diamond, star) and colours per model (blue, green, red).
MARKERS = {"GI": "o", "Occ-1": "v", "Occ-p": "^", "DL": "s", "IG": "D", "EG": "*", EG_VARIANT: "*"}
COLORS = {"M-sg": "tab:blue", "C-sg": "tab:green", "C-sp": "tab:red", "Loc-CNN": "tab:purple"}
#: Red positive, blue negative, white 0 (both papers' heat maps).
SALIENCY_CMAP = "bwr"
#: Horizontal offsets (in principles) so that methods with the same count
#: (Occ-1 and Occ-p: 0.5) and models do not hide each other.
METHOD_OFFSET = {"Occ-1": -0.1, "Occ-p": 0.1, EG_VARIANT: 0.12}
MODEL_STEP = 0.035


def _save(fig: Figure, path: Path, dpi: int = 120) -> Path:
    matplotlib.use("Agg", force=False)
    fig.savefig(path, dpi=dpi)
    return path


# ------------------------------------------------------------------- Table 3
def table3_figure(table3: list[dict], infid: list[dict]) -> Figure:
    """Table 3's ``d`` of each method and model beside the paper's (left, log
    scale), and the ratio of second- to first-order Taylor infidelity (right)."""
    floor = 1e-13  # d of exact reformulations is ~1e-9 .. 1e-13 (float rounding)
    fig = Figure(figsize=(12, 4.8))
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2.2, 1]})
    models = [m for m in ("Poly", "M-sg", "C-sg") if any(r["model"] == m for r in table3)]
    xs = np.arange(len(TABLE3_METHODS))
    w = 0.8 / max(len(models), 1)
    colors = {"Poly": "tab:purple", "M-sg": "tab:blue", "C-sg": "tab:green"}
    for k, m in enumerate(models):
        ours = [
            next((r["d_percent"] for r in table3 if r["model"] == m and r["method"] == me), "") for me in TABLE3_METHODS
        ]
        vals = [np.nan if v == "" else max(float(v), floor) for v in ours]
        paper = [max(PAPER_TABLE3[m][me], floor) for me in TABLE3_METHODS]
        pos = xs - 0.4 + w * (k + 0.5)
        ax1.bar(pos, vals, w, color=colors[m], label=f"{m} (ours)")
        ax1.scatter(pos, paper, marker="_", s=200, color="k", zorder=3, label="Deng et al. (paper)" if k == 0 else None)
    ax1.set_yscale("log")
    ax1.set_ylim(floor / 3, 1000)
    ax1.set_yticks([10.0**e for e in range(-13, 4, 2)])
    ax1.set_xticks(xs)
    ax1.set_xticklabels(TABLE3_METHODS)
    ax1.set_ylabel(f"d (%), log scale; 0 drawn at {floor:g}")
    ax1.set_title("Table 3: original vs second-order Taylor reformulation", fontsize="medium")
    ax1.legend(fontsize=8, loc="upper left", ncol=2)
    groups = [m for m in ("C-sg", "C-sp") if any(r["model"] == m for r in infid)]
    top = 1.2
    for k, m in enumerate(groups):
        rs = {int(r["order"]): r for r in infid if r["model"] == m}
        for j, (kind, hatch) in enumerate((("scaled", ""), ("unscaled", "//"))):
            ratio = float(rs[2][f"infidelity_{kind}"]) / float(rs[1][f"infidelity_{kind}"])
            top = max(top, ratio * 1.15)
            ax2.bar(
                k + (j - 0.5) * 0.35,
                ratio,
                0.35,
                color="0.75" if j else "0.5",
                hatch=hatch,
                label=f"ours, {kind}" if k == 0 else None,
            )
        ax2.scatter(
            k,
            PAPER_INFIDELITY[m][2] / PAPER_INFIDELITY[m][1],
            marker="_",
            s=500,
            color="k",
            zorder=3,
            label="Deng et al. (paper)" if k == 0 else None,
        )
    ax2.axhline(1.0, color="0.5", lw=0.8, ls="--")
    ax2.set_ylim(0, top)  # linear: the ratios lie between about 0.5 and 1
    ax2.set_xticks(range(len(groups)))
    ax2.set_xticklabels(groups)
    ax2.set_ylabel("infidelity ratio 2nd / 1st order (< 1: 2nd better)")
    ax2.set_title("Taylor infidelity, Yeh's squares", fontsize="medium")
    if groups:
        ax2.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def plot_table3(table3: list[dict], infid: list[dict], path: Path) -> Path:
    """``deng_figure.png``: :func:`table3_figure`."""
    return _save(table3_figure(table3, infid), path)


# -------------------------------------------------------------- Figures 2, 3
def _x(principles: float, method: str, k: int, n_models: int) -> float:
    return principles + METHOD_OFFSET.get(method, 0.0) + MODEL_STEP * (k - (n_models - 1) / 2)


def _centre(values: Sequence[float], log: bool) -> float:
    v = [x for x in values if x == x and (x > 0 or not log)]
    if not v:
        return float("nan")
    return math.exp(sum(math.log(x) for x in v) / len(v)) if log else sum(v) / len(v)


def principles_figure(
    rows: list[dict],
    value_keys: Sequence[str],
    ylabels: Sequence[str],
    titles: Sequence[str],
    log: bool = True,
    chance: float | None = None,
) -> Figure:
    """Deng's Figures 2/3: one marker per method (the paper's shapes) and model
    (colour) at its number of principles, methods with the same count side by
    side; per model a line through the mean of its methods at each count
    (geometric mean on a log axis), so two methods at one count do not read as
    an error bar; Spearman's rho and its permutation p in the legend; one panel
    per ``value_keys`` entry; ``chance``: a dotted level (e.g. a constant
    map's score), drawn over the grid and labelled."""
    fig = Figure(figsize=(5.4 * len(value_keys) + 2.2, 4.4))
    axes = fig.subplots(1, len(value_keys), squeeze=False)[0]
    models = list(dict.fromkeys(r["model"] for r in rows))
    for ax, key, ylabel, title in zip(axes, value_keys, ylabels, titles):
        for k, m in enumerate(models):
            color = COLORS.get(m, "0.4")
            pts = [
                (float(r["principles"]), float(r[key]), r["method"])
                for r in rows
                if r["model"] == m and r["method"] in FIGURE_METHODS
            ]
            counts = sorted({p for p, _, _ in pts})
            line = [(c, _centre([v for p, v, _ in pts if p == c], log)) for c in counts]
            ax.plot(
                [_x(c, "", k, len(models)) for c, _ in line],
                [v for _, v in line],
                color=color,
                lw=1.0,
                alpha=0.7,
                ls="-",
                gid=f"trend {m}",
            )
            for p, v, meth in pts:
                ax.scatter(
                    _x(p, meth, k, len(models)),
                    v,
                    marker=MARKERS.get(meth, "o"),
                    color=color,
                    s=60 if meth != "EG" else 110,
                    edgecolor="k",
                    linewidth=0.5,
                    zorder=3,
                    gid=f"{m} {meth}",
                )
            for r in rows:
                if r["model"] == m and r["method"] == EG_VARIANT:  # hollow star beside EG, not in the line
                    ax.scatter(
                        _x(float(r["principles"]), EG_VARIANT, k, len(models)),
                        float(r[key]),
                        marker="*",
                        s=110,
                        facecolor="none",
                        edgecolor=color,
                        linewidth=1.0,
                        zorder=3,
                        gid=f"{m} {EG_VARIANT}",
                    )
            rho, p = findings.spearman_test([q[0] for q in pts], [q[1] for q in pts])
            ax.plot([], [], color=color, label=f"{m}: rho {rho:+.2f}, p {p:.2g}")
        if log:
            ax.set_yscale("log")
        if chance is not None:
            ax.axhline(chance, color="k", ls=":", lw=1.4, zorder=4, label=f"chance level ({chance:.3f})")
            vals = [float(r[key]) for r in rows if r["method"] in (*FIGURE_METHODS, EG_VARIANT)] + [chance]
            lo, hi = min(vals), max(vals)
            pad = 0.12 * (hi - lo or 1.0)
            if not log:
                ax.set_ylim(lo - pad, hi + pad)  # the chance line inside the frame, not on it
        ax.set_xticks([0, 0.5, 1, 2, 3])
        ax.set_xlim(-0.35, 3.45)
        ax.set_xlabel("number of principles followed (Table 2)")
        ax.set_ylabel(ylabel)
        ax.set_title(title, fontsize="medium")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="Spearman", title_fontsize=8)
    handles = [
        Line2D([], [], ls="", marker=MARKERS[m], color="0.6", markeredgecolor="k", label=m) for m in FIGURE_METHODS
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
    return fig


def plot_principles(
    rows: list[dict],
    value_keys: Sequence[str],
    ylabels: Sequence[str],
    titles: Sequence[str],
    path: Path,
    log: bool = True,
    chance: float | None = None,
) -> Path:
    """Save :func:`principles_figure` to ``path``."""
    return _save(principles_figure(rows, value_keys, ylabels, titles, log=log, chance=chance), path)


# ------------------------------------------------------------------- Figure 4
def _as_maps(a) -> np.ndarray:
    """``(B, H, W)`` float64: channels summed."""
    a = np.asarray(a.detach().cpu() if hasattr(a, "detach") else a, dtype=np.float64)
    return a.sum(1) if a.ndim == 4 else a


def saliency_figure(
    images,
    maps: Mapping[str, object],
    boxes=None,
    row_titles: Sequence[str] | None = None,
    caption: str | None = None,
    cell: float = 1.55,
) -> Figure:
    """Deng's Figure 4: saliency maps side by side, rows the samples, columns
    the input and each method. Each map is divided by its own largest absolute
    value (no clipping) and drawn with :data:`SALIENCY_CMAP` from -1 (blue)
    through 0 (white) to 1 (red); ``boxes`` ``(top, left, bottom, right)``
    (exclusive) are outlined in black on every panel."""
    imgs = _as_maps(images)
    names = list(maps)
    arrays = {k: _as_maps(v) for k, v in maps.items()}
    rows, cols = imgs.shape[0], len(names) + 1
    fig = Figure(figsize=(cell * cols + 0.9, cell * rows + (0.55 if caption else 0.2)))
    axes = np.asarray(fig.subplots(rows, cols, squeeze=False))
    im = None
    for i in range(rows):
        axes[i, 0].imshow(imgs[i], cmap="gray_r", interpolation="nearest")
        if row_titles is not None:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=8)
        for j, name in enumerate(names, start=1):
            a = arrays[name][i]
            scale = float(np.abs(a).max())
            im = axes[i, j].imshow(
                a / scale if scale > 0 else a, cmap=SALIENCY_CMAP, vmin=-1, vmax=1, interpolation="nearest"
            )
            if scale == 0:
                axes[i, j].text(0.5, 0.5, "all zero", ha="center", va="center", transform=axes[i, j].transAxes)
        if boxes is not None:
            top, left, bottom, right = (int(v) for v in boxes[i])
            for ax in axes[i]:
                ax.add_patch(
                    Rectangle((left - 0.5, top - 0.5), right - left, bottom - top, fill=False, ec="k", lw=1.0, ls="--")
                )
    for j, title in enumerate(["input"] + names):
        axes[0, j].set_title(title, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.subplots_adjust(left=0.04, right=0.9, top=0.92 if not caption else 0.88, bottom=0.02 if not caption else 0.1)
    if im is not None:
        cax = fig.add_axes((0.915, 0.15, 0.015, 0.7))
        bar = fig.colorbar(im, cax=cax, ticks=[-1, 0, 1])
        bar.ax.set_yticklabels(["-max", "0", "+max"], fontsize=8)
        bar.set_label("attribution / the map's largest |value|", fontsize=8)
    if caption:
        fig.text(0.5, 0.02, caption, ha="center", va="bottom", fontsize=8, wrap=True)
    return fig


def plot_saliency(images, maps, path: Path, boxes=None, row_titles=None, caption=None) -> Path:
    """Save :func:`saliency_figure` to ``path``."""
    return _save(saliency_figure(images, maps, boxes, row_titles, caption), path, dpi=110)
