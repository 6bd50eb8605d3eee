"""Shared helpers of the benchmark scripts: the MNIST-sized CNN and a timer.

Benchmarks report *ratios* measured in one run (to a plain gradient and to
Captum's twin), never absolute times, so they compare across machines.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


class MnistCNN(nn.Module):
    """Ancona et al. Appendix C's MNIST CNN: conv 3x3x32, conv 3x3x64, max-pool
    2x2, dense 128, dense 10 (flattening in ``forward``, so Captum's LRP, which
    has no rule for ``nn.Flatten``, can run on it)."""

    def __init__(self, act: type = nn.ReLU) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3)
        self.act1 = act()
        self.conv2 = nn.Conv2d(32, 64, 3)
        self.act2 = act()
        self.pool = nn.MaxPool2d(2)
        self.fc1 = nn.Linear(64 * 12 * 12, 128)
        self.act3 = act()
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = self.pool(self.act2(self.conv2(self.act1(self.conv1(x)))))
        return self.fc2(self.act3(self.fc1(x.reshape(x.shape[0], -1))))


def plain_gradient(model: nn.Module, x: torch.Tensor, target: int) -> torch.Tensor:
    """One input gradient: the unit every ratio is measured against."""
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[:, target].sum(), x)
    return g


def time_all(
    fns: dict[str, Callable[[], object]],
    repeats: int = 7,
    warmup: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[str, float]:
    """Median time of each function (wall time; ``clock=time.process_time``
    for CPU time); runs are interleaved so that machine noise hits every arm
    alike."""
    for _ in range(warmup):
        for f in fns.values():
            f()
    samples = {k: [] for k in fns}
    for _ in range(repeats):
        for k, f in fns.items():
            t0 = clock()
            f()
            samples[k].append(clock() - t0)
    return {k: statistics.median(v) for k, v in samples.items()}
