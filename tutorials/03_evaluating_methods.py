# %% [markdown]
# # Evaluating attribution methods
#
# An attribution map is only useful if it says something true about the model.
# `captum_unified.metrics` measures that in three ways, on any attribution
# tensor (this package's methods, Captum's, or your own):
#
# * **Sensitivity-n** (Ancona et al., ICLR 2018, Sec. 4.1): for random subsets
#   $S$ of $n$ features, how well does $\sum_{i\in S} R_i$ predict the output
#   change $S_c(x) - S_c(x_{[x_S = \bar x_S]})$ when the subset is removed?
#   (Pearson correlation, per sample, averaged.)
# * **Infidelity** (Yeh et al., NeurIPS 2019) with square removal: the mean
#   squared error of that prediction for random squares of pixels.
# * **Region perturbation** (Samek et al. 2016): remove pixels in the order of
#   their attributions and trace the output.
#
# The `evaluate` runner scores several methods over a data set into a CSV file
# it can resume, and `captum_unified.plots` draws the results.
#
# Run it with `python tutorials/03_evaluating_methods.py`; set
# `CAPTUM_UNIFIED_QUICK=1` for small sizes (well under a minute) and
# `CAPTUM_UNIFIED_CACHE` to choose where trained models are cached.

# %%
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from captum.attr import DeepLift, Saliency

import captum_unified as cu
from captum_unified import plots
from captum_unified.data import load_mnist
from captum_unified.metrics import (
    SensitivityN,
    default_n_list,
    evaluate,
    infidelity,
    region_perturbation,
    sensitivity_n,
)
from captum_unified.models import load_or_train

QUICK = os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"
N_TRAIN = 1000 if QUICK else None  # None: all 4,000 training digits
EPOCHS = 3 if QUICK else 6
N_SAMPLES = 8 if QUICK else 32  # test digits evaluated
N_SUBSETS = 20 if QUICK else 100  # random subsets per sample and n (paper: 100)
N_SIZES = 6 if QUICK else 12  # subset sizes n, log-spaced
N_SQUARES = 16 if QUICK else 100  # squares per sample for infidelity
IG_STEPS = 32 if QUICK else 64
torch.manual_seed(0)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
warnings.filterwarnings("ignore", message="Input Tensor 0 did not already require gradients")


def show(fig):
    """Figures made by `captum_unified.plots` are not pyplot figures; hand them
    to pyplot so that they are displayed (and picked up by the docs build)."""
    try:
        plt.figure(fig)
    except (TypeError, ValueError):  # matplotlib too old to adopt a figure
        path = Path(tempfile.gettempdir()) / f"captum_unified_fig_{id(fig)}.png"
        fig.savefig(path)
        print("figure saved to", path)


# %% [markdown]
# ## The model and the methods
#
# The sigmoid CNN of Deng et al. (the same as in the Taylor tutorial, loaded
# from the cache if that one ran first) and five methods of Ancona et al.'s
# unified backend. The baseline is Captum's default, zeros, for the methods
# and for removing features in the metrics (Ancona et al., App. B).

# %%
data = load_mnist(n=N_TRAIN)
model, acc = load_or_train("deng_cnn", "sigmoid", epochs=EPOCHS, n_train=N_TRAIN, data=data, batch_size=16, lr=2e-3)
for p in model.parameters():
    p.requires_grad_(False)
print(f"test accuracy: {acc:.3f}")

# round robin over the classes: 0, 1, ..., 9, 0, 1, ...
by_class = [(data[1][1] == c).nonzero().flatten().tolist() for c in range(10)]
order = [idx[j] for j in range(max(map(len, by_class))) for idx in by_class if j < len(idx)]
x, labels = data[1][0][order[:N_SAMPLES]], data[1][1][order[:N_SAMPLES]]
with torch.no_grad():
    target = model(x).argmax(1)
pixel_mask = torch.arange(28 * 28).view(1, 1, 28, 28)  # one feature per pixel (all channels)

methods = {
    "Gradient*Input": cu.GradientXInput(model),
    "Integrated Gradients": cu.IntegratedGradients(model),
    "epsilon-LRP": cu.EpsilonLRP(model, epsilon=1e-4),
    "DeepLIFT (Rescale)": cu.DeepLiftRescale(model),
    "Occlusion-1": cu.Occlusion1(model),
}
attrs = {}
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", cu.AttributionWarning)
    for name, method in methods.items():
        kw = {"n_steps": IG_STEPS} if name == "Integrated Gradients" else {}
        attrs[name] = method.attribute(x, target=target, **kw)
for w in caught:
    if issubclass(w.category, cu.AttributionWarning):
        print("AttributionWarning:", str(w.message)[:160], "...")

# %% [markdown]
# The epsilon-LRP warning is Ancona et al.'s point 5 (Sec. 4): with a sigmoid,
# $f(0) \ne 0$ and LRP's rule $f(z)/z$ blows up near $z = 0$; we keep it to see
# what the metrics make of it.
#
# A Captum method is evaluated the same way: the metrics take any attribution
# tensor. Captum's `DeepLift` implements the same Rescale rule as
# `cu.DeepLiftRescale` (this model uses a distinct module for every
# activation, which Captum needs).

# %%
attrs["Captum DeepLift"] = DeepLift(model).attribute(x.clone().requires_grad_(), target=target).detach()
print(
    "max |Captum DeepLift - DeepLiftRescale|:",
    float((attrs["Captum DeepLift"] - attrs["DeepLIFT (Rescale)"]).abs().max()),
)
assert torch.allclose(attrs["Captum DeepLift"], attrs["DeepLIFT (Rescale)"], atol=1e-4)

# %% [markdown]
# ## Sensitivity-n
#
# For each sample and each $n$, `sensitivity_n` draws `n_subsets` random
# subsets of $n$ pixels, removes them (sets them to the baseline) in batched
# forward passes, and correlates the output changes with the attribution sums.
# Occlusion-1 satisfies Sensitivity-1 by construction; methods that satisfy
# Completeness (IG, DeepLIFT) do well for large $n$; no method is perfect for
# every $n$ on a nonlinear model (Ancona et al., Proposition 4). On this model
# the curves of Integrated Gradients and DeepLIFT coincide (DeepLIFT
# approximates IG, Ancona et al. Sec. 3), and the local methods (Gradient*Input,
# Occlusion-1) are better for small $n$, the complete ones for large $n$.

# %%
n_list = default_n_list(28 * 28, num=N_SIZES)
sens = {}
for name, a in attrs.items():
    sens[name] = sensitivity_n(
        model, x, a, n=n_list, target=target, feature_mask=pixel_mask, n_subsets=N_SUBSETS, seed=0
    )
print("n:" + "".join(f"{n:>7d}" for n in n_list))
for name, r in sens.items():
    print(f"{name:22s}" + "".join(f"{v:7.3f}" for v in r.mean.tolist()))

assert abs(float(sens["Occlusion-1"].mean[0]) - 1.0) < 1e-6, "Occlusion-1 satisfies Sensitivity-1"
assert torch.allclose(sens["Captum DeepLift"].mean, sens["DeepLIFT (Rescale)"].mean, atol=1e-3)

fig, ax = plt.subplots(figsize=(6, 4))
plots.plot_sensitivity_n(
    {k: v for k, v in sens.items() if k != "Captum DeepLift"},
    ax=ax,
    title=f"Sensitivity-n, sigmoid CNN, {N_SAMPLES} digits",
    ylim=None,
)
fig.tight_layout()

# %% [markdown]
# ## Infidelity: first- vs second-order Taylor attribution
#
# `infidelity` is `captum.metrics.infidelity` with a seeded square-removal
# perturbation: a random $4\times4$ square is set to the baseline, and the sum
# of the attributions inside it is compared with the output change. Deng et
# al. report that second-order Taylor attribution has lower infidelity than
# first-order (0.27 vs 0.48 on their sigmoid CNN): it also accounts for the
# curvature and the interactions inside the square.

# %%
taylor = {f"Taylor order {o}": cu.TaylorAttribution(model, order=o).attribute(x, target=target) for o in (1, 2)}
infid = {}
for name, a in {**taylor, **attrs}.items():
    infid[name] = float(
        infidelity(model, x, a, patch_size=4, n_perturb_samples=N_SQUARES, target=target, seed=0).mean()
    )
for name, v in infid.items():
    print(f"{name:22s} infidelity {v:.5f}")
assert infid["Taylor order 2"] < infid["Taylor order 1"], "second order is more faithful"

# %% [markdown]
# Attributions already multiplied by $x - \bar x$ (every method above) are
# scored with the square's indicator (`multiply_by_inputs=True`, the default).
# A *gradient* is scored with Yeh et al.'s perturbation $I = x - \tilde x$
# instead (`multiply_by_inputs=False`). Captum's `Saliency` (the raw gradient,
# `abs=False`) then gets exactly the infidelity of Gradient*Input: both predict
# the change of a square by $\sum_{j\in Q} g_j (x_j - \bar x_j)$.

# %%
grad = Saliency(model).attribute(x, target=target, abs=False)
infid_saliency = float(
    infidelity(
        model, x, grad, patch_size=4, n_perturb_samples=N_SQUARES, target=target, seed=0, multiply_by_inputs=False
    ).mean()
)
print(f"Captum Saliency (gradient), multiply_by_inputs=False: {infid_saliency:.5f}")
assert abs(infid_saliency - infid["Gradient*Input"]) <= 1e-4 * max(infid_saliency, 1e-12) + 1e-9

fig, ax = plt.subplots(figsize=(6.5, 3.4))
names = list(infid)
ax.bar(range(len(names)), [infid[k] for k in names], color=[f"C{i}" for i in range(len(names))])
ax.set_xticks(range(len(names)))
ax.set_xticklabels(names, rotation=30, ha="right", fontsize="small")
ax.set_yscale("log")
ax.set_ylabel("infidelity (4x4 squares)")
fig.tight_layout()

# %% [markdown]
# ## Region perturbation
#
# `region_perturbation` removes the pixels in attribution order, most relevant
# first (the output should fall fast) or least relevant first (it should not
# fall), and reports the curves and the area over the perturbation curve
# (AOPC, larger = faster drop). Random attributions are the control.

# %%
steps = 16 if QUICK else 40
curves, aopc = {}, {}
compared = {k: attrs[k] for k in ("Gradient*Input", "Integrated Gradients", "epsilon-LRP", "Occlusion-1")}
compared["random"] = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
for name, a in compared.items():
    for order, tag in (("most_relevant_first", "+"), ("least_relevant_first", "-")):
        r = region_perturbation(model, x, a, target=target, feature_mask=pixel_mask, order=order, n_steps=steps)
        curves[f"{name} ({tag})"] = (r.k, r.curves.mean(0))
        aopc[(name, tag)] = float(r.aopc.mean())
print(f"{'method':22s} AOPC most relevant first   least relevant first")
for name in compared:
    print(f"{name:22s} {aopc[(name, '+')]:24.3f} {aopc[(name, '-')]:22.3f}")
for name in ("Integrated Gradients", "Occlusion-1"):
    assert aopc[(name, "+")] > aopc[("random", "+")] > aopc[(name, "-")], name

fig, ax = plt.subplots(figsize=(6, 4))
plots.plot_region_perturbation(
    {k: v for k, v in curves.items() if k.split(" (")[0] in ("Integrated Gradients", "Occlusion-1", "random")},
    ax=ax,
    title="region perturbation (+: most relevant first)",
    xlabel="pixels removed",
)
ax.legend(fontsize="small", loc="center right")
fig.tight_layout()

# %% [markdown]
# ## The evaluation runner
#
# `evaluate(model, methods, data, metrics)` computes the attributions of the
# *labels* and every metric for every method and batch, and returns tidy rows
# `{method, metric, param, sample_index, value}` (for Sensitivity-n `param` is
# $n$, plus one `pooled` row per $n$, the correlation over all samples and
# subsets together). With `out` every finished batch is kept next to the file
# (`<out>.parts/`) and the file is written at the end; a second call reads the
# finished batches back instead of recomputing them and computes only what is
# missing. All methods are scored on the same random subsets (seeded per
# sample), from one pass of perturbed forwards. A method is an attribution object or any
# callable `(inputs, target) -> attributions`; here we count the calls.


# %%
class Counted:
    """An attribution method as a callable that counts its calls."""

    def __init__(self, method, **kwargs):
        self.method, self.kwargs, self.calls = method, kwargs, 0

    def __call__(self, inputs, target):
        self.calls += 1
        return self.method.attribute(inputs, target=target, **self.kwargs)


workdir = Path(tempfile.mkdtemp(prefix="captum_unified_tutorial03_"))
csv_path = workdir / "sensitivity_n.csv"
run_n = n_list[:4]
first_methods = {"GI": Counted(cu.GradientXInput(model)), "Occlusion-1": Counted(cu.Occlusion1(model))}
runner_metric = SensitivityN(n=run_n, n_subsets=N_SUBSETS)
rows1 = evaluate(model, first_methods, (x, labels), [runner_metric], out=csv_path, batch_size=4)
print(f"first run: {len(rows1)} rows, calls", {k: m.calls for k, m in first_methods.items()})

# resume with one more method: GI and Occlusion-1 are read back from the finished batches
more = {
    "GI": Counted(cu.GradientXInput(model)),
    "Occlusion-1": Counted(cu.Occlusion1(model)),
    "IG": Counted(cu.IntegratedGradients(model), n_steps=IG_STEPS),
}
rows2 = evaluate(model, more, (x, labels), [runner_metric], out=csv_path, batch_size=4)
calls = {k: m.calls for k, m in more.items()}
print(f"resumed run: {len(rows2)} rows, calls {calls}")
assert calls["GI"] == 0 and calls["Occlusion-1"] == 0 and calls["IG"] > 0
assert rows2[: len(rows1)] == rows1, "rows read back are identical"
with open(csv_path) as fh:
    n_lines = sum(1 for _ in fh)
print(f"{csv_path.name}: {n_lines - 1} rows + header")
assert n_lines - 1 == len(rows2)

# mean curve per method from the per-sample rows
curves_runner = {}
for name in more:
    per_n = {
        n: [r["value"] for r in rows2 if r["method"] == name and r["param"] == n and r["sample_index"] != "pooled"]
        for n in run_n
    }
    curves_runner[name] = (run_n, [float(np.nanmean(v)) for v in per_n.values()])
    pooled = [r["value"] for r in rows2 if r["method"] == name and r["sample_index"] == "pooled"]
    print(
        f"{name:12s} mean "
        + " ".join(f"{v:6.3f}" for v in curves_runner[name][1])
        + "   pooled "
        + " ".join(f"{v:6.3f}" for v in pooled)
    )
fig, ax = plt.subplots(figsize=(5, 3.6))
plots.plot_sensitivity_n(curves_runner, ax=ax, title="evaluate(): labels as targets", ylim=None)
fig.tight_layout()
shutil.rmtree(workdir)

# %% [markdown]
# ## Attribution maps
#
# `plot_attribution_grid` draws rows of samples and columns of methods with
# Captum's `visualize_image_attr`, in the papers' colours: red raises the
# target output, blue lowers it (Captum's own default is green / red).

# %%
k = min(4, N_SAMPLES)
grid = {
    name: attrs[name][:k]
    for name in ("Gradient*Input", "Integrated Gradients", "epsilon-LRP", "DeepLIFT (Rescale)", "Occlusion-1")
}
grid["Taylor order 2"] = taylor["Taylor order 2"][:k]
fig, axes = plots.plot_attribution_grid(
    x[:k],
    grid,
    method="heat_map",
    sign="all",
    titles=[f"label {int(l)}, pred. {int(c)}" for l, c in zip(labels[:k], target[:k])],
)
show(fig)

# %% [markdown]
# ## Summary
#
# | metric | function | question |
# |---|---|---|
# | Sensitivity-n | `sensitivity_n` | do sums of attributions predict removing $n$ features? |
# | infidelity | `infidelity` | same, for random squares, as a squared error |
# | region perturbation | `region_perturbation` | does removing the top features hurt the most? |
# | all methods, a data set | `evaluate` | Sensitivity-n rows in a resumable CSV |

# %%
print(
    "Summary: Sensitivity-1 of Occlusion-1 = "
    f"{float(sens['Occlusion-1'].mean[0]):.3f}; infidelity Taylor order 1 "
    f"{infid['Taylor order 1']:.5f} > order 2 {infid['Taylor order 2']:.5f}"
)
# The figures: in a window where there is a display; as PNG files in
# `tutorial03_figures/` on a headless machine (a non-interactive backend such
# as Agg); inline in the docs, where sphinx-gallery collects them.
if "sphinx_gallery" not in sys.modules:
    if plt.get_backend().lower() in {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}:
        fig_dir = Path("tutorial03_figures")
        fig_dir.mkdir(exist_ok=True)
        for k in plt.get_fignums():
            plt.figure(k).savefig(fig_dir / f"figure_{k}.png", dpi=100)
        print(f"{len(plt.get_fignums())} figures written to {fig_dir}/ (no display)")
    else:
        plt.show()
