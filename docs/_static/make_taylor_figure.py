"""Make docs/_static/taylor_terms.png: the three second-order Taylor term maps
of a small sigmoid MLP trained on sklearn's 8x8 digits (no download).

Run from the repository root: ``python docs/_static/make_taylor_figure.py``.
"""

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from torch import nn  # noqa: E402

from captum_unified.taylor import taylor_decomposition  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> None:
    torch.manual_seed(0)
    digits = load_digits()
    x = torch.tensor(digits.data / 16.0, dtype=torch.float64).reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target)
    model = nn.Sequential(
        nn.Flatten(), nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 32), nn.Sigmoid(), nn.Linear(32, 10)
    ).double()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(300):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
    acc = (model(x).argmax(1) == y).double().mean().item()
    idx = torch.tensor([0, 2, 3, 4])
    sample, target = x[idx], y[idx]
    dec = taylor_decomposition(model, sample, baselines=0.0, target=target)
    cols = [
        ("input", sample),
        (r"first order $g_i\delta_i$", dec.first_order),
        (r"independent $-\frac{1}{2}H_{ii}\delta_i^2$", dec.independent),
        (r"interactive $-\frac{1}{2}\sum_{j\neq i}H_{ij}\delta_i\delta_j$", dec.interactive),
    ]
    fig, axes = plt.subplots(len(idx), len(cols), figsize=(10, 2.6 * len(idx)))
    for r in range(len(idx)):
        for c, (title, t) in enumerate(cols):
            ax = axes[r, c]
            img = t[r, 0].detach().numpy()
            if c == 0:
                ax.imshow(img, cmap="gray_r")
                ax.set_ylabel(f"digit {int(target[r])}\nerror {dec.error[r].item():+.3f}", fontsize=8)
            else:
                v = max(abs(img).max(), 1e-12)
                im = ax.imshow(img, cmap="bwr", vmin=-v, vmax=v)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
            if r == 0:
                ax.set_title(title, fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"Second-order Taylor terms, sigmoid MLP on 8x8 digits (train acc {acc:.2f}), baseline 0", fontsize=10)
    fig.tight_layout()
    out = os.path.join(HERE, "taylor_terms.png")
    fig.savefig(out, dpi=80)
    print("wrote", out)


if __name__ == "__main__":
    main()
