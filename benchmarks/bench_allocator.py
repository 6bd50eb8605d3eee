"""How much of a method's cost over a plain gradient is glibc returning freed
memory to the system (and the page faults of taking it back).

For each model, alternately: ``profile_unified.py MODEL METHOD --time-only``
(a fresh process: the method's and a plain gradient's CPU time, interleaved,
median of ``--repeats``) with glibc's defaults, and the same with
``MALLOC_TRIM_THRESHOLD_=1073741824 MALLOC_MMAP_THRESHOLD_=268435456`` in the
environment (glibc then keeps freed memory for reuse). The library does not
change the process's allocator; this measures what a user who sets the two
variables (or runs under jemalloc / tcmalloc) gains.

Run: ``python benchmarks/bench_allocator.py [--models vit gpt2_256] [--runs 2]``.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
#: glibc's trimming and mmap thresholds raised: freed memory stays with the process
TRIMMING_OFF = {"MALLOC_TRIM_THRESHOLD_": "1073741824", "MALLOC_MMAP_THRESHOLD_": "268435456"}


def ratio(model: str, method: str, repeats: int, extra_env: dict[str, str]) -> float:
    """The method's CPU time over a plain gradient's, from a fresh process."""
    cmd = [sys.executable, os.path.join(HERE, "profile_unified.py"), model, method, "--time-only"]
    out = subprocess.run(
        [*cmd, "--repeats", str(repeats)],
        env={**os.environ, **extra_env},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    found = re.findall(r"([0-9.]+)x\s*$", out, re.M)
    if not found:
        raise RuntimeError(f"no ratio in the output of {' '.join(cmd)}:\n{out}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["vit", "gpt2_256"])
    parser.add_argument("--method", default="DeepLiftRescale", choices=("DeepLiftRescale", "EpsilonLRP"))
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    print(f"| model | {args.method} / plain gradient, default glibc | trimming off |")
    print("|---|---|---|")
    for model in args.models:
        default, off = [], []
        for _ in range(args.runs):
            default.append(ratio(model, args.method, args.repeats, {}))
            off.append(ratio(model, args.method, args.repeats, TRIMMING_OFF))
        print(f"| {model} | {' / '.join(f'{v:.2f}' for v in default)} | {' / '.join(f'{v:.2f}' for v in off)} |")


if __name__ == "__main__":
    main()
