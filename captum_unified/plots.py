r"""Plots for attribution evaluations (matplotlib, safe under the ``Agg`` backend).

* :func:`plot_sensitivity_n` — Sensitivity-n curves, one line per method, on a
  log ``n`` axis (Ancona et al. 2018, Figure 4).
* :func:`plot_region_perturbation` — region-perturbation curves (Samek et al.
  2016; Ancona et al. 2018, Figure 3c).
* :func:`plot_attribution_grid` — attribution maps, rows samples and columns
  methods, drawn with Captum's :func:`captum.attr.visualization.visualize_image_attr`.

No function calls ``plt.show``; each returns ``(fig, ax)`` (``ax`` an array of
axes for the grid) so the caller can save or further decorate the figure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
from captum.attr import visualization as viz
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure

__all__ = ["plot_sensitivity_n", "plot_region_perturbation", "plot_attribution_grid", "legend_outside"]

#: Consistent colour / marker / line per known method label (others use the default
#: cycle). IG and DeepLIFT often coincide: IG is a thick solid line with large
#: filled squares, DeepLIFT a thin dashed line with small open triangles on top,
#: so both stay visible where the curves overlap.
_STYLE = {
    "gradient*input": ("tab:blue", "o", "-"),
    "gi": ("tab:blue", "o", "-"),
    "integrated gradients": ("tab:orange", "s", "-"),
    "ig": ("tab:orange", "s", "-"),
    "epsilon-lrp": ("tab:green", "^", "-"),
    "lrp": ("tab:green", "^", "-"),
    "deeplift (rescale)": ("tab:red", "v", "--"),
    "deeplift": ("tab:red", "v", "--"),
    "occlusion-1": ("tab:purple", "D", "-"),
    "occlusion1": ("tab:purple", "D", "-"),
}
_IG = ("integrated gradients", "ig")
_DL = ("deeplift (rescale)", "deeplift")


def _new_axes(ax, figsize=(5, 3.6)):
    if ax is not None:
        return ax.figure, ax
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _as_curve(value: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` from a pair or a :class:`~captum_unified.metrics.SensitivityNResult`."""
    if hasattr(value, "n") and hasattr(value, "mean"):
        x, y = value.n, value.mean
    else:
        x, y = value
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y of a curve differ in shape: {x.shape} vs {y.shape}.")
    return x, y


def _style(label: str, i: int) -> dict:
    key = str(label).lower()
    c = _STYLE.get(key)
    if c is None:
        return {"color": f"C{i % 10}", "marker": "o", "markersize": 3, "linewidth": 1.4}
    style = {"color": c[0], "marker": c[1], "linestyle": c[2], "markersize": 3, "linewidth": 1.4}
    if key in _IG:
        style.update(linewidth=3.0, markersize=5, alpha=0.85, zorder=2)
    elif key in _DL:
        style.update(linewidth=1.2, markersize=5, markerfacecolor="none", zorder=3)
    return style


def legend_outside(fig, axes, ncol: int | None = None, **kw):
    """One legend for the whole figure, below the panels (off every curve);
    entries are the unique labels of ``axes``. Returns the legend."""
    handles, labels = [], []
    for ax in np.atleast_1d(axes).ravel():
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    return fig.legend(
        handles, labels, loc="lower center", ncol=ncol or max(1, len(labels)), frameon=False, fontsize="small", **kw
    )


def plot_sensitivity_n(
    results: Mapping[str, Any],
    ax=None,
    title: str | None = None,
    ylim: tuple[float, float] | None = (-0.05, 1.02),
    legend: bool | Literal["outside"] = True,
):
    """Sensitivity-n curves as in Ancona et al. (2018), Figure 4.

    Args:
        results: ``method label -> (n_list, mean_correlation)`` or
            ``method label -> SensitivityNResult`` (its ``n`` and ``mean`` are
            used). Known labels (``"Gradient*Input"``/``"GI"``,
            ``"Integrated Gradients"``/``"IG"``, ``"epsilon-LRP"``/``"LRP"``,
            ``"DeepLIFT (Rescale)"``/``"DeepLIFT"``, ``"Occlusion-1"``; any
            case) get a fixed colour and marker; others follow the default
            colour cycle.
        ax: a matplotlib ``Axes`` to draw on; default a new figure (not pyplot-managed).
        title: axes title.
        ylim: y limits (default ``(-0.05, 1.02)``; ``None`` leaves them automatic).
        legend: draw a legend (``True``), outside the axes on the right
            (``"outside"``) or none (``False``; e.g. one for the figure with
            :func:`legend_outside`).

    Returns:
        ``(fig, ax)``. The x axis (``n``, the subset size) is logarithmic. NaN
        points (e.g. the per-sample mean at ``n = N``) leave a gap. IG is drawn
        thick and solid, DeepLIFT thin, dashed and with open markers on top,
        so both show where their curves coincide.

    Raises:
        ValueError: ``n`` and the correlations of an entry differ in shape.
    """
    fig, ax = _new_axes(ax)
    for i, (label, value) in enumerate(results.items()):
        x, y = _as_curve(value)
        ax.plot(x, y, label=str(label), **_style(label, i))
    ax.set_xscale("log")
    ax.set_xlabel("n (features removed)")
    ax.set_ylabel("Pearson correlation")
    if ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    if legend == "outside" and results:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend and results:
        ax.legend(fontsize="small")
    return fig, ax


def plot_region_perturbation(
    curves: Mapping[str, Any],
    ax=None,
    title: str | None = None,
    xlabel: str = "features removed",
    ylabel: str = "target output",
    legend: bool = True,
):
    """Region-perturbation curves (Samek et al. 2016; Ancona et al. 2018, Fig. 3c).

    Args:
        curves: ``label -> (steps, mean curve)`` (tensors, arrays or lists of
            equal length), e.g. ``(result.k, result.curves.mean(0))`` of a
            :class:`~captum_unified.metrics.RegionPerturbationResult`;
            ``"IG (+)"`` for most relevant first and ``"IG (-)"`` for least
            relevant first, as in Ancona et al.'s Figure 3c.
        ax: a matplotlib ``Axes`` to draw on; default a new figure (not
            pyplot-managed).
        title: axes title.
        xlabel: x-axis label.
        ylabel: y-axis label.
        legend: draw a legend.

    Returns:
        ``(fig, ax)``, one line per entry of ``curves`` (linear axes).

    Raises:
        ValueError: the steps and the curve of an entry differ in shape.
    """
    fig, ax = _new_axes(ax)
    for i, (label, value) in enumerate(curves.items()):
        x, y = _as_curve(value)
        ax.plot(x, y, label=str(label), color=f"C{i % 10}", linewidth=1.4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)
    if title:
        ax.set_title(title)
    if legend and curves:
        ax.legend(fontsize="small")
    return fig, ax


def _hwc(t) -> np.ndarray:
    """One sample as ``(H, W, C)`` numpy, from ``(C, H, W)`` or ``(H, W)``."""
    a = np.asarray(t.detach().cpu().numpy() if hasattr(t, "detach") else t, dtype=float)
    if a.ndim == 2:
        return a[:, :, None]
    if a.ndim == 3:
        return np.transpose(a, (1, 2, 0))
    raise ValueError(f"expected an image of shape (C, H, W) or (H, W), got {a.shape}.")


def plot_attribution_grid(
    images,
    attributions: Mapping[str, Any],
    method: str = "heat_map",
    sign: str = "all",
    image_range: tuple[float, float] | None = (-1.0, 1.0),
    show_colorbar: bool = False,
    titles: Sequence[str] | None = None,
    cell_size: float = 1.8,
    outlier_perc: float = 2,
    shared_colorbar: bool = False,
    caption: str | None = None,
):
    """Attribution maps: rows are samples, columns methods.

    Each cell is drawn with Captum's ``visualize_image_attr(...,
    plt_fig_axis=(fig, ax), use_pyplot=False)``. An all-zero map (which Captum
    cannot normalise) is drawn as a blank panel labelled "all zero" instead of
    raising.

    Args:
        images: ``(B, C, H, W)`` tensor/array of inputs (used for blended methods
            and the first column).
        attributions: ``method label -> (B, C, H, W)`` attributions
            (``(B, H, W)`` is taken as one channel).
        method: Captum's visualisation method (``"heat_map"``,
            ``"blended_heat_map"``, ``"masked_image"``, ...), passed to
            ``visualize_image_attr``.
        sign: ``"all"``, ``"positive"``, ``"negative"`` or
            ``"absolute_value"``, passed on.
        image_range: the value range of ``images`` (rescaled to [0, 1] and
            clipped for display); ``None`` leaves them as they are.
        show_colorbar: passed on.
        titles: optional row labels (one per sample).
        cell_size: inches per panel.
        outlier_perc: percentile of the largest values clipped by Captum's
            normalisation, passed on.
        shared_colorbar: one colour bar for the figure, on the right: the
            scale every heat map is drawn with (Captum divides each map by its
            own largest absolute value after clipping ``outlier_perc``, so -1
            and 1 are each map's extremes).
        caption: a line of text under the grid (e.g. the model), kept off the
            column headings.

    Returns:
        ``(fig, axes)`` with ``axes`` of shape ``(B, 1 + len(attributions))``;
        column 0 shows the input.
    """
    imgs = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, dtype=float)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    n_rows, n_cols = imgs.shape[0], 1 + len(attributions)
    fig = Figure(figsize=(cell_size * n_cols, cell_size * n_rows))
    axes = np.empty((n_rows, n_cols), dtype=object)
    for r in range(n_rows):
        for c in range(n_cols):
            axes[r, c] = fig.add_subplot(n_rows, n_cols, r * n_cols + c + 1)
    for r in range(n_rows):
        img = _hwc(imgs[r])
        if image_range is not None:
            lo, hi = image_range
            img = np.clip((img - lo) / (hi - lo), 0.0, 1.0)
        ax = axes[r, 0]
        ax.imshow(
            img[:, :, 0] if img.shape[2] == 1 else img, cmap="gray" if img.shape[2] == 1 else None, vmin=0, vmax=1
        )
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title("input", fontsize="small")
        if titles is not None:
            ax.set_ylabel(str(titles[r]), fontsize="small")
        for c, (label, attr) in enumerate(attributions.items(), start=1):
            ax = axes[r, c]
            a = _hwc(attr[r])
            note = None
            if not np.all(np.isfinite(a)):
                note = "non-finite"
            elif not np.any(np.abs(a) > 0):
                note = "all zero"
            else:
                try:
                    viz.visualize_image_attr(
                        a,
                        original_image=img,
                        method=method,
                        sign=sign,
                        plt_fig_axis=(fig, ax),
                        show_colorbar=show_colorbar,
                        outlier_perc=outlier_perc,
                        use_pyplot=False,
                    )
                except AssertionError:  # e.g. sign="positive" on an all-negative map
                    ax.clear()
                    note = f"no {sign} values"
            if note is not None:
                ax.imshow(np.zeros(a.shape[:2]), cmap="gray", vmin=-1, vmax=1)
                ax.text(
                    0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize="x-small", color="white"
                )
                ax.set_xticks([])
                ax.set_yticks([])
            if r == 0:
                ax.set_title(str(label), fontsize="small")
    bottom = 0.0
    if caption:
        fig.text(0.01, 0.01, str(caption), fontsize="small", ha="left", va="bottom")
        bottom = 0.25 / (cell_size * n_rows)
    if shared_colorbar:
        _shared_colorbar(fig, sign, outlier_perc, bottom)
    else:
        fig.tight_layout(rect=(0, bottom, 1, 1))
    return fig, axes


def _shared_colorbar(fig, sign: str, outlier_perc: float, bottom: float = 0.0) -> None:
    # the colour maps and ranges of captum.attr.visualization.visualize_image_attr
    cmap: Colormap | str
    if sign == "all":
        cmap, lo = LinearSegmentedColormap.from_list("RdWhGn", ["red", "white", "green"]), -1.0
    elif sign == "positive":
        cmap, lo = "Greens", 0.0
    elif sign == "negative":
        cmap, lo = "Reds", 0.0
    else:
        cmap, lo = "Blues", 0.0
    fig.tight_layout(rect=(0, bottom, 0.86, 1))
    cax = fig.add_axes((0.88, 0.15, 0.015, 0.7))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(lo, 1.0), cmap=cmap), cax=cax)
    bar.set_label(f"attribution / max |attribution|\nof each map (top {outlier_perc:g}% clipped)", fontsize="x-small")
    bar.ax.tick_params(labelsize="x-small")
