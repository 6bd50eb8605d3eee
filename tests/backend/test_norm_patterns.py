"""Normalisations written by hand (backend/norm_patterns.py) are recognised and
treated as the fused ops are: the same attributions as ``F.layer_norm`` /
``F.rms_norm`` / ``F.normalize`` models with the same weights, complete, and
bounded where the op-by-op Shapley split is not."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import captum_unified as cu

D = torch.float64


def _norms(kind: str):
    eps = 1e-5
    return {
        "rms_llama": lambda x, w: w * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)),
        "rms_t5": lambda x, w: w * (x * torch.rsqrt(x.to(torch.float64).pow(2).mean(-1, keepdim=True) + eps)),
        "rms_square": lambda x, w: (x / torch.sqrt(x.square().mean(dim=-1, keepdim=True) + eps)) * w,
        "rms_pow": lambda x, w: x * (torch.mean(x * x, -1, keepdim=True) + eps) ** -0.5 * w,
        "rms_sum": lambda x, w: x * torch.rsqrt(x.pow(2).sum(-1, keepdim=True) / x.shape[-1] + eps) * w,
        "ln_var": lambda x, w: (
            w * (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
        ),
        "ln_two_centrings": lambda x, w: (
            w
            * (x - x.mean(-1, keepdim=True))
            / torch.sqrt(((x - x.mean(-1, keepdim=True)) ** 2).mean(-1, keepdim=True) + eps)
        ),
        "ln_recip": lambda x, w: (
            w * (x - x.mean(-1, keepdim=True)) * (1 / torch.sqrt(x.var(dim=-1, keepdim=True, correction=0) + eps))
        ),
        "rms_weight_first": lambda x, w: w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps),
        "ln_weight_first": lambda x, w: (
            w * (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True, unbiased=False) + eps)
        ),
        "rms_fused": lambda x, w: F.rms_norm(x, (x.shape[-1],), w, eps),
        "ln_fused": lambda x, w: F.layer_norm(x, (x.shape[-1],), w, None, eps),
    }[kind]


class Net(nn.Module):
    """Linear -> norm -> GELU -> Linear -> norm -> Linear, bias-free."""

    def __init__(self, kind: str, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1, self.l2, self.l3 = (
            nn.Linear(6, 8, bias=False),
            nn.Linear(8, 8, bias=False),
            nn.Linear(8, 3, bias=False),
        )
        self.w1, self.w2 = nn.Parameter(1 + 0.3 * torch.randn(8)), nn.Parameter(1 + 0.3 * torch.randn(8))
        self.norm = _norms(kind)

    def forward(self, x):
        h = F.gelu(self.norm(self.l1(x), self.w1))
        return self.l3(self.norm(self.l2(h), self.w2))


def _dl(model, x, base, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)  # no unknown op, no product warning
        return cu.DeepLiftRescale(model, **kw).attribute(x, baselines=base, target=1)


@pytest.mark.parametrize(
    "hand, fused",
    [
        ("rms_llama", "rms_fused"),
        ("rms_t5", "rms_fused"),
        ("rms_square", "rms_fused"),
        ("rms_pow", "rms_fused"),
        ("rms_sum", "rms_fused"),
        ("rms_weight_first", "rms_fused"),
        ("ln_weight_first", "ln_fused"),
        ("ln_var", "ln_fused"),
        ("ln_two_centrings", "ln_fused"),
        ("ln_recip", "ln_fused"),
    ],
)
@pytest.mark.parametrize("base", ["zero", "random", "batch-1"])
@pytest.mark.parametrize("norm", ["secant", "integrated"])
def test_hand_written_norms_equal_the_fused_ones(hand, fused, base, norm):
    x = torch.randn(4, 6, dtype=D)
    b = {
        "zero": torch.zeros(4, 6, dtype=D),
        "random": torch.randn(4, 6, dtype=D),
        "batch-1": torch.randn(1, 6, dtype=D),
    }
    a_hand = _dl(Net(hand).to(D), x, b[base], norm=norm)
    a_fused = _dl(Net(fused).to(D), x, b[base], norm=norm)
    torch.testing.assert_close(a_hand, a_fused, atol=1e-10, rtol=1e-8)
    model = Net(hand).to(D)
    with torch.no_grad():
        df = model(x)[:, 1] - model(b[base].expand_as(x))[:, 1]
    torch.testing.assert_close(a_hand.sum(-1), df, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("hand, fused", [("rms_llama", "rms_fused"), ("ln_var", "ln_fused")])
def test_hand_written_norms_under_epsilon_lrp_hold_the_scale_constant(hand, fused):
    x = torch.randn(4, 6, dtype=D)
    for products in ("uniform", "gate"):
        a_hand = cu.EpsilonLRP(Net(hand).to(D), products=products).attribute(x, target=1)
        a_fused = cu.EpsilonLRP(Net(fused).to(D), products=products).attribute(x, target=1)
        torch.testing.assert_close(a_hand, a_fused, atol=1e-10, rtol=1e-8)


class StdEps(nn.Module):
    """(x - mean) / (std + eps): no fused twin; recognised with h(q) = 1 / (sqrt(k q) + eps)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.l1, self.l2 = nn.Linear(6, 8, bias=False), nn.Linear(8, 2, bias=False)

    def forward(self, x):
        h = self.l1(x)
        h = (h - h.mean(-1, keepdim=True)) / (h.std(-1, keepdim=True) + 1e-3)
        return self.l2(torch.tanh(h))


class Normalize(nn.Module):
    def __init__(self, by_hand: bool):
        super().__init__()
        torch.manual_seed(2)
        self.l1, self.l2 = nn.Linear(6, 8, bias=False), nn.Linear(8, 2, bias=False)
        self.by_hand = by_hand

    def forward(self, x):
        h = self.l1(x)
        h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12) if self.by_hand else F.normalize(h, dim=-1)
        return self.l2(torch.tanh(3 * h))


def test_std_plus_eps_and_normalize_are_recognised_complete_and_bounded():
    x, zero = torch.randn(4, 6, dtype=D), torch.zeros(4, 6, dtype=D)
    for model in (StdEps().to(D), Normalize(True).to(D), Normalize(False).to(D)):
        a = _dl(model, x, zero)
        with torch.no_grad():
            df = model(x)[:, 1] - model(zero)[:, 1]
        torch.testing.assert_close(a.sum(-1), df, atol=1e-12, rtol=1e-10)
        # the op-by-op Shapley split multiplies by 1 / eps at the zero baseline and cancels
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            shapley = cu.DeepLiftRescale(model, norm="decompose").attribute(x, baselines=zero, target=1)
        assert a.abs().sum() < 10 * df.abs().sum(), type(model).__name__
        assert shapley.abs().sum() > 100 * a.abs().sum(), type(model).__name__
    torch.testing.assert_close(_dl(Normalize(True).to(D), x, zero), _dl(Normalize(False).to(D), x, zero))


def test_a_norm_over_other_dimensions_than_its_centring_is_left_to_the_products():
    """(x - mean over -1) / sqrt(var over 0): not a normalisation of one row; op by op, still complete."""

    def f(x):
        c = x - x.mean(-1, keepdim=True)
        return (c / torch.sqrt(c.pow(2).mean(0, keepdim=True) + 1e-3)).sum(-1, keepdim=True)

    x, b = torch.randn(5, 4, dtype=D), torch.randn(5, 4, dtype=D)
    a = cu.DeepLiftRescale(f).attribute(x, baselines=b, target=0)
    torch.testing.assert_close(a.sum(), (f(x) - f(b)).sum(), atol=1e-10, rtol=1e-10)


def test_a_scale_multiplying_another_tensor_is_reported():
    def f(x):
        return (torch.tanh(x) * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-5)).sum(-1, keepdim=True)

    x = torch.randn(3, 4, dtype=D)
    with pytest.warns(cu.AttributionWarning, match="Multiply the normalised tensor first"):
        a = cu.DeepLiftRescale(f).attribute(x, baselines=torch.randn(3, 4, dtype=D), target=0)
    assert torch.isfinite(a).all()
