"""What DeepLIFT's softmax rule costs, on the attention logits of a real call.

The rule (``ops/softmax.py``, ``_LogSumExpRule``: the simplex weights of
``logsumexp`` and ``exp``'s secant, in float64) runs on the logits each
softmax of the model sees in one ``DeepLiftRescale`` call (captured from that
call: the input pass's logits and the baseline pass's). On the same logits,
timed alternately (CPU time, median of ``--repeats``, one thread):

* the rule, forward and backward, over all softmax calls of the attribution;
* torch's own softmax (or log-softmax), forward and backward, on the same logits;
* a plain gradient of the model (the unit of ``bench_unified.py``'s ratios).

Printed: the rule over torch's softmax, and the rule over the plain gradient
(its share of a DeepLIFT-to-gradient ratio: a DeepLIFT call at 2x a gradient
leaves about 0.5x for all rules, see ``profile_unified.py``'s parts).

Each model runs in a fresh process. Run:
``python benchmarks/bench_softmax_rule.py gpt2_256 vit char_gpt``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _common import plain_gradient, time_all  # noqa: E402
from bench_unified import MODELS, TARGET, build  # noqa: E402

import captum_unified as cu  # noqa: E402
from captum_unified.ops import softmax as softmax_ops  # noqa: E402
from captum_unified.rules import RescaleRule  # noqa: E402


def capture(model, x) -> list[tuple[torch.Tensor, torch.Tensor | None, int, bool]]:
    """The arguments of every softmax-rule call of one DeepLIFT call."""
    calls = []
    rule_forward = softmax_ops._LogSumExpRule.forward

    def recording(ctx, z, ref_z, dim, rule, log):
        calls.append((z.detach().clone(), None if ref_z is None else ref_z.clone(), dim, log))
        return rule_forward(ctx, z, ref_z, dim, rule, log)

    softmax_ops._LogSumExpRule.forward = staticmethod(recording)  # this process only, restored below
    try:
        cu.DeepLiftRescale(model).attribute(x, target=TARGET)
    finally:
        softmax_ops._LogSumExpRule.forward = staticmethod(rule_forward)
    return calls


def measure(name: str, batch: int, repeats: int) -> dict[str, float]:
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    model, x = build(name, batch)
    calls = capture(model, x)
    rule = RescaleRule()

    def the_rule() -> None:
        for z, ref_z, dim, log in calls:
            zz = z.clone().requires_grad_(True)
            y = softmax_ops._LogSumExpRule.apply(zz, ref_z, dim, rule, log)
            torch.autograd.grad(y, zz, torch.ones_like(y))

    def torch_softmax() -> None:
        for z, _ref, dim, log in calls:
            zz = z.clone().requires_grad_(True)
            y = torch.log_softmax(zz, dim) if log else torch.softmax(zz, dim)
            torch.autograd.grad(y, zz, torch.ones_like(y))

    arms = {"rule": the_rule, "softmax": torch_softmax, "gradient": lambda: plain_gradient(model, x, TARGET)}
    med = time_all(arms, repeats=repeats, clock=time.process_time)
    shapes = sorted({tuple(z.shape) for z, *_ in calls})
    return {
        "calls": len(calls),
        "shapes": str(shapes),
        "rule_ms": med["rule"] * 1e3,
        "over_softmax": med["rule"] / med["softmax"],
        "over_gradient": med["rule"] / med["gradient"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", help=f"of {', '.join(MODELS)}; default: gpt2_256 vit char_gpt")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.models = args.models or ["gpt2_256", "vit", "char_gpt"]
    unknown = [m for m in args.models if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    if args.one:
        print(json.dumps(measure(args.models[0], args.batch, args.repeats)))
        return
    print("| model | softmax calls (shapes) | rule, fwd+bwd | x torch's softmax | x a plain gradient |")
    print("|---|---|---|---|---|")
    for name in args.models:
        cmd = [sys.executable, __file__, name, "--one", "--batch", str(args.batch), "--repeats", str(args.repeats)]
        r = json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
        print(
            f"| {name} | {r['calls']} {r['shapes']} | {r['rule_ms']:.1f} ms | {r['over_softmax']:.1f} | "
            f"{r['over_gradient']:.2f} |"
        )


if __name__ == "__main__":
    main()
