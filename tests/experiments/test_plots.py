"""captum_unified.plots: Agg-safe figures with the expected structure."""

import matplotlib

matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from captum_unified import plots  # noqa: E402


def test_sensitivity_n_lines_labels_logx(tmp_path):
    ns = [1, 2, 4, 8, 16]
    res = {m: (ns, np.linspace(1, 0.2, len(ns))) for m in ["GI", "IG", "LRP", "DeepLIFT", "Occlusion-1"]}
    fig, ax = plots.plot_sensitivity_n(res, title="MLP ReLU")
    assert len(ax.get_lines()) == 5
    assert [l.get_label() for l in ax.get_lines()] == list(res)
    assert ax.get_xscale() == "log"
    assert ax.get_title() == "MLP ReLU"
    np.testing.assert_array_equal(ax.get_lines()[0].get_xdata(), ns)
    fig.savefig(tmp_path / "s.png")
    assert (tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"


def test_sensitivity_n_accepts_result_and_existing_axes():
    from matplotlib.figure import Figure

    from captum_unified.metrics import sensitivity_n

    model = torch.nn.Linear(6, 2)
    x = torch.randn(3, 6)
    attr = x * model.weight[0].detach()
    r = sensitivity_n(model, x, attr, n=[1, 2, 4], target=0, n_subsets=10)
    fig = Figure()
    axes = fig.subplots(1, 2)
    f2, ax = plots.plot_sensitivity_n({"GI": r}, ax=axes[1])
    assert f2 is fig and ax is axes[1]
    assert len(ax.get_lines()) == 1 and ax.get_xscale() == "log"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), 1.0, atol=1e-6)  # linear model


def test_region_perturbation_lines():
    steps = np.arange(10)
    fig, ax = plots.plot_region_perturbation({"IG (+)": (steps, -steps), "IG (-)": (steps, steps)})
    assert [l.get_label() for l in ax.get_lines()] == ["IG (+)", "IG (-)"]
    assert ax.get_xscale() == "linear"


def test_curve_shape_mismatch_raises():
    with pytest.raises(ValueError):
        plots.plot_sensitivity_n({"a": ([1, 2, 3], [1.0, 2.0])})


def test_attribution_grid_shape_and_all_zero(tmp_path):
    x = torch.rand(3, 1, 8, 8) * 2 - 1
    attrs = {"GI": torch.randn(3, 1, 8, 8), "zero": torch.zeros(3, 1, 8, 8), "neg": -torch.rand(3, 1, 8, 8)}
    fig, axes = plots.plot_attribution_grid(x, attrs, titles=["a", "b", "c"])
    assert axes.shape == (3, 4)
    assert axes[0, 1].get_title() == "GI" and axes[0, 2].get_title() == "zero"
    assert any(t.get_text() == "all zero" for t in axes[1, 2].texts)
    fig.savefig(tmp_path / "g.png")
    # sign="positive" on an all-negative map is handled too
    fig, axes = plots.plot_attribution_grid(x[:1], {"neg": attrs["neg"][:1]}, sign="positive")
    assert axes.shape == (1, 2)
    fig.savefig(tmp_path / "g2.png")


def test_no_pyplot_figures_left_open():
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    plots.plot_sensitivity_n({"a": ([1, 2], [1.0, 0.5])})
    plots.plot_attribution_grid(torch.zeros(1, 1, 4, 4), {"z": torch.ones(1, 1, 4, 4)})
    assert len(plt.get_fignums()) == before


def test_ig_under_deeplift_stays_visible_and_legend_outside(tmp_path):
    n, y = [1, 10, 100], [0.9, 0.92, 0.95]
    fig, ax = plots.plot_sensitivity_n({"Integrated Gradients": (n, y), "DeepLIFT (Rescale)": (n, y)}, legend=False)
    ig, dl = ax.get_lines()
    assert ig.get_linestyle() == "-" and dl.get_linestyle() == "--"  # DeepLIFT dashed over IG
    assert ig.get_linewidth() > 2 * dl.get_linewidth() and dl.get_markerfacecolor() == "none"
    assert dl.get_zorder() > ig.get_zorder() and ax.get_legend() is None
    leg = plots.legend_outside(fig, [ax])
    assert [t.get_text() for t in leg.get_texts()] == ["Integrated Gradients", "DeepLIFT (Rescale)"]
    assert leg.axes is None  # a figure legend, off the panels' curves
    _, ax2 = plots.plot_sensitivity_n({"IG": (n, y)}, legend="outside")
    assert ax2.get_legend() is not None


def test_attribution_grid_shared_colorbar_and_caption(tmp_path):
    x = torch.rand(2, 1, 8, 8) * 2 - 1
    fig, axes = plots.plot_attribution_grid(
        x,
        {"GI": torch.randn(2, 1, 8, 8)},
        titles=["true class 3", "true class 7"],
        shared_colorbar=True,
        caption="MNIST CNN",
    )
    assert axes.shape == (2, 2) and len(fig.axes) == 5  # one colour bar for the figure
    # the caption is the figure's title, above the column headings (no stray text in a corner)
    assert fig._suptitle is not None and fig.texts == [fig._suptitle] and fig._suptitle.get_text() == "MNIST CNN"
    assert fig._suptitle.get_position()[1] > max(ax.get_position().y1 for ax in axes.ravel())
    assert axes[1, 0].get_ylabel() == "true class 7"
    # the colour bar says how each map is scaled, as the docs' captions do (plots.scale_note)
    bar = fig.axes[-1]
    label = bar.get_ylabel()
    assert "98% of its total |attribution| lies below t" in label and "clipped to [-1, 1]" in label
    assert "98% of the map's total absolute attribution lies" in plots.scale_note(2)
    lo, hi = bar.get_ylim()
    assert (lo, hi) == (-1.0, 1.0)
    fig.savefig(tmp_path / "c.png")


def _rgb(ax, row, col):
    """The colour a heat map draws at one pixel (its data through its norm and colour map)."""
    im = ax.images[-1]
    return np.asarray(im.get_cmap()(im.norm(im.get_array()[row, col])))[:3]


def test_attribution_maps_red_positive_blue_negative():
    """The papers' convention (Ancona et al. §1): red raises the target output,
    blue lowers it; read from the drawn image's data and colour map."""
    a = torch.zeros(1, 1, 6, 6)
    a[0, 0, 1, 1], a[0, 0, 4, 4] = 2.0, -2.0
    fig, axes = plots.plot_attribution_grid(torch.zeros(1, 1, 6, 6), {"m": a})
    ax = axes[0, 1]
    pos, neg, zero = _rgb(ax, 1, 1), _rgb(ax, 4, 4), _rgb(ax, 0, 0)
    np.testing.assert_allclose(pos, [1, 0, 0], atol=1e-6)  # red
    np.testing.assert_allclose(neg, [0, 0, 1], atol=1e-6)  # blue
    np.testing.assert_allclose(zero, [1, 1, 1], atol=0.01)  # white
    # one map alone, and the signed parts
    _, ax = plots.plot_attribution_map(a[0], sign="positive")
    assert _rgb(ax, 1, 1)[0] > _rgb(ax, 1, 1)[2]  # Reds
    _, ax = plots.plot_attribution_map(a[0], sign="negative")
    assert _rgb(ax, 4, 4)[2] > _rgb(ax, 4, 4)[0]  # Blues


def test_attribution_map_scale_is_captums_cumulative_threshold():
    """scale_note's words: each map is divided by t, the |attribution| below
    which 98% of its total |attribution| lies, and clipped."""
    a = np.ones((10, 10))
    a[0, 0] = 1000.0  # an outlier holding most of the mass
    _, ax = plots.plot_attribution_map(torch.tensor(a))
    shown = np.asarray(ax.images[-1].get_array())
    vals = np.sort(np.abs(a).ravel())
    cum = np.cumsum(vals)
    t = vals[np.flatnonzero(cum >= 0.98 * cum[-1])[0]]
    np.testing.assert_allclose(shown, np.clip(a / t, -1, 1))


_METHODS = ["Gradient * Input", "Integrated Gradients", "ε-LRP", "DeepLIFT (Rescale)", "Occlusion-1"]
_NS = [1, 2, 3, 6, 10, 19, 34, 60, 108, 194, 349, 627]


def test_every_curve_distinguishable_where_they_coincide():
    """Curves that coincide (Ancona's Prop. 4: all methods equal) stay apart:
    each method its own colour, marker and line style, and the markers of each
    curve at points no other curve has a marker on."""
    same = np.linspace(1.0, 0.97, len(_NS))
    _, ax = plots.plot_sensitivity_n({m: (_NS, same) for m in _METHODS}, legend=False)
    lines = ax.get_lines()
    styles = {(l.get_color(), l.get_marker(), str(l.get_linestyle())) for l in lines}
    assert len(styles) == len(_METHODS)
    assert len({l.get_marker() for l in lines}) == len(_METHODS)
    assert len({str(l.get_linestyle()) for l in lines}) >= 4
    marked = []
    for l in lines:
        start, step = l.get_markevery()
        marked.append(set(range(start, len(_NS), step)))
        assert marked[-1], l.get_label()
    for i in range(len(marked)):
        for j in range(i + 1, len(marked)):
            assert not marked[i] & marked[j], (lines[i].get_label(), lines[j].get_label())


def test_sensitivity_axis_zooms_when_all_curves_near_one():
    """Issue 21: with a fixed 0-1 axis every curve near 1 sits on the top frame.
    All points above ZOOM_FROM: the axis is zoomed to them and says so."""
    curves = {m: (_NS, np.linspace(0.999, 0.96 + 0.005 * i, len(_NS))) for i, m in enumerate(_METHODS)}
    _, ax = plots.plot_sensitivity_n(curves, legend=False)
    lo, hi = ax.get_ylim()
    assert lo > 0.9 and hi < 1.01 and "zoomed" in ax.get_ylabel()
    for l in ax.get_lines():
        y = np.asarray(l.get_ydata())
        assert y.min() > lo and y.max() < hi
    # the distance between two curves is a visible share of the axis (not a hair at the top)
    assert 0.005 / (hi - lo) > 0.05
    # flat curves at exactly 1 (the linear model) sit inside the window, not on its frame
    _, ax = plots.plot_sensitivity_n({m: (_NS, np.ones(len(_NS))) for m in _METHODS}, legend=False)
    lo, hi = ax.get_ylim()
    assert lo < 1.0 < hi and (hi - 1.0) / (hi - lo) > 0.1


def test_sensitivity_axis_holds_negative_points_and_insets_the_cluster_near_one():
    """The quick LSTM panel's epsilon-LRP went below the axis; a curve far below
    a cluster near 1 gets an inset that zooms on the cluster."""
    near = {m: (_NS, np.linspace(0.999, 0.95 - 0.01 * i, len(_NS))) for i, m in enumerate(_METHODS[:4])}
    low = np.full(len(_NS), 0.1)
    low[3] = -0.2
    _, ax = plots.plot_sensitivity_n({**near, "Occlusion-1": (_NS, low)}, legend=False)
    lo, hi = ax.get_ylim()
    assert lo < -0.2 and hi >= 1.0 and "zoomed" not in ax.get_ylabel()
    assert len(ax.child_axes) == 1
    inset = ax.child_axes[0]
    assert inset.get_yscale() == "linear" and inset.get_xscale() == "log"
    ilo, ihi = inset.get_ylim()
    assert ilo > 0.85 and ihi < 1.01  # zoomed on the four curves near 1
    assert len(inset.get_lines()) == 4
    for line, (_, (_, y)) in zip(inset.get_lines(), near.items()):
        np.testing.assert_allclose(line.get_ydata(), y)
    # the inset lies in a band no curve of the main axes enters
    y0, y1 = inset.get_position().y0, inset.get_position().y1
    box = ax.get_position()
    for l in ax.get_lines():
        frac = (np.asarray(l.get_ydata()) - lo) / (hi - lo)
        inside = (frac * box.height + box.y0 > y0) & (frac * box.height + box.y0 < y1)
        assert not inside.any(), l.get_label()
    # no inset when nothing lies far below (the main axis shows the curves apart)
    spread = {m: (_NS, np.linspace(0.95, 0.6 + 0.05 * i, len(_NS))) for i, m in enumerate(_METHODS)}
    _, ax = plots.plot_sensitivity_n(spread, legend=False)
    assert not ax.child_axes


def test_legend_in_free_axes_near_the_panels():
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 6))
    axes = fig.subplots(2, 2)
    for i, ax in enumerate(axes.ravel()[:3]):
        plots.plot_sensitivity_n({m: (_NS, np.linspace(1, 0.5, len(_NS))) for m in _METHODS[: 3 + i % 2]}, ax=ax)
        ax.get_legend().remove()
    free = axes[1, 1]
    free.set_visible(False)
    leg = plots.legend_in_free_axes(fig, axes.ravel()[:3], free)
    assert leg.axes is free and free.get_visible() and not free.axison
    assert [t.get_text() for t in leg.get_texts()] == _METHODS[:4]
    assert leg.get_texts()[0].get_fontsize() >= 10
    fig2 = Figure()
    ax = fig2.add_subplot(1, 1, 1)
    plots.plot_sensitivity_n({m: (_NS, np.ones(len(_NS))) for m in _METHODS}, ax=ax, legend=False)
    leg = plots.legend_in_free_axes(fig2, [ax])  # no free slot: above the panels
    assert leg.axes is None and leg.get_bbox_to_anchor().y0 > ax.get_position().y1 * fig2.bbox.height * 0.9


def test_region_perturbation_styles_and_error_band():
    steps = np.arange(10)
    curves = {
        "Integrated Gradients (+)": (steps, -steps, np.full(10, 0.5)),
        "Integrated Gradients (-)": (steps, steps, np.full(10, 0.5)),
        "Occlusion-1 (+)": (steps, -1.1 * steps),
    }
    _, ax = plots.plot_region_perturbation(curves)
    ig_p, ig_m, occ_p = ax.get_lines()
    assert ig_p.get_color() == ig_m.get_color() != occ_p.get_color()
    assert ig_p.get_linestyle() == "-" and ig_m.get_linestyle() == "--"
    assert len(ax.collections) == 2  # one band per curve with an error
    steps = np.arange(80)
    same = {
        f"{m} ({o})": (steps, -steps if o == "+" else steps)
        for m in ("Integrated Gradients", "Occlusion-1")
        for o in "+-"
    }
    _, ax = plots.plot_region_perturbation(same)
    marked = [set(range(*l.get_markevery()[:1], 80, l.get_markevery()[1])) for l in ax.get_lines()]
    assert not marked[0] & marked[2] and not marked[1] & marked[3]  # IG's and Occlusion-1's markers apart
    with pytest.raises(ValueError, match="differs in shape"):
        plots.plot_region_perturbation({"a (+)": (steps, steps, np.ones(3))})


def test_results_page_captions_say_what_the_colour_bar_says():
    """Issue 20: the caption said "largest absolute value", the colour bar "top 2%
    clipped". The results page's map captions use plots.scale_note's words."""
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "pages" / "50_results.rst").read_text()
    flat = re.sub(r"\s+", " ", page)
    assert plots.scale_note(2) in flat
    # Deng's Figure 4 scales each map by its own largest absolute value, unclipped
    # (experiments/deng/plots.py), and its caption says so; no other caption does
    fig4 = re.search(r"deng_figure4\.png.*?Files:", flat).group(0)
    assert "divided by its own largest absolute value (no clipping)" in fig4
    assert "largest absolute value" not in flat.replace(fig4, "")
