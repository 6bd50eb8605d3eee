"""Cost of the relevance ledger (``cu.relevance_ledger``): epsilon-LRP with the
ledger open, as a ratio to epsilon-LRP without it, on the models of
``bench_unified.py`` (the MNIST CNN, the ResNet-style CNN, the LSTM and the
small ViT), batch 32, CPU; arms interleaved in one process per model (a fresh
process each). Whether the ledger costs anything when it is *not* open is
``bench_unified.py``'s business: run it on this branch and on the last one.

Run: ``python benchmarks/bench_ledger.py [--threads N] [--batch B]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import plain_gradient, time_all  # noqa: E402
from bench_unified import TARGET, build  # noqa: E402

import captum_unified as cu  # noqa: E402

MODELS = ("mnist_cnn", "resnet", "lstm", "vit")


def run(name: str, batch: int, repeats: int) -> dict[str, float]:
    model, x = build(name, batch)
    lrp = cu.EpsilonLRP(model)

    def with_ledger() -> None:
        with cu.relevance_ledger(lrp):
            lrp.attribute(x, target=TARGET)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return time_all(
            {
                "plain gradient": lambda: plain_gradient(model, x, TARGET),
                "EpsilonLRP": lambda: lrp.attribute(x, target=TARGET),
                "EpsilonLRP + ledger": with_ledger,
            },
            repeats=repeats,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run(args.one, args.batch, args.repeats)))
        return
    load = os.getloadavg()
    print(f"batch {args.batch}, {args.threads} thread(s), load average {load[0]:.1f}/{load[1]:.1f}")
    print("| model | EpsilonLRP x plain | ledger open x EpsilonLRP |")
    print("|---|---|---|")
    for name in args.models:
        cmd = [sys.executable, __file__, "--one", name, "--threads", str(args.threads), "--batch", str(args.batch)]
        cmd += ["--repeats", str(args.repeats)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        t = json.loads(out.strip().splitlines()[-1])
        lrp, plain = t["EpsilonLRP"], t["plain gradient"]
        print(f"| {name} | {lrp / plain:.2f} | {t['EpsilonLRP + ledger'] / lrp:.2f} |")


if __name__ == "__main__":
    main()
