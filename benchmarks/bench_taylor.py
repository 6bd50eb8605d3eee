"""Benchmark of captum_unified.taylor on an MNIST-sized model (plain script).

Measures, in one run, on a small sigmoid CNN over 1x28x28 inputs, batch 32:

1. the cost of the full second-order Taylor attribution (one gradient + one
   Hessian-vector product) as a ratio to one plain input gradient (target <= 4x);
2. the exact Hessian diagonal of the 784-feature input, batch 32, in one
   vectorised pass (784 HVPs batched by replicating the input) vs a Python loop
   over the 784 features with autograd (target >= 5x faster).

Run: ``python benchmarks/bench_taylor.py [--device cuda] [--repeats 5]``
"""

import argparse
import time

import torch
from torch import nn

from captum_unified.taylor import TaylorAttribution
from captum_unified.taylor.terms import hessian_diagonal


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 8, 5, stride=2),
        nn.Sigmoid(),  # 8x12x12
        nn.Conv2d(8, 16, 5, stride=2),
        nn.Sigmoid(),  # 16x4x4
        nn.Flatten(),
        nn.Linear(256, 64),
        nn.Sigmoid(),
        nn.Linear(64, 10),
    ).eval()


def timeit(fn, repeats: int, sync) -> float:
    fn()
    sync()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    opts = parser.parse_args()
    dev = torch.device(opts.device)
    sync = (lambda: torch.cuda.synchronize()) if dev.type == "cuda" else (lambda: None)
    model = make_model().to(dev)
    x = torch.rand(opts.batch, 1, 28, 28, device=dev)
    target = torch.arange(opts.batch, device=dev) % 10

    def plain_gradient():
        xi = x.detach().clone().requires_grad_(True)
        out = model(xi).gather(1, target[:, None]).sum()
        torch.autograd.grad(out, xi)

    ta = TaylorAttribution(model, order=2)

    def taylor2():
        ta.attribute(x, target=target)

    def diag_vectorised():
        return hessian_diagonal(model, (x,), target, (), "exact", max_chunk=784, vectorize="vmap")

    def diag_replicated():
        return hessian_diagonal(model, (x,), target, (), "exact", max_chunk=784, vectorize="replicate")

    def diag_loop():
        xi = x.detach().clone().requires_grad_(True)
        out = model(xi).gather(1, target[:, None]).sum()
        (g,) = torch.autograd.grad(out, xi, create_graph=True)
        g = g.reshape(opts.batch, -1)
        diag = torch.empty(opts.batch, 784, device=dev)
        for j in range(784):
            (row,) = torch.autograd.grad(g[:, j].sum(), xi, retain_graph=True)
            diag[:, j] = row.reshape(opts.batch, -1)[:, j]
        return diag

    def diag_loop_naive():
        # what a user would write: torch.autograd.functional.hvp per feature
        def s_fn(v):
            return model(v).gather(1, target[:, None]).sum()

        diag = torch.empty(opts.batch, 784, device=dev)
        flat = torch.zeros(opts.batch, 784, device=dev)
        for j in range(784):
            flat.zero_()
            flat[:, j] = 1.0
            _, hv = torch.autograd.functional.hvp(s_fn, x, flat.reshape_as(x))
            diag[:, j] = hv.reshape(opts.batch, -1)[:, j]
        return diag

    # correctness first
    torch.testing.assert_close(diag_vectorised(), diag_loop(), rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(diag_replicated(), diag_loop(), rtol=1e-4, atol=1e-6)

    t_grad = timeit(plain_gradient, opts.repeats, sync)
    t_t2 = timeit(taylor2, opts.repeats, sync)
    t_vec = timeit(diag_vectorised, max(1, opts.repeats // 2), sync)
    t_rep = timeit(diag_replicated, max(1, opts.repeats // 2), sync)
    t_loop = timeit(diag_loop, max(1, opts.repeats // 2), sync)
    t_naive = timeit(diag_loop_naive, 1, sync)

    print(f"device: {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}, batch {opts.batch}")
    print("| measurement | time (ms) | ratio | target |")
    print("|---|---|---|---|")
    print(f"| plain input gradient | {t_grad * 1e3:.2f} | 1.00x | |")
    print(
        f"| second-order Taylor attribution (grad + HVP) | {t_t2 * 1e3:.2f} | {t_t2 / t_grad:.2f}x gradient | <= 4x |"
    )
    print(
        f"| Hessian diagonal, Python loop over 784 features (shared graph, 784 backward passes) "
        f"| {t_loop * 1e3:.1f} | 1.00x | |"
    )
    print(
        f"| Hessian diagonal, Python loop of torch.autograd.functional.hvp "
        f"| {t_naive * 1e3:.1f} | {t_loop / t_naive:.2f}x | |"
    )
    print(
        f"| Hessian diagonal, one vectorised pass (784 HVPs, vmap) | {t_vec * 1e3:.1f} "
        f"| {t_loop / t_vec:.2f}x faster ({t_naive / t_vec:.2f}x vs hvp loop) | >= 5x |"
    )
    print(
        f"| Hessian diagonal, one vectorised pass (784 HVPs, replicated batch) "
        f"| {t_rep * 1e3:.1f} | {t_loop / t_rep:.2f}x faster | |"
    )


if __name__ == "__main__":
    main()
