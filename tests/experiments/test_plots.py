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
    assert [t.get_text() for t in fig.texts] == ["MNIST CNN"] and not fig._suptitle
    assert axes[1, 0].get_ylabel() == "true class 7"
    fig.savefig(tmp_path / "c.png")
