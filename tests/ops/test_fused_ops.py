"""The fused kernels (captum_unified.ops.fused) give the same attributions as
the decompositions they replace (forced by ``OpTable.without_fused()``), for
the shipped rules and for a user's subclass of them (which takes the fused
kernels too, through the rule's own multiplier and product policy)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from conftest import DTYPE, assert_close, randn

import captum_unified as cu

#: The shipped table with every composite computed by its decomposition.
DECOMPOSED = cu.default_op_table().without_fused()


class Rescale(cu.RescaleRule):
    """Same rule, a user's subclass: takes the fused kernels like the shipped one."""


class Epsilon(cu.EpsilonLRPRule):
    """Same rule, a user's subclass: takes the fused kernels like the shipped one."""


class LSTMNet(nn.Module):
    def __init__(self, bidirectional=True, layers=2, proj=0, batch_first=True) -> None:
        super().__init__()
        self.lstm = nn.LSTM(
            4, 5, num_layers=layers, bidirectional=bidirectional, batch_first=batch_first, proj_size=proj
        )
        self.batch_first = batch_first
        out = (proj or 5) * (2 if bidirectional else 1)
        self.fc = nn.Linear(out, 3)

    def forward(self, x):
        if not self.batch_first:
            x = x.transpose(0, 1)
        y = self.lstm(x)[0]
        return self.fc(y[:, -1] if self.batch_first else y[-1])


class Softmaxes(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Linear(6, 5), nn.Linear(5, 3)

    def forward(self, x):
        s = torch.softmax(self.a(x), -1)
        return self.b(s) + torch.log_softmax(self.a(x) * 2, -1)[:, :3]


def _pairs(model, x, base):
    pairs = [(cu.RescaleRule(), Rescale()), (cu.RescaleRule(products="gradient"), Rescale(products="gradient"))]
    pairs += [(cu.EpsilonLRPRule(1e-3, products=p), Epsilon(1e-3, products=p)) for p in ("uniform", "gate", "gradient")]
    for shipped, subclass in pairs:
        for fast in (shipped, subclass):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", cu.AttributionWarning)
                a = cu.ModifiedGradient(model, fast).attribute(x, baselines=base, target=1)
                b = cu.ModifiedGradient(model, fast, op_table=DECOMPOSED).attribute(x, baselines=base, target=1)
            assert_close(a, b, atol=1e-12, rtol=1e-9, msg=repr(fast))


@pytest.mark.parametrize(
    "bidirectional,layers,proj,batch_first", [(True, 2, 0, True), (False, 1, 0, False), (False, 2, 3, True)]
)
def test_fused_lstm_equals_decomposition(bidirectional, layers, proj, batch_first):
    torch.manual_seed(0)
    model = LSTMNet(bidirectional, layers, proj, batch_first).to(DTYPE).eval()
    x = randn(3, 6, 4, seed=1)
    _pairs(model, x, randn(1, 6, 4, seed=2))
    _pairs(model, x, randn(3, 6, 4, seed=3))


def test_fused_softmax_and_log_softmax_equal_decomposition():
    torch.manual_seed(1)
    model = Softmaxes().to(DTYPE).eval()
    _pairs(model, randn(4, 6, seed=4), randn(1, 6, seed=5))


def test_fused_lstm_warns_like_the_decomposition():
    torch.manual_seed(2)
    model = LSTMNet(False, 1).to(DTYPE).eval()
    x = randn(2, 5, 4, seed=6)
    for table in (None, DECOMPOSED):
        with pytest.warns(cu.AttributionWarning, match="products='gradient'"):
            cu.ModifiedGradient(model, cu.RescaleRule(products="gradient"), op_table=table).attribute(
                x, baselines=0.1, target=0
            )
        with pytest.warns(cu.AttributionWarning, match="through sigmoid"):
            cu.ModifiedGradient(model, cu.EpsilonLRPRule(), op_table=table).attribute(x, target=0)


class Norms(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.ln, self.b = nn.Linear(6, 5), nn.LayerNorm(5), nn.Linear(5, 3)
        self.rms = nn.RMSNorm(5)

    def forward(self, x):
        h = self.a(x)
        return self.b(torch.tanh(self.ln(h)) + self.rms(h * 0.5))


@pytest.mark.parametrize("norm", ["constant", "decompose"])
def test_fused_norms_equal_decomposition(norm):
    torch.manual_seed(3)
    model = Norms().to(DTYPE).eval()
    with torch.no_grad():
        model.ln.weight.uniform_(0.5, 1.5)
        model.ln.bias.uniform_(-0.2, 0.2)
    x, base = randn(4, 6, seed=7), randn(1, 6, seed=8)
    _pairs(model, x, base)
    for p in ("uniform", "gate"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            a = cu.EpsilonLRP(model, 1e-3, products=p, norm=norm).attribute(x, target=1)
            b = cu.EpsilonLRP(model, 1e-3, products=p, norm=norm, op_table=DECOMPOSED).attribute(x, target=1)
        assert_close(a, b, atol=1e-12, rtol=1e-9)


class HandRescale(cu.Rule):
    """A new rule (not a subclass of a shipped one): the secant written by hand,
    decomposing softmax and norms with the Shapley split."""

    needs_reference = True
    products = "shapley"
    norm = "decompose"
    softmax = "shift"

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        dz = z - ref_z
        small = dz.abs() < 1e-9
        return torch.where(small, op.fprime(f, z, out), (out - ref_out) / torch.where(small, 1.0, dz))


class Halves(cu.Rule):
    """A new rule whose multiplier is a number (broadcast), gates held constant."""

    products = "gate"

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        return torch.tensor(0.5, dtype=z.dtype)


@pytest.mark.parametrize("rule", [HandRescale(), Halves()], ids=["hand_rescale", "halves"])
def test_a_new_rule_takes_the_fused_kernels(rule):
    torch.manual_seed(4)
    models = [
        (LSTMNet(True, 2, 0, True).to(DTYPE).eval(), randn(3, 6, 4, seed=9), randn(1, 6, 4, seed=10)),
        (Softmaxes().to(DTYPE).eval(), randn(4, 6, seed=11), randn(1, 6, seed=12)),
        (Norms().to(DTYPE).eval(), randn(4, 6, seed=13), randn(4, 6, seed=14)),
    ]
    for model, x, base in models:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            a = cu.ModifiedGradient(model, rule).attribute(x, baselines=base, target=1)
            b = cu.ModifiedGradient(model, rule, op_table=DECOMPOSED).attribute(x, baselines=base, target=1)
        assert_close(a, b, atol=1e-12, rtol=1e-9, msg=type(model).__name__)
        if isinstance(rule, HandRescale):  # and it is DeepLIFT
            shapley = cu.DeepLiftRescale(model, norm="decompose", softmax="shift")
            assert_close(a, shapley.attribute(x, baselines=base, target=1), atol=1e-10)
