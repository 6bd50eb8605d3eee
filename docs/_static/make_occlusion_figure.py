"""Ancona et al. Fig. 1 on scikit-learn digits: Occlusion-1 vs patches 2x2, 4x4.

Run: python docs/_static/make_occlusion_figure.py  (writes occlusion_patch_sizes.png, < 1 min)
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from captum_unified.attr._core.occlusion_patch import OcclusionPatch  # noqa: E402

torch.manual_seed(0)
d = load_digits()
X = torch.tensor(d.images / 16.0, dtype=torch.float32).unsqueeze(1)
y = torch.tensor(d.target)
model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 64, 10))
opt = torch.optim.Adam(model.parameters(), lr=1e-2)
for _ in range(60):
    opt.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    opt.step()
model.eval()
idx = [0, 1, 2]
x, t = X[idx], y[idx]
op = OcclusionPatch(model)
maps = {f"{p}x{p}": op.attribute(x, patch_shapes=(1, p, p), target=t, divide_by_patch_size=True) for p in (1, 2, 4)}
fig, axes = plt.subplots(len(idx), 4, figsize=(8, 2 * len(idx)))
for r in range(len(idx)):
    axes[r, 0].imshow(x[r, 0], cmap="gray")
    axes[r, 0].set_title(f"digit {int(t[r])}")
    for c, (name, a) in enumerate(maps.items(), 1):
        v = a[r, 0].detach()
        lim = float(v.abs().max()) or 1.0
        axes[r, c].imshow(v, cmap="bwr", vmin=-lim, vmax=lim)
        axes[r, c].set_title(f"Occlusion {name}")
for ax in axes.flat:
    ax.axis("off")
fig.tight_layout()
fig.savefig(os.path.join(os.path.dirname(os.path.abspath(__file__)), "occlusion_patch_sizes.png"), dpi=80)
