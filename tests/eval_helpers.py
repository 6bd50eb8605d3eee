"""A tiny model + data set for the distributed evaluation tests
(``captum-unified evaluate --model eval_helpers:tiny``) and the contract test
that runs every registered metric through the command line (``tiny_boxes``).

``CU_TEST_KILL_RANK`` / ``CU_TEST_KILL_AFTER``: the process of that rank kills
itself (SIGKILL) at its first forward pass once the file ``CU_TEST_KILL_AFTER``
exists (a finished batch), i.e. in the middle of its next batch."""

from __future__ import annotations

import os
import signal

import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4))

    def forward(self, x):
        kill_rank, after = os.environ.get("CU_TEST_KILL_RANK"), os.environ.get("CU_TEST_KILL_AFTER")
        if kill_rank is not None and os.environ.get("RANK") == kill_rank and after and os.path.exists(after):
            os.kill(os.getpid(), signal.SIGKILL)
        return self.net(x)


def data(n: int = 22):
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 1, 6, 6, generator=g) * 2 - 1
    y = torch.randint(0, 4, (n,), generator=g)
    return x, y


def tiny():
    return Tiny().eval(), data()


def tiny_boxes():
    """``tiny()`` with a bounding box per sample, ``(inputs, labels, boxes)``:
    every registered metric can run on it (bounding-box accuracy needs the boxes)."""
    x, y = data(8)
    boxes = torch.tensor([[1, 1, 4, 4]] * len(x))  # (top, left, bottom, right) on the 6x6 images
    return Tiny().eval(), (x, y, boxes)
