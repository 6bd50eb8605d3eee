"""Deng's figures read back from the drawn artists (captum_unified.experiments.deng.plots):
what is plotted where, in which colour, and that nothing hides anything else."""

import math

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.image import AxesImage
from matplotlib.patches import Rectangle

from captum_unified.experiments import findings
from captum_unified.experiments.deng import plots
from captum_unified.experiments.deng.protocol import PRINCIPLES

METHODS = ("GI", "Occ-1", "Occ-p", "DL", "IG", "EG", "EG (data)")


def _rows(models=("M-sg", "C-sg", "C-sp"), key="infidelity_scaled"):
    rows = []
    for k, model in enumerate(models):
        for j, m in enumerate(METHODS):
            rows.append({"model": model, "method": m, "principles": sum(PRINCIPLES[m]), key: (k + 1) * (j + 2) / 10})
    return rows


def _scatter(ax, gid):
    found = [c for c in ax.collections if isinstance(c, PathCollection) and c.get_gid() == gid]
    assert len(found) == 1, gid
    return found[0]


def test_principles_figure_places_every_method_apart_and_lines_through_group_means():
    rows = _rows()
    fig = plots.principles_figure(rows, ["infidelity_scaled"], ["y"], ["t"])
    ax = fig.axes[0]
    for model in ("M-sg", "C-sg", "C-sp"):
        xy = {m: _scatter(ax, f"{model} {m}").get_offsets()[0] for m in METHODS}
        for m in METHODS:  # each point's value and count, in the paper's marker per method
            r = next(r for r in rows if r["model"] == model and r["method"] == m)
            assert xy[m][1] == pytest.approx(r["infidelity_scaled"])
            assert abs(xy[m][0] - r["principles"]) < 0.25
        # Occ-1 and Occ-p share 0.5 principles: drawn side by side, not on one vertical
        assert xy["Occ-p"][0] - xy["Occ-1"][0] >= 0.15
        assert xy["EG (data)"][0] > xy["EG"][0]
        # the model's line: one point per count, at the geometric mean of that count's methods
        line = next(ln for ln in ax.lines if ln.get_gid() == f"trend {model}")
        xs, ys = line.get_data()
        assert len(xs) == 5  # counts 0, 0.5, 1, 2, 3
        occ = [r["infidelity_scaled"] for r in rows if r["model"] == model and r["method"] in ("Occ-1", "Occ-p")]
        assert ys[1] == pytest.approx(math.sqrt(occ[0] * occ[1]))
        assert xy["Occ-1"][0] < xs[1] < xy["Occ-p"][0]
        assert all(b > a for a, b in zip(xs, xs[1:]))  # no vertical segment
    # different models do not share an x position
    assert len({float(_scatter(ax, f"{m} DL").get_offsets()[0][0]) for m in ("M-sg", "C-sg", "C-sp")}) == 3
    # the paper's markers: six distinct shapes (circle, triangles down/up, square, diamond, star)
    assert len({plots.MARKERS[m] for m in METHODS[:6]}) == 6
    # colours per model; the legend carries each model's Spearman rho and its permutation p
    assert to_rgba(_scatter(ax, "C-sp GI").get_facecolor()[0]) == to_rgba(plots.COLORS["C-sp"])
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    xs = [sum(PRINCIPLES[m]) for m in METHODS[:6]]
    ys = [r["infidelity_scaled"] for r in rows if r["model"] == "M-sg" and r["method"] in METHODS[:6]]
    rho, p = findings.spearman_test(xs, ys)
    assert f"M-sg: rho {rho:+.2f}, p {p:.2g}" in labels


def test_chance_line_inside_the_frame():
    rows = [{**r, "bbox_accuracy": 0.3 + 0.01 * i} for i, r in enumerate(_rows(("Loc-CNN",), "bbox_accuracy"))]
    fig = plots.principles_figure(rows, ["bbox_accuracy"], ["y"], ["t"], log=False, chance=0.1)
    ax = fig.axes[0]
    chance = [ln for ln in ax.lines if ln.get_linestyle() == ":"]
    assert len(chance) == 1 and chance[0].get_ydata()[0] == pytest.approx(0.1)
    lo, hi = ax.get_ylim()
    assert lo < 0.1 - 0.01 and hi > 0.36  # the line and every point inside, not on the frame


def test_saliency_figure_red_positive_blue_negative_each_map_scaled():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 8, 8)
    maps = {"A": torch.randn(2, 1, 8, 8), "B": torch.zeros(2, 1, 8, 8)}
    maps["A"][0, 0, 0, 0] = 5.0  # the largest |value| of sample 0
    boxes = torch.tensor([[1, 2, 5, 6], [0, 0, 3, 3]])
    fig = plots.saliency_figure(x, maps, boxes=boxes, row_titles=["r0", "r1"], caption="cap")
    axes = [ax for ax in fig.axes if ax.images]
    assert len(axes) == 2 * 3  # input + two methods per row
    img = axes[1].images[0]
    assert isinstance(img, AxesImage)
    assert np.allclose(img.get_array(), (maps["A"][0, 0] / 5.0).numpy())
    assert img.get_clim() == (-1.0, 1.0)
    red, blue, white = img.cmap(1.0), img.cmap(0.0), img.cmap(0.5)
    assert red[0] > 0.9 and red[2] < 0.1 and blue[2] > 0.9 and blue[0] < 0.1 and min(white[:3]) > 0.95
    assert np.allclose(axes[2].images[0].get_array(), 0)  # an all-zero map stays 0 (white), labelled
    assert any(t.get_text() == "all zero" for t in axes[2].texts)
    for ax in axes[:3]:  # the box on every panel of the row
        rect = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(rect) == 1 and rect[0].get_xy() == (1.5, 0.5) and rect[0].get_width() == 4
    assert [axes[j].get_title() for j in range(3)] == ["input", "A", "B"]
    bar = [ax for ax in fig.axes if not ax.images and ax.get_ylabel()]
    assert bar and "largest |value|" in bar[0].get_ylabel()


def _overlaps(labels, renderer):
    boxes = [t.get_window_extent(renderer) for t in labels if t.get_visible() and t.get_text()]
    return [(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :] if a.overlaps(b)]


def test_table3_figure_bars_and_no_overlapping_tick_labels():
    table3 = [
        {"model": m, "method": me, "d_percent": v}
        for m in ("Poly", "M-sg", "C-sg")
        for me, v in zip(plots.TABLE3_METHODS, (0.0, 0.001, 0.05, 1.0, 2.0, 9.0))
    ]
    infid = [
        {"model": m, "order": o, "infidelity_scaled": s, "infidelity_unscaled": s * 1.5}
        for m in ("C-sg", "C-sp")
        for o, s in ((1, 0.57), (2, 0.36))
    ]
    fig = plots.table3_figure(table3, infid)
    ax1, ax2 = fig.axes
    heights = [b.get_height() for b in ax1.patches]
    assert heights[:6] == pytest.approx([1e-13, 0.001, 0.05, 1.0, 2.0, 9.0])  # 0 drawn at the floor
    ratios = [b.get_height() for b in ax2.patches]
    assert ratios == pytest.approx([0.36 / 0.57] * 4)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    for ax in (ax1, ax2):
        assert not _overlaps(ax.get_yticklabels(which="both"), renderer)
        assert not _overlaps(ax.get_xticklabels(), renderer)
