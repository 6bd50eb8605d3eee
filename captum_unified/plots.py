r"""Plots for attribution evaluations (matplotlib, safe under the ``Agg`` backend).

* :func:`plot_sensitivity_n` — Sensitivity-n curves, one line per method, on a
  log ``n`` axis (Ancona et al. 2018, Figure 4).
* :func:`plot_region_perturbation` — region-perturbation curves (Samek et al.
  2016; Ancona et al. 2018, Figure 3c).
* :func:`plot_attribution_map` — one attribution map, red positive and blue
  negative (the papers' colours), scaled as :func:`scale_note` says.
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
from matplotlib.lines import Line2D

__all__ = [
    "plot_sensitivity_n",
    "plot_region_perturbation",
    "plot_attribution_grid",
    "plot_attribution_map",
    "legend_outside",
    "legend_in_free_axes",
    "method_handles",
    "auto_ylim",
    "scale_note",
    "SIGN_CMAPS",
    "ZOOM_FROM",
]

#: Colour, marker and line style per known method label (any case; others use the
#: default cycle). Every method has its own line style as well as its own colour
#: and marker, so curves that coincide stay apart by their markers (drawn at
#: staggered points, see :func:`plot_sensitivity_n`) and dashes: IG is a thick
#: solid line, DeepLIFT a thin dashed line with open markers on top of it,
#: Occlusion-1 dotted, epsilon-LRP dash-dotted, Gradient * Input thin solid.
_STYLE = {
    "gradient * input": ("tab:blue", "o", "-"),
    "gradient*input": ("tab:blue", "o", "-"),
    "gi": ("tab:blue", "o", "-"),
    "integrated gradients": ("tab:orange", "s", "-"),
    "ig": ("tab:orange", "s", "-"),
    "ε-lrp": ("tab:green", "^", "-."),
    "epsilon-lrp": ("tab:green", "^", "-."),
    "lrp": ("tab:green", "^", "-."),
    "deeplift (rescale)": ("tab:red", "v", "--"),
    "deeplift": ("tab:red", "v", "--"),
    "occlusion-1": ("tab:purple", "D", ":"),
    "occlusion1": ("tab:purple", "D", ":"),
    "deeplift (rescale), ordinary products": ("tab:brown", "P", (0, (5, 1, 1, 1, 1, 1))),
    "deeplift (ordinary products)": ("tab:brown", "P", (0, (5, 1, 1, 1, 1, 1))),
}
_IG = ("integrated gradients", "ig")
_DL = ("deeplift (rescale)", "deeplift")
_OCC = ("occlusion-1", "occlusion1")

#: Curves whose every point lies at or above this correlation count as "near 1":
#: a panel whose curves all do is zoomed, and where at least two do while another
#: curve lies far below, an inset zooms on the ones near 1.
ZOOM_FROM = 0.8


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
        x, y = value[0], value[1]
    x = np.asarray(x.detach().cpu() if hasattr(x, "detach") else x, dtype=float)
    y = np.asarray(y.detach().cpu() if hasattr(y, "detach") else y, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"x and y of a curve differ in shape: {x.shape} vs {y.shape}.")
    return x, y


def _style(label: str, i: int, n_curves: int = 1, n_points: int = 0) -> dict:
    """Line style of curve ``i`` of ``n_curves``; with ``n_points`` given, the
    markers of curve ``i`` sit on every ``n_curves``-th point starting at point
    ``i`` (staggered), so curves that coincide still show every marker."""
    key = str(label).lower()
    c = _STYLE.get(key)
    if c is None:
        linestyles = ("-", "--", "-.", ":")
        style = {"color": f"C{i % 10}", "marker": "o", "linestyle": linestyles[i % 4], "markersize": 5}
    else:
        style = {"color": c[0], "marker": c[1], "linestyle": c[2], "markersize": 5, "linewidth": 1.4}
    style.setdefault("linewidth", 1.4)
    if key in _IG:
        style.update(linewidth=3.0, markersize=7, alpha=0.8, zorder=2)
    elif key in _DL:
        style.update(linewidth=1.2, markersize=7, markerfacecolor="none", markeredgewidth=1.3, zorder=4)
    elif key in _OCC:
        style.update(linewidth=1.8, zorder=3)
    else:
        style.setdefault("zorder", 3)
    if n_curves > 1 and n_points >= 2 * n_curves:
        style["markevery"] = (i % n_curves, n_curves)
    return style


def method_handles(labels: Sequence[str]) -> list:
    """Legend handles (line, marker and colour) for the method ``labels``, drawn
    as :func:`plot_sensitivity_n` draws them."""
    handles = []
    for i, lab in enumerate(labels):
        st = {k: v for k, v in _style(lab, i).items() if k not in ("zorder", "markevery")}
        handles.append(Line2D([], [], label=str(lab), **st))
    return handles


def legend_outside(fig, axes, ncol: int | None = None, **kw):
    """One legend for the whole figure, below the panels (off every curve);
    entries are the unique labels of ``axes``. Returns the legend."""
    handles, labels = _unique_handles(axes)
    return fig.legend(
        handles, labels, loc="lower center", ncol=ncol or max(1, len(labels)), frameon=False, fontsize="small", **kw
    )


def _unique_handles(axes) -> tuple[list, list]:
    handles, labels = [], []
    for ax in np.atleast_1d(axes).ravel():
        if ax is None:
            continue
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels and not lab.startswith("_"):
                handles.append(h)
                labels.append(lab)
    return handles, labels


def legend_in_free_axes(fig, axes, free_ax=None, title: str | None = None, fontsize: str = "medium"):
    """One legend for a grid of panels, placed where the reader looks for it:
    in ``free_ax`` (an unused slot of the grid, turned into a blank panel), else
    above the first row. Entries are the unique labels of ``axes``, drawn as
    large as the panels' own text. Returns the legend."""
    handles, labels = _unique_handles(axes)
    if free_ax is not None:
        free_ax.set_visible(True)
        free_ax.axis("off")
        return free_ax.legend(
            handles, labels, loc="center", frameon=True, fontsize=fontsize, title=title, handlelength=3.5
        )
    return fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.955),
        ncol=min(len(labels), 3),
        frameon=False,
        fontsize=fontsize,
        title=title,
        handlelength=3.5,
    )


def _finite(ys: Sequence[np.ndarray]) -> np.ndarray:
    v = np.concatenate([np.asarray(y, dtype=float).ravel() for y in ys]) if ys else np.array([])
    return v[np.isfinite(v)]


def auto_ylim(ys: Sequence[np.ndarray]) -> tuple[tuple[float, float], bool]:
    """y limits for correlation curves: ``((lo, hi), zoomed)``.

    The axis always holds every finite point. When every point lies at or above
    :data:`ZOOM_FROM` the axis is zoomed to the points (padded by 8% of their
    range; (nearly) flat curves: a 0.012-wide window whose top is 0.002 above them): curves near 1
    can then be told apart; otherwise it spans from ``min(0, lowest point)``
    to ``max(1, highest point)``, padded by 0.05."""
    v = _finite(ys)
    if v.size == 0:
        return (-0.05, 1.05), False
    lo, hi = float(v.min()), float(v.max())
    if lo >= ZOOM_FROM:
        if hi - lo < 0.01:  # (nearly) flat: a 0.012-wide window, the curves a sixth below its top
            top = hi + 0.002
            return (top - 0.012, top), True
        pad = 0.08 * (hi - lo)
        return (lo - pad, hi + pad), True
    return (min(lo, 0.0) - 0.05, max(hi, 1.0) + 0.05), False


def _inset_band(ax, curves: dict, ylim: tuple[float, float]) -> tuple[float, float] | None:
    """The largest horizontal band of ``ax`` (axes fraction, bottom and height)
    that no curve enters, if it is at least a third of the height."""
    lo, hi = ylim
    spans = sorted(
        ((float(np.nanmin(y)) - lo) / (hi - lo), (float(np.nanmax(y)) - lo) / (hi - lo))
        for _, y in curves.values()
        if np.isfinite(y).any()
    )
    best, edge = (0.0, 0.0), 0.0
    for a, b in spans:
        if a - edge > best[1]:
            best = (edge, a - edge)
        edge = max(edge, b)
    if 1.0 - edge > best[1]:
        best = (edge, 1.0 - edge)
    return best if best[1] >= 1 / 3 else None


def plot_sensitivity_n(
    results: Mapping[str, Any],
    ax=None,
    title: str | None = None,
    ylim: tuple[float, float] | None | Literal["auto"] = "auto",
    legend: bool | Literal["outside"] = True,
    inset: bool = True,
):
    """Sensitivity-n curves as in Ancona et al. (2018), Figure 4.

    Args:
        results: ``method label -> (n_list, mean_correlation)`` or
            ``method label -> SensitivityNResult`` (its ``n`` and ``mean`` are
            used). Known labels (``"Gradient * Input"``/``"Gradient*Input"``/``"GI"``,
            ``"Integrated Gradients"``/``"IG"``, ``"ε-LRP"``/``"epsilon-LRP"``/``"LRP"``,
            ``"DeepLIFT (Rescale)"``/``"DeepLIFT"``, ``"Occlusion-1"``; any
            case) get a fixed colour, marker and line style; others follow
            the default colour cycle with alternating line styles.
        ax: a matplotlib ``Axes`` to draw on; default a new figure (not pyplot-managed).
        title: axes title.
        ylim: ``"auto"`` (default, :func:`auto_ylim`: every point inside, zoomed
            when all curves lie near 1; the y label then says "zoomed"), a
            ``(low, high)`` pair, or ``None`` (matplotlib's limits).
        legend: draw a legend (``True``), outside the axes on the right
            (``"outside"``) or none (``False``; e.g. one for the figure with
            :func:`legend_in_free_axes`).
        inset: with ``ylim="auto"``, when at least two curves lie near 1
            (every point at or above :data:`ZOOM_FROM`) and another lies far
            below (all its points more than 0.3 below the lowest of them),
            draw those near 1 again in an inset with a zoomed y axis,
            placed in the largest band of the axes no curve enters (no inset
            when that band is under a third of the height).

    Returns:
        ``(fig, ax)``. The x axis (``n``, the subset size) is logarithmic. NaN
        points (e.g. the per-sample mean at ``n = N``) leave a gap. Each
        curve's markers sit on every k-th point (k curves), starting at its own
        index, so curves that coincide show all their markers; IG is drawn
        thick and solid, DeepLIFT thin, dashed and with open markers on top.
        The inset, if drawn, is ``ax.child_axes[0]``.

    Raises:
        ValueError: ``n`` and the correlations of an entry differ in shape.
    """
    fig, ax = _new_axes(ax)
    curves = {str(label): _as_curve(value) for label, value in results.items()}
    k = len(curves)
    for i, (label, (x, y)) in enumerate(curves.items()):
        ax.plot(x, y, label=label, **_style(label, i, k, len(x)))
    ax.set_xscale("log")
    ax.set_xlabel("n (features removed)")
    ax.set_ylabel("Pearson correlation")
    zoomed = False
    if ylim == "auto":
        lims, zoomed = auto_ylim([y for _, y in curves.values()])
        ax.set_ylim(*lims)
        if zoomed:
            ax.set_ylabel("Pearson correlation (zoomed)")
        elif inset:
            _near_one_inset(ax, curves, lims)
    elif ylim is not None:
        ax.set_ylim(*ylim)
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    if legend == "outside" and results:
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    elif legend and results:
        ax.legend(fontsize="small")
    return fig, ax


def _near_one_inset(ax, curves: dict, lims: tuple[float, float]) -> None:
    near = {lab: xy for lab, xy in curves.items() if np.isfinite(xy[1]).any() and float(np.nanmin(xy[1])) >= ZOOM_FROM}
    if len(near) < 2 or len(near) == len(curves):
        return
    # only when a curve far below stretches the axis (else the main axis shows them apart)
    floor = min(float(np.nanmin(y)) for _, y in near.values())
    if not any(np.isfinite(y).any() and float(np.nanmax(y)) < floor - 0.3 for _, y in curves.values()):
        return
    band = _inset_band(ax, curves, lims)
    if band is None:
        return
    bottom, height = band
    sub = ax.inset_axes((0.1, bottom + 0.06 * height, 0.86, 0.8 * height))
    labels = list(curves)
    for lab, (x, y) in near.items():
        i = labels.index(lab)
        st = _style(lab, i, len(curves), len(x))
        sub.plot(x, y, **{k: v for k, v in st.items() if k != "label"})
    sub.set_xscale("log")
    sub.set_ylim(*auto_ylim([y for _, y in near.values()])[0])
    sub.tick_params(labelsize="x-small")
    sub.tick_params(axis="x", which="both", labelbottom=False)
    sub.grid(True, alpha=0.3)
    sub.set_title("zoom on the curves near 1", fontsize="x-small", pad=2)


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
        curves: ``label -> (steps, mean curve)`` or ``label -> (steps, mean
            curve, error)`` (tensors, arrays or lists of equal length; the
            error, e.g. the standard error over samples, is drawn as a band of
            ± error around the curve), e.g. ``(result.k, result.curves.mean(0))`` of a
            :class:`~captum_unified.metrics.RegionPerturbationResult`;
            ``"IG (+)"`` for most relevant first and ``"IG (-)"`` for least
            relevant first, as in Ancona et al.'s Figure 3c. A label
            ``"<method> (+)"`` / ``"<method> (-)"`` of a known method gets the
            method's colour and marker, solid for (+) and dashed for (-); each
            curve's markers start at their own point, so curves that coincide
            still show every marker.
        ax: a matplotlib ``Axes`` to draw on; default a new figure (not
            pyplot-managed).
        title: axes title.
        xlabel: x-axis label.
        ylabel: y-axis label.
        legend: draw a legend.

    Returns:
        ``(fig, ax)``, one line per entry of ``curves`` (linear axes).

    Raises:
        ValueError: the steps and the curve (or the error) of an entry differ in shape.
    """
    fig, ax = _new_axes(ax)
    for i, (label, value) in enumerate(curves.items()):
        x, y = _as_curve(value)
        base, _, sign = str(label).rpartition(" (")
        known = _STYLE.get(base.lower()) if sign in ("+)", "-)") else None
        if known is not None:
            style = {
                "color": known[0],
                "marker": known[1],
                "linestyle": "-" if sign == "+)" else "--",
                # markers on every step-th point, each curve from its own offset (coinciding curves stay apart)
                "markevery": (
                    i * max(1, len(x) // 8) // max(1, len(curves)) % max(1, len(x) // 8),
                    max(1, len(x) // 8),
                ),
                "markersize": 4,
                "linewidth": 1.6,
            }
        else:
            style = {"color": f"C{i % 10}", "linewidth": 1.4, "linestyle": ("-", "--", "-.", ":")[i % 4]}
        ax.plot(x, y, label=str(label), **style)
        if not hasattr(value, "n") and len(value) > 2 and value[2] is not None:
            err = np.asarray(value[2].detach().cpu() if hasattr(value[2], "detach") else value[2], dtype=float)
            if err.shape != y.shape:
                raise ValueError(f"the error of curve {label!r} differs in shape from it: {err.shape} vs {y.shape}.")
            ax.fill_between(x, y - err, y + err, color=style["color"], alpha=0.15, linewidth=0)
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


#: Colour maps of the attribution maps, per ``sign``, in the papers' convention
#: (Ancona et al. §1: "red color indicates features that contribute positively
#: to the activation of the target output, and blue color indicates features
#: that have a suppressing effect on it"); Captum's defaults are the reverse
#: pair green / red.
SIGN_CMAPS: dict[str, Colormap | str] = {
    "all": LinearSegmentedColormap.from_list("BuWhRd", ["blue", "white", "red"]),
    "positive": "Reds",
    "negative": "Blues",
    "absolute_value": "Purples",
}


def scale_note(outlier_perc: float = 2) -> str:
    """How :func:`plot_attribution_grid` scales each map (Captum's
    ``visualize_image_attr`` normalisation), in words: the colour bar, the
    reports and the docs' captions use this sentence, so they say the same."""
    keep = 100 - outlier_perc
    return (
        f"each map is divided by its own scale t and clipped to [-1, 1], t being the absolute attribution "
        f"below which {keep:g}% of the map's total absolute attribution lies (Captum's outlier_perc = "
        f"{outlier_perc:g})"
    )


def plot_attribution_map(
    attribution,
    image=None,
    ax=None,
    method: str = "heat_map",
    sign: str = "all",
    outlier_perc: float = 2,
    cmap: Colormap | str | None = None,
    show_colorbar: bool = False,
    title: str | None = None,
):
    """One attribution map, drawn with Captum's ``visualize_image_attr`` in the
    papers' colours (:data:`SIGN_CMAPS`: red raises the target output, blue
    lowers it) and scaled as :func:`scale_note` says. An all-zero or
    non-finite map (which Captum cannot normalise) is drawn as a blank panel
    saying so instead of raising.

    Args:
        attribution: ``(C, H, W)`` or ``(H, W)`` tensor/array.
        image: the input as ``(H, W, C)`` in [0, 1] (blended methods only).
        ax: the ``Axes`` to draw on; default a new figure (not pyplot-managed).
        method, sign, outlier_perc, show_colorbar: passed to ``visualize_image_attr``.
        cmap: default :data:`SIGN_CMAPS` of ``sign``.
        title: axes title.

    Returns:
        ``(fig, ax)``.
    """
    fig, ax = _new_axes(ax, figsize=(2.4, 2.4))
    cmap = cmap if cmap is not None else SIGN_CMAPS.get(sign)
    a = _hwc(attribution)
    note = None
    if not np.all(np.isfinite(a)):
        note = "non-finite"
    elif not np.any(np.abs(a) > 0):
        note = "all zero"
    else:
        try:
            viz.visualize_image_attr(
                a,
                original_image=image,
                method=method,
                sign=sign,
                plt_fig_axis=(fig, ax),
                show_colorbar=show_colorbar,
                outlier_perc=outlier_perc,
                cmap=cmap,
                use_pyplot=False,
            )
        except AssertionError:  # e.g. sign="positive" on an all-negative map
            ax.clear()
            note = f"no {sign} values"
    if note is not None:
        ax.imshow(np.zeros(a.shape[:2]), cmap="gray", vmin=-1, vmax=1)
        ax.text(0.5, 0.5, note, ha="center", va="center", transform=ax.transAxes, fontsize="x-small", color="white")
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize="small")
    return fig, ax


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
    cmap: Colormap | str | None = None,
):
    """Attribution maps: rows are samples, columns methods.

    Each cell is drawn with Captum's ``visualize_image_attr(...,
    plt_fig_axis=(fig, ax), use_pyplot=False)``, in the papers' colours: red
    raises the target output, blue lowers it (:data:`SIGN_CMAPS`; Captum's
    default is green / red). An all-zero map (which Captum cannot normalise)
    is drawn as a blank panel labelled "all zero" instead of raising.

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
        outlier_perc: Captum's normalisation (:func:`scale_note`): each map is
            divided by the absolute value below which ``100 - outlier_perc``
            percent of its total absolute attribution lies, and clipped.
        shared_colorbar: one colour bar for the figure, on the right: the
            scale every heat map is drawn with, labelled with :func:`scale_note`'s
            definition.
        caption: the figure's title, above the column headings (e.g. the model).
        cmap: colour map for every heat map; default :data:`SIGN_CMAPS` of ``sign``.

    Returns:
        ``(fig, axes)`` with ``axes`` of shape ``(B, 1 + len(attributions))``;
        column 0 shows the input.
    """
    cmap = cmap if cmap is not None else SIGN_CMAPS.get(sign)
    imgs = np.asarray(images.detach().cpu().numpy() if hasattr(images, "detach") else images, dtype=float)
    if imgs.ndim == 3:
        imgs = imgs[:, None]
    n_rows, n_cols = imgs.shape[0], 1 + len(attributions)
    top_room = 0.45 if caption else 0.0
    fig = Figure(figsize=(cell_size * n_cols + (1.6 if shared_colorbar else 0.0), cell_size * n_rows + top_room))
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
            plot_attribution_map(
                attr[r],
                image=img,
                ax=ax,
                method=method,
                sign=sign,
                outlier_perc=outlier_perc,
                cmap=cmap,
                show_colorbar=show_colorbar,
            )
            if r == 0:
                ax.set_title(str(label), fontsize="small")
    top = 1.0
    if caption:
        fig.suptitle(str(caption), fontsize="medium")
        top = 1.0 - top_room / (cell_size * n_rows + top_room)
    if shared_colorbar:
        _shared_colorbar(fig, sign, outlier_perc, cmap, top)
    else:
        fig.tight_layout(rect=(0, 0, 1, top))
    return fig, axes


def _shared_colorbar(fig, sign: str, outlier_perc: float, cmap, top: float = 1.0) -> None:
    # the value ranges of captum.attr.visualization.visualize_image_attr
    lo = -1.0 if sign == "all" else 0.0
    width = fig.get_figwidth()
    right = 1.0 - 1.6 / width
    fig.tight_layout(rect=(0, 0, right, top))
    cax = fig.add_axes((right + 0.2 / width, 0.12, 0.18 / width, 0.7 * top))
    bar = fig.colorbar(ScalarMappable(norm=Normalize(lo, 1.0), cmap=cmap), cax=cax)
    what = {"all": "attribution", "positive": "positive part", "negative": "-(negative part)"}
    bar.set_label(
        f"{what.get(sign, '|attribution|')} / t, clipped to [{lo:g}, 1]\n"
        f"t: per map, {100 - outlier_perc:g}% of its total |attribution| lies below t",
        fontsize="small",
    )
    bar.ax.tick_params(labelsize="x-small")
