"""The float64 ``logsumexp`` of DeepLIFT's softmax rule, against torch's kernels.

:func:`captum_unified.rules.logsumexp.logsumexp_kept` computes the row
maximum plus a clamped ``exp`` and a sum; the alternatives are torch's
``logsumexp`` and the row maximum minus ``log_softmax`` at the arg-max (the
rule's former form). Rows of 8 to 512 logits, 2**17 values in all, float64, one
thread, with and without half of each row masked at ``finfo(float32).min``
(a causal attention row). Prints the median time of each and the largest
difference from ``torch.logsumexp``.

Run: ``python benchmarks/bench_logsumexp.py``.
"""

from __future__ import annotations

import statistics
import time

import torch

from captum_unified.rules.logsumexp import logsumexp_kept


def _via_log_softmax(z: torch.Tensor, dim: int) -> torch.Tensor:
    top, k = z.max(dim, keepdim=True)
    return top - torch.log_softmax(z, dim).gather(dim, k)


def _median_us(fn, repeats: int = 15) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e6


def main() -> None:
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    print("| row length | masked | logsumexp_kept (us) | log_softmax form (us) | torch.logsumexp (us) | max diff |")
    print("|---|---|---|---|---|---|")
    for length in (8, 16, 32, 64, 128, 512):
        z = torch.randn(2**17 // length, length, generator=g, dtype=torch.float64) * 3
        for masked in (False, True):
            x = z.clone()
            if masked:
                x[:, length // 2 :] = torch.finfo(torch.float32).min
            arms = {
                "ours": lambda x=x: logsumexp_kept(x, -1),
                "log_softmax": lambda x=x: _via_log_softmax(x, -1),
                "torch": lambda x=x: torch.logsumexp(x, -1, keepdim=True),
            }
            t = {k: _median_us(f) for k, f in arms.items()}
            diff = float((arms["ours"]() - arms["torch"]()).abs().max())
            print(
                f"| {length} | {'half' if masked else 'no'} | {t['ours']:.0f} | {t['log_softmax']:.0f} | "
                f"{t['torch']:.0f} | {diff:.1e} |"
            )


if __name__ == "__main__":
    main()
