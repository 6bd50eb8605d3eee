"""Where one attribution's time goes, on a model of ``bench_unified.py``.

Three views of the same call (after two warm-up calls), one thread:

* the method and a plain gradient, timed (median of ``--repeats``);
* torch.profiler: CPU time inside the backend's autograd functions (the rules'
  forward and backward kernels, e.g. ``_LogSumExpRule`` = DeepLIFT's softmax
  rule), and the aten ops with the most self time;
* cProfile: the time spent in the package's own Python functions (the per-op
  dispatch: taint checks, the op table, the tape, the rules' Python; it
  includes tensor arithmetic written as operators, ``a * b``, which cProfile
  does not list apart), as a share of the call.

CPU time (``time.process_time``), not wall time: on a shared machine another
job's preemption does not count, so the ratio is steadier than
``bench_unified.py``'s wall-clock one (which is what a user sees on an idle
machine).

Run: ``python benchmarks/profile_unified.py gpt2_256 DeepLiftRescale``.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import plain_gradient  # noqa: E402
from bench_unified import MODELS, TARGET, build  # noqa: E402

import captum_unified as cu  # noqa: E402

#: the backend's autograd functions (captum_unified/backend/functions.py and the fused kernels of ops/)
RULE_FUNCTIONS = (
    "ElementwiseRule",
    "BilinearRule",
    "MaxRule",
    "MaxPoolRule",
    "VectorRule",
    "_LogSumExpRule",
    "_SoftmaxRule",
    "_NormRule",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", choices=MODELS)
    parser.add_argument("method", choices=("EpsilonLRP", "DeepLiftRescale"))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("--time-only", action="store_true", help="only the CPU-time ratio")
    args = parser.parse_args()
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model, x = build(args.model, args.batch)
    method = getattr(cu, args.method)(model)

    def attribute() -> object:
        return method.attribute(x, target=TARGET)

    def gradient() -> object:
        return plain_gradient(model, x, TARGET)

    for _ in range(2):
        attribute(), gradient()
    times: dict[str, list[float]] = {"method": [], "gradient": []}
    for _ in range(args.repeats):
        for name, f in (("method", attribute), ("gradient", gradient)):
            t0 = time.process_time()
            f()
            times[name].append(time.process_time() - t0)
    t_m, t_g = statistics.median(times["method"]), statistics.median(times["gradient"])
    print(f"{args.model} {args.method}: {t_m * 1e3:.0f} ms CPU, plain gradient {t_g * 1e3:.0f} ms: {t_m / t_g:.2f}x")
    if args.time_only:
        return

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        attribute()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    print(f"torch.profiler: {total / 1e3:.0f} ms self CPU in all")
    for e in sorted(events, key=lambda e: -e.cpu_time_total):
        base = e.key.removesuffix("Backward")
        if base in RULE_FUNCTIONS:
            share = e.cpu_time_total / total
            print(f"  rule {e.key:24s} {e.count:4d} calls {e.cpu_time_total / 1e3:8.1f} ms ({share:.0%})")
    for e in sorted(events, key=lambda e: -e.self_cpu_time_total)[: args.top]:
        share = e.self_cpu_time_total / total
        print(f"  op   {e.key:24s} {e.count:4d} calls {e.self_cpu_time_total / 1e3:8.1f} ms ({share:.0%})")

    pr = cProfile.Profile()
    pr.enable()
    attribute()
    pr.disable()
    stats = pstats.Stats(pr)
    package = os.path.dirname(os.path.abspath(cu.__file__))
    own = calls = 0.0
    entries = stats.stats  # type: ignore[attr-defined]
    for (path, _line, _name), (_cc, nc, tottime, _ct, _callers) in entries.items():
        if path.startswith(package):
            own += tottime
            calls += nc
    whole = stats.total_tt  # type: ignore[attr-defined]
    dispatched = sum(v[1] for k, v in entries.items() if k[2] == "_dispatch")
    print(
        f"cProfile: {whole * 1e3:.0f} ms (profiled), of which {own * 1e3:.0f} ms ({own / whole:.0%}) in the "
        f"package's Python ({calls:.0f} calls; {dispatched:.0f} torch calls dispatched)"
    )


if __name__ == "__main__":
    main()
