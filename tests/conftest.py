"""Shared fixtures and small model factories for the foundation tests.

Every model is tiny and float64 so that exact identities can be checked to
tight tolerances. Models are built from an explicit seed so tests are
reproducible; nothing here depends on results of ``captum_unified``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)

DTYPE = torch.float64
ATOL = 1e-9
RTOL = 1e-7

# name -> (module factory, functional form). The functional forms cover the
# different ways a model can reach a nonlinearity (F.*, torch.*, tensor method).
ACTIVATIONS: dict[str, tuple] = {
    "relu": (nn.ReLU, F.relu),
    "tanh": (nn.Tanh, torch.tanh),
    "sigmoid": (nn.Sigmoid, lambda t: t.sigmoid()),
    "softplus": (nn.Softplus, F.softplus),
    "gelu": (nn.GELU, F.gelu),
    "elu": (nn.ELU, F.elu),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), lambda t: F.leaky_relu(t, 0.1)),
    "silu": (nn.SiLU, F.silu),
}
ACT_FN = {k: v[1] for k, v in ACTIVATIONS.items()}


def assert_close(a, b, atol=ATOL, rtol=RTOL, msg=""):
    if isinstance(a, tuple) or isinstance(b, tuple):
        assert isinstance(a, tuple) and isinstance(b, tuple), f"tuple-ness differs {msg}"
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_close(x, y, atol, rtol, msg)
        return
    assert a.shape == b.shape, f"shape {tuple(a.shape)} != {tuple(b.shape)} {msg}"
    torch.testing.assert_close(a.to(DTYPE), b.to(DTYPE), atol=atol, rtol=rtol, msg=msg or None)


def seeded(seed: int):
    torch.manual_seed(seed)


# --------------------------------------------------------------------------
# Model factories
# --------------------------------------------------------------------------
class MLP(nn.Module):
    """Linear - act - Linear - act - ... - Linear, every activation its own module."""

    def __init__(self, widths: Sequence[int], act: str = "relu", bias: bool = True) -> None:
        super().__init__()
        self.linears = nn.ModuleList(nn.Linear(widths[i], widths[i + 1], bias=bias) for i in range(len(widths) - 1))
        self.acts = nn.ModuleList(ACTIVATIONS[act][0]() for _ in range(len(widths) - 2))

    def forward(self, x):
        for lin, act in zip(self.linears[:-1], self.acts):
            x = act(lin(x))
        return self.linears[-1](x)


class SequentialMLP(nn.Sequential):
    pass


def make_sequential_mlp(widths, act="relu", bias=True, seed=0):
    """An ``nn.Sequential`` MLP (what Captum's LRP needs)."""
    seeded(seed)
    layers: list[nn.Module] = []
    for i in range(len(widths) - 1):
        layers.append(nn.Linear(widths[i], widths[i + 1], bias=bias))
        if i < len(widths) - 2:
            layers.append(ACTIVATIONS[act][0]())
    return nn.Sequential(*layers).to(DTYPE).eval()


def make_mlp(widths=(5, 7, 6, 3), act="relu", bias=True, seed=0):
    seeded(seed)
    return MLP(widths, act, bias).to(DTYPE).eval()


class FunctionalMLP(nn.Module):
    """Same parameters as :class:`MLP`, activations applied in one of several styles.

    style: "module" (one module per call site), "functional" (F.* / torch.* /
    tensor method), "reused" (one activation module object for every call
    site), "inline" (activation module created inside forward).
    """

    def __init__(self, mlp: MLP, act: str, style: str) -> None:
        super().__init__()
        self.linears = mlp.linears
        self.act_name = act
        self.style = style
        self.n_act = len(mlp.linears) - 1
        if style == "module":
            self.acts = nn.ModuleList(ACTIVATIONS[act][0]() for _ in range(self.n_act))
        elif style == "reused":
            self.act = ACTIVATIONS[act][0]()

    def _act(self, i, z):
        if self.style == "module":
            return self.acts[i](z)
        if self.style == "functional":
            return ACT_FN[self.act_name](z)
        if self.style == "reused":
            return self.act(z)
        if self.style == "inline":
            return ACTIVATIONS[self.act_name][0]()(z)
        raise ValueError(self.style)

    def forward(self, x):
        for i, lin in enumerate(self.linears[:-1]):
            x = self._act(i, lin(x))
        return self.linears[-1](x)


STYLES = ("module", "functional", "reused", "inline")


def make_styled(widths=(4, 6, 5, 3), act="relu", style="module", bias=True, seed=0):
    base = make_mlp(widths, act, bias, seed)
    return FunctionalMLP(base, act, style).to(DTYPE).eval()


class SmallCNN(nn.Module):
    """Conv - act - Conv - act - (avg pool) - Flatten - Linear."""

    def __init__(self, act: str = "relu", pool: str = "avg") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.act1 = ACTIVATIONS[act][0]()
        self.conv2 = nn.Conv2d(3, 4, 3)
        self.act2 = ACTIVATIONS[act][0]()
        self.pool = nn.AvgPool2d(2) if pool == "avg" else nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(4 * 2 * 2, 3)

    def forward(self, x):
        x = self.act1(self.conv1(x))
        x = self.pool(self.act2(self.conv2(x)))
        return self.fc(self.flatten(x))


def make_cnn(act="relu", pool="avg", seed=0):
    seeded(seed)
    return SmallCNN(act, pool).to(DTYPE).eval()


class TwoInputNet(nn.Module):
    """Two input tensors (tuple inputs)."""

    def __init__(self, act: str = "relu") -> None:
        super().__init__()
        self.a = nn.Linear(3, 4)
        self.b = nn.Linear(2, 4)
        self.act1 = ACTIVATIONS[act][0]()
        self.out = nn.Linear(4, 3)

    def forward(self, x1, x2):
        return self.out(self.act1(self.a(x1) + self.b(x2)))


def make_two_input(act="relu", seed=0):
    seeded(seed)
    return TwoInputNet(act).to(DTYPE).eval()


def randn(*shape, seed=None):
    if seed is not None:
        g = torch.Generator().manual_seed(seed)
        return torch.randn(*shape, generator=g, dtype=DTYPE)
    return torch.randn(*shape, dtype=DTYPE)


def hook_count(model: nn.Module) -> int:
    n = 0
    for m in model.modules():
        n += len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
        n += len(getattr(m, "_backward_pre_hooks", {}))
        n += len(getattr(m, "_forward_hooks_with_kwargs", {}))
    return n


@pytest.fixture(autouse=True)
def _seed_and_quiet():
    torch.manual_seed(1234)
    with warnings.catch_warnings():
        # Captum warns about setting requires_grad on inputs; not under test.
        warnings.filterwarnings("ignore", message=".*required_grads has been set automatically.*")
        warnings.filterwarnings("ignore", message=".*Setting forward, backward hooks.*")
        yield
