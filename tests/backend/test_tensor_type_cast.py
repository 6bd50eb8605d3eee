"""``Tensor.type(dtype)`` is a cast (linear), not a query: the backend follows
input dependence through it. It was listed with the meta ops (``x.type()``
without arguments returns a string), so in a model that cast with it the ops
after the cast kept their ordinary gradient: on this test's model DeepLIFT's
attributions missed f(x) - f(0) by 2.3 times its size, silently."""

from __future__ import annotations

import torch
from torch import nn

import captum_unified as cu


class _TypeCast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.a = nn.Parameter(torch.randn(16, 8, generator=g, dtype=torch.float64))
        self.w = nn.Parameter(torch.randn(3, 16, generator=g, dtype=torch.float64))

    def forward(self, x):
        h = torch.tanh(x @ self.a.T).type(torch.float32)  # a float32 region inside a float64 model
        return torch.nn.functional.softplus(h).type(torch.float64) @ self.w.T


def test_deeplift_follows_the_input_through_tensor_type():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 8, generator=g, dtype=torch.float64)
    model = _TypeCast()
    a = cu.DeepLiftRescale(model).attribute(x, target=1)
    with torch.no_grad():
        d = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    assert a.abs().sum() > 0
    # complete to the float32 region's rounding (its arithmetic and gradients are float32)
    assert float(((a.sum(1) - d).abs() / d.abs()).max()) < 1e-5


def test_type_without_arguments_is_still_a_string():
    seen = {}

    def f(x):
        seen["type"] = x.type()
        return torch.tanh(x).sum(-1, keepdim=True)

    cu.DeepLiftRescale(f).attribute(torch.randn(2, 3), target=0)
    assert seen["type"] == "torch.FloatTensor"
