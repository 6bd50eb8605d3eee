"""The token-deletion figure of ``reproduce transformers``."""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from captum_unified.experiments.language_models.tasks import MODELS

# ----------------------------------------------------------------- figure
#: Colour, marker and line style of each method in the figure (distinguishable without colour).
STYLES: dict[str, tuple[str, str, str]] = {
    "deeplift": ("#d62728", "o", "-"),
    "lrp_uniform": ("#1f77b4", "s", "-"),
    "lrp_gate": ("#17becf", "D", "--"),
    "gi": ("#7f7f7f", "v", ":"),
    "lig16": ("#bcbd22", "^", "-."),
    "lig64": ("#2ca02c", "<", "--"),
    "lig256": ("#006400", ">", "-"),
    "feature_ablation": ("#9467bd", "x", "-."),
    "lxt_attnlrp": ("#ff7f0e", "*", "-"),
    "lxt_cplrp": ("#8c564b", "P", "--"),
}


def deletion_figure(curves: list[dict], path: Path) -> Path:
    """The deletion curves of ``transformers_deletion.csv``: one column per model, MoRF on
    top, LeRF below; each method its own colour, marker and line style."""
    models = list(dict.fromkeys(r["model"] for r in curves))
    fig = Figure(figsize=(4.2 * len(models), 7.2), constrained_layout=True)
    axes = fig.subplots(2, len(models), squeeze=False)
    for j, model in enumerate(models):
        for i, order in enumerate(("MoRF", "LeRF")):
            ax = axes[i][j]
            rows = [r for r in curves if r["model"] == model and r["order"] == order]
            for method in dict.fromkeys(r["method"] for r in rows):
                pts = [r for r in rows if r["method"] == method]
                xs = [float(r["fraction_removed"]) for r in pts]
                ys = [float(r["mean_change"]) for r in pts]
                color, marker, ls = STYLES.get(method, ("black", ".", "-"))
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    marker=marker,
                    linestyle=ls,
                    markevery=max(1, len(xs) // 8),
                    markersize=5,
                    linewidth=1.3,
                    label=pts[0]["method_label"],
                )
            ax.axhline(0.0, color="black", linewidth=0.5)
            title = MODELS.get(model, (model,))[0]
            ax.set_title(f"{title}: {'most' if order == 'MoRF' else 'least'} relevant removed first", fontsize=9)
            ax.set_xlabel("fraction of tokens removed (embedding set to 0)")
            ax.set_ylabel("change of S (mean over samples)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.savefig(path, dpi=110)
    return path
