"""Cost of the unified backend's methods, as ratios measured in one run.

Model: Ancona's MNIST CNN (ReLU), batch 32, CPU. Each method is reported as a
ratio to one plain input gradient of the same model and batch, and to its
Captum twin. Run: ``python benchmarks/bench_unified.py [--threads N]``.
"""
from __future__ import annotations

import argparse
import warnings

import torch
from captum.attr import LRP, DeepLift, InputXGradient
from captum.attr import IntegratedGradients as CaptumIG

import captum_unified as cu
from _common import MnistCNN, plain_gradient, time_all


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    warnings.simplefilter("ignore")
    model = MnistCNN().eval()
    x = torch.rand(args.batch, 1, 28, 28) * 2 - 1
    target = 3

    ours = {
        "GradientXInput": lambda: cu.GradientXInput(model).attribute(x, target=target),
        "EpsilonLRP": lambda: cu.EpsilonLRP(model).attribute(x, target=target),
        "DeepLiftRescale": lambda: cu.DeepLiftRescale(model).attribute(x, target=target),
        "IntegratedGradients (50 steps)": lambda: cu.IntegratedGradients(model).attribute(
            x, target=target, internal_batch_size=320),
    }
    theirs = {
        "GradientXInput": lambda: InputXGradient(model).attribute(x, target=target),
        "EpsilonLRP": lambda: LRP(model).attribute(x, target=target),
        "DeepLiftRescale": lambda: DeepLift(model).attribute(x, target=target),
        "IntegratedGradients (50 steps)": lambda: CaptumIG(model).attribute(
            x, target=target, internal_batch_size=320),
    }
    fns = {"plain gradient": lambda: plain_gradient(model, x, target)}
    for k in ours:
        fns[k] = ours[k]
        fns["captum " + k] = theirs[k]
    t = time_all(fns, repeats=args.repeats)
    base = t["plain gradient"]
    print(f"MNIST CNN, batch {args.batch}, {args.threads} thread(s); plain gradient {base * 1e3:.1f} ms")
    print("| method | x plain gradient | Captum twin x plain gradient | speed-up over Captum |")
    print("|---|---|---|---|")
    for k in ours:
        print(f"| {k} | {t[k] / base:.2f} | {t['captum ' + k] / base:.2f} | {t['captum ' + k] / t[k]:.2f} |")


if __name__ == "__main__":
    main()
