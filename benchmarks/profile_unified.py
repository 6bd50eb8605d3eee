"""Where one attribution's time goes, on a model of ``bench_unified.py``.

Four views of the same call (after two warm-up calls), one thread:

* the method and a plain gradient, timed (median of ``--repeats``);
* torch.profiler: CPU time inside the backend's autograd functions (the rules'
  forward and backward kernels, e.g. ``_LogSumExpRule`` = DeepLIFT's softmax
  rule), and the aten ops with the most self time;
* the call split into three parts, in units of a plain gradient's profiled
  time: the rules' autograd functions (forward and backward), the matrix
  products outside them (the model's own, in each of the method's passes) and
  the rest; the plain gradient split the same way;
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
from collections.abc import Callable

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import plain_gradient, time_all  # noqa: E402
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


#: the model's matrix products (``F.linear``, ``matmul``, convolutions lower to these on the CPU)
MATRIX_PRODUCTS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "aten::mkldnn_convolution")


def parts(events) -> dict[str, float]:
    """One profiled call split into three parts (CPU ms): the rules' autograd
    functions, forward and backward, with everything inside them; the matrix
    products outside them (the model's own, in every pass); the rest (the
    model's other kernels, the package's and the model's Python as far as the
    profiler sees it). The parts add up to the profiled call's self time."""
    rules = products = total = 0.0
    for e in events:
        total += e.self_cpu_time_total
        inside, parent = False, e.cpu_parent
        while parent is not None and not inside:
            inside = parent.name.removesuffix("Backward") in RULE_FUNCTIONS
            parent = parent.cpu_parent
        if inside or e.name.removesuffix("Backward") in RULE_FUNCTIONS:
            rules += e.self_cpu_time_total
        elif e.name in MATRIX_PRODUCTS:
            products += e.self_cpu_time_total
    return {"rules": rules / 1e3, "matrix products": products / 1e3, "rest": (total - rules - products) / 1e3}


def print_parts(attribute: Callable[[], object], gradient: Callable[[], object], repeats: int) -> None:
    """The method's call and a plain gradient's, each split by :func:`parts`
    (median of ``repeats`` profiled calls each), in units of the plain
    gradient's profiled time: what the ratio is made of, and what a method
    that runs the model three times (baseline pass, input pass, backward) pays
    for its matrix products alone."""
    from torch.profiler import ProfilerActivity, profile

    runs: dict[str, list[dict[str, float]]] = {"method": [], "gradient": []}
    for _ in range(repeats):
        for name, f in (("method", attribute), ("gradient", gradient)):
            with profile(activities=[ProfilerActivity.CPU]) as p:
                f()
            runs[name].append(parts(p.events()))
    med = {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in runs.items()}
    unit = sum(med["gradient"].values())
    for name in ("method", "gradient"):
        row = ", ".join(f"{k} {v / unit:.2f}x" for k, v in med[name].items())
        print(f"parts, {name}: {sum(med[name].values()) / unit:.2f}x = {row} (1x = {unit:.0f} ms profiled)")


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

    times = time_all({"method": attribute, "gradient": gradient}, repeats=args.repeats, clock=time.process_time)
    t_m, t_g = times["method"], times["gradient"]
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
    print_parts(attribute, gradient, args.repeats)

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
