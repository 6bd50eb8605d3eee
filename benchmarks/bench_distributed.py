"""Scaling of ``captum-unified evaluate`` over processes on this machine's CPU.

A CPU-bound evaluation (Ancona's MNIST CNN, untrained, 32 random 28x28 inputs,
Gradient*Input and Occlusion-1, Sensitivity-n with the default 15 sizes x 20
subsets, infidelity with 10 squares; 8 batches of 4) run three ways, each in a
fresh process (fresh output folder, so nothing is resumed):

* 1 rank x 1 thread:  ``python -m captum_unified evaluate ... --threads 1``
* 2 ranks x 1 thread: ``torchrun --standalone --nproc_per_node=2 -m captum_unified evaluate ... --threads 1``
* 1 rank x 2 threads: ``python -m captum_unified evaluate ... --threads 2``

The time is the evaluation's own (``evaluation N s`` printed by rank 0 once
every rank is done; process start and imports left out). The arms are
interleaved and repeated; the medians, the speed-ups over 1 rank x 1 thread
and the load average before and after are printed. The rows of the 2-rank runs
are checked to equal the 1-rank rows exactly.

Run: cd benchmarks && python bench_distributed.py [repeats]
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
ARGS = [
    "evaluate",
    "--model",
    "bench_distributed:workload",
    "--methods",
    "gi",
    "occlusion1",
    "--metrics",
    "sensitivity_n",
    "infidelity",
    "--subsets",
    "20",
    "--perturbations",
    "10",
    "--batch-size",
    "4",
    "--no-progress",
    "--device",
    "cpu",
    "--baseline",
    "0",
]


def workload():
    import torch

    sys.path.insert(0, str(HERE))
    from _common import MnistCNN

    torch.manual_seed(0)
    model = MnistCNN().eval()
    g = torch.Generator().manual_seed(1)
    return model, (torch.rand(32, 1, 28, 28, generator=g), torch.randint(0, 10, (32,), generator=g))


def _run(kind: str, out: Path) -> float:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(ROOT), str(HERE)]),
        OMP_NUM_THREADS="1",
        CAPTUM_UNIFIED_BACKEND="gloo",
    )
    threads = "2" if kind == "1 rank x 2 threads" else "1"
    if kind == "2 ranks x 1 thread":
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "captum_unified",
        ]
    else:
        cmd = [sys.executable, "-m", "captum_unified"]
        env["OMP_NUM_THREADS"] = threads
    r = subprocess.run(
        cmd + ARGS + ["--threads", threads, "--out", str(out)], env=env, capture_output=True, text=True, timeout=1800
    )
    if r.returncode != 0:
        raise RuntimeError(r.stderr[-3000:])
    return float(re.search(r"evaluation ([0-9.]+) s", r.stdout).group(1))


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from captum_unified.metrics import read_rows

    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    arms = ["1 rank x 1 thread", "2 ranks x 1 thread", "1 rank x 2 threads"]
    times = {k: [] for k in arms}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for k in arms:
                out = Path(tmp) / f"{rep}-{k.replace(' ', '_')}.csv"
                times[k].append(_run(k, out))
        ref = read_rows(Path(tmp) / "0-1_rank_x_1_thread.csv")
        same = all(repr(read_rows(Path(tmp) / f"{rep}-2_ranks_x_1_thread.csv")) == repr(ref) for rep in range(repeats))
    load_after = os.getloadavg()
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"median of {repeats} interleaved runs (evaluation time, seconds)")
    for k in arms:
        print(
            f"| {k} | {med[k]:.1f} s | speed-up {med[arms[0]] / med[k]:.2f}x | runs {[round(t, 1) for t in times[k]]} |"
        )
    print(f"2-rank rows identical to 1-rank rows: {same}")
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f" % (load_before + load_after))


if __name__ == "__main__":
    main()
