"""Sensitivity-n speed: captum_unified.metrics.sensitivity_n vs bare forward passes.

MNIST-sized CNN (Ancona et al. Appendix C), 32 samples of shape (1, 28, 28),
a pixel is a feature (784 features), 100 random subsets for every n of the
default list (log-spaced from 1 to 80% of 784). The metric needs
``len(n) * 100`` perturbed copies of the batch; the "bare" arm runs the same
number of forward passes, with the same rows per pass, on an input built in
advance: the cost of the model alone. Target: ratio <= 1.1x.

Measured (2-core CPU, quiet, load average ~1.9 with this run): 1,500 passes
of 32 rows (the engine's pick for this CNN: 530 KiB of activations per row),
bare 16.5 s, sensitivity_n 17.4 s, ratio 1.05x. Earlier versions ran 1,024
rows per pass: ~100 s for the same work on a loaded machine.
Run: cd benchmarks && python bench_sensitivity_n.py [repeats]  (2 threads in every arm;
the load average before and after is printed: the ratio is only meaningful on
a quiet-ish machine, since both arms are interleaved but share the cores)
"""

import os
import sys

import torch
from _common import MnistCNN, time_all

from captum_unified._utils.call import AttributionCall
from captum_unified.metrics import default_n_list, sensitivity_n
from captum_unified.perturbation import PerturbationEngine

torch.set_num_threads(2)


def main():
    torch.manual_seed(0)
    model = MnistCNN().eval()
    x = torch.randn(32, 1, 28, 28)
    target = torch.randint(0, 10, (32,))
    x_g = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(model(x_g).gather(1, target[:, None]).sum(), x_g)
    attr = grad * x  # Gradient * Input
    mask = torch.arange(784).reshape(1, 1, 28, 28)
    n_list = default_n_list(784)
    n_masks = len(n_list) * 100
    chunk = PerturbationEngine(model, AttributionCall.format(x, target=target)).chunk(n_masks)  # sensitivity_n's
    rows = chunk * x.shape[0]
    n_passes = -(-n_masks // chunk)
    big = x.repeat(chunk, 1, 1, 1)
    big_target = target.repeat(chunk)

    def bare():
        with torch.no_grad():
            for _ in range(n_passes):
                model(big).gather(1, big_target[:, None])

    def ours():
        sensitivity_n(model, x, attr, target=target, feature_mask=mask, n_subsets=100, seed=0)

    load_before = os.getloadavg()
    repeats = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    t = time_all({"bare": bare, "sensitivity_n": ours}, repeats=repeats, warmup=0)
    load_after = os.getloadavg()
    print(f"n list ({len(n_list)} sizes): {n_list}")
    print(f"{n_masks} perturbed batches of 32 = {n_masks * 32} rows, {n_passes} passes of {rows} rows")
    print(f"bare forward passes: {t['bare']:.3f} s")
    print(f"sensitivity_n:       {t['sensitivity_n']:.3f} s")
    print(f"ratio: {t['sensitivity_n'] / t['bare']:.2f}x (target <= 1.1x)")
    print("load average (1, 5, 15 min) before: %.2f %.2f %.2f, after: %.2f %.2f %.2f" % (load_before + load_after))


if __name__ == "__main__":
    main()
