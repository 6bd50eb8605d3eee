"""The rule must reach a nonlinearity however the model calls it (SPEC §1):
an nn.Module per call site, a function (F.relu, torch.tanh, x.sigmoid(), ...),
one module object reused at several places, or a module created in forward.
Also custom rules (subclassing Rule) and in-place ReLU."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from captum.attr import DeepLift as CDeepLift
from conftest import ACTIVATIONS, DTYPE, STYLES, assert_close, make_mlp, make_styled, randn

import captum_unified as cu


class DerivativeRule(cu.Rule):
    """g = f'(z): must reproduce Gradient*Input."""

    def multiplier(self, f, z, out, ref_z=None, ref_out=None):
        return cu.derivative(f, z)


class OneRule(cu.Rule):
    """g = 1: the net with every activation replaced by the identity."""

    def multiplier(self, f, z, out, ref_z=None, ref_out=None):
        return torch.ones_like(z)


def _methods(model, x, bl):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        return {
            "gi": cu.GradientXInput(model).attribute(x, target=1),
            "ig": cu.IntegratedGradients(model).attribute(x, baselines=bl, target=1, n_steps=8),
            "lrp": cu.EpsilonLRP(model, epsilon=1e-3).attribute(x, target=1),
            "dl": cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=1, return_convergence_delta=True),
            "custom": cu.ModifiedGradient(model, OneRule()).attribute(x, baselines=bl, target=1),
            "occ": cu.Occlusion1(model).attribute(x, baselines=bl, target=1),
        }


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_every_call_style_gives_the_same_attributions(act):
    x = randn(3, 4, seed=1)
    bl = randn(1, 4, seed=2) * 0.5
    ref = _methods(make_styled(act=act, style="module", seed=5), x, bl)
    # guard: the rules really change something for this activation
    assert (ref["custom"] - ref["gi"]).abs().max() > 1e-6
    for style in STYLES[1:]:
        model = make_styled(act=act, style=style, seed=5)
        got = _methods(model, x, bl)
        for name in ref:
            assert_close(got[name], ref[name], atol=1e-12, msg=f"{act}/{style}/{name}")
        attr, delta = got["dl"]
        with torch.no_grad():
            total = model(x)[:, 1] - model(bl.expand_as(x))[:, 1]
        assert_close(attr.sum(1), total, atol=1e-10)
        assert delta.abs().max() < 1e-10


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_module_style_deeplift_is_complete_and_gi_matches_autograd(act):
    """Independent anchor for the style comparison above."""
    model = make_styled(act=act, style="module", seed=5)
    x = randn(3, 4, seed=1)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[:, 1].sum(), xx)
    assert_close(cu.GradientXInput(model).attribute(x, target=1), g * x, atol=1e-12)
    bl = randn(1, 4, seed=2)
    attr = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=1)
    with torch.no_grad():
        total = model(x)[:, 1] - model(bl.expand_as(x))[:, 1]
    assert_close(attr.sum(1), total, atol=1e-10)


class ManyWaysNet(nn.Module):
    """One network reaching ReLU/Sigmoid/Tanh by every spelling torch offers."""

    def __init__(self, spelling):
        super().__init__()
        torch.manual_seed(3)
        self.l1, self.l2, self.l3 = nn.Linear(4, 6), nn.Linear(6, 5), nn.Linear(5, 2)
        self.spelling = spelling

    def forward(self, x):
        z = self.l1(x)
        s = self.spelling
        if s == "nn":
            a = nn.ReLU()(z)
        elif s == "torch":
            a = torch.relu(z)
        elif s == "method":
            a = z.relu()
        elif s == "inplace_method":
            a = z.clone().relu_()
        elif s == "F_inplace":
            a = F.relu(z.clone(), inplace=True)
        elif s == "nn_inplace":
            a = nn.ReLU(inplace=True)(z.clone())
        z = self.l2(a)
        if s in ("nn", "nn_inplace"):
            b = nn.Sigmoid()(z)
        elif s == "torch":
            b = torch.sigmoid(z)
        elif s in ("method", "inplace_method"):
            b = z.sigmoid()
        else:
            b = F.sigmoid(z)
        z = self.l3(b)
        return nn.Tanh()(z) if s.startswith("nn") else (torch.tanh(z) if s == "torch" else z.tanh())


@pytest.mark.parametrize("spelling", ["torch", "method", "inplace_method", "F_inplace", "nn_inplace"])
def test_spellings_and_inplace_agree(spelling):
    x = randn(3, 4, seed=7)
    ref = ManyWaysNet("nn").to(DTYPE)
    model = ManyWaysNet(spelling).to(DTYPE)
    for method in (
        lambda m: cu.DeepLiftRescale(m).attribute(x, baselines=0.1, target=0),
        lambda m: cu.EpsilonLRP(m, epsilon=1e-2).attribute(x, target=1),
        lambda m: cu.ModifiedGradient(m, OneRule()).attribute(x, target=1),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            assert_close(method(model), method(ref), atol=1e-12, msg=spelling)


def test_inplace_relu_module_model_matches_captum_deeplift():
    torch.manual_seed(8)
    model = nn.Sequential(nn.Linear(4, 6), nn.ReLU(inplace=True), nn.Linear(6, 3)).to(DTYPE).eval()
    plain = nn.Sequential(model[0], nn.ReLU(), model[2]).eval()
    x = randn(3, 4, seed=1)
    bl = randn(1, 4, seed=2)
    ours, delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=2, return_convergence_delta=True)
    theirs = CDeepLift(plain).attribute(x, baselines=bl, target=2)
    assert_close(ours, theirs, atol=1e-10)
    assert delta.abs().max() < 1e-10
    assert_close(cu.GradientXInput(model).attribute(x, target=2), cu.GradientXInput(plain).attribute(x, target=2))


# ------------------------------------------------------------------ Captum's DeepLift
def test_captum_deeplift_raises_on_reused_module_ours_does_not():
    model = make_styled(act="relu", style="reused", seed=5)
    x = randn(3, 4, seed=1)
    with pytest.raises(RuntimeError, match="used more than once"):
        CDeepLift(model).attribute(x, baselines=0.0, target=1)
    attr, delta = cu.DeepLiftRescale(model).attribute(x, baselines=0.0, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10
    ref = cu.DeepLiftRescale(make_styled(act="relu", style="module", seed=5)).attribute(x, baselines=0.0, target=1)
    assert_close(attr, ref, atol=1e-12)


def test_captum_deeplift_loses_completeness_on_torch_tanh_ours_does_not():
    model = make_styled(act="tanh", style="functional", seed=5)
    x = randn(3, 4, seed=1)
    bl = randn(1, 4, seed=2)
    _, their_delta = CDeepLift(model).attribute(x, baselines=bl, target=1, return_convergence_delta=True)
    assert their_delta.abs().max() > 1e-3  # silently incomplete (gradient used at torch.tanh)
    _, our_delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=1, return_convergence_delta=True)
    assert our_delta.abs().max() < 1e-10


# ------------------------------------------------------------------ custom rules
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_custom_derivative_rule_reproduces_gradient_x_input(act):
    model = make_styled(act=act, style="functional", seed=6)
    x = randn(4, 4, seed=3)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[:, 2].sum(), xx)
    got = cu.ModifiedGradient(model, DerivativeRule()).attribute(x, target=2)
    assert_close(got, g * x, atol=1e-12)


class Linearised(nn.Module):
    def __init__(self, linears):
        super().__init__()
        self.linears = linears

    def forward(self, x):
        for lin in self.linears:
            x = lin(x)
        return x


@pytest.mark.parametrize("act", ["relu", "tanh", "sigmoid", "gelu"])
@pytest.mark.parametrize("style", STYLES)
def test_custom_constant_rule_linearises_the_net(act, style):
    model = make_styled(act=act, style=style, seed=7)
    lin = Linearised(model.linears).to(DTYPE)
    x = randn(4, 4, seed=3)
    bl = randn(1, 4, seed=4)
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(lin(xx)[:, 0].sum(), xx)  # brute force: W3 W2 W1 row
    W = model.linears[2].weight @ model.linears[1].weight @ model.linears[0].weight
    assert_close(g, W[0].expand_as(x), atol=1e-12)
    got = cu.ModifiedGradient(model, OneRule()).attribute(x, baselines=bl, target=0)
    assert_close(got, g * (x - bl), atol=1e-12)
    mult = cu.ModifiedGradient(model, OneRule(), multiply_by_inputs=False).attribute(x, target=0)
    assert_close(mult, g, atol=1e-12)


def test_custom_rule_with_reference_gets_baseline_preactivations():
    seen = {}

    class RefRule(cu.Rule):
        needs_reference = True

        def multiplier(self, f, z, out, ref_z=None, ref_out=None):
            seen.setdefault("ref", []).append((ref_z.clone(), ref_out.clone()))
            return (out - ref_out) / (z - ref_z)

    model = make_mlp((4, 5, 3), "tanh", seed=9)
    x = randn(3, 4, seed=1)
    bl = randn(1, 4, seed=2)
    got = cu.ModifiedGradient(model, RefRule()).attribute(x, baselines=bl, target=1)
    ref_z, ref_out = seen["ref"][0]
    with torch.no_grad():
        z_bar = model.linears[0](bl)
    assert_close(ref_z.expand(3, 5), z_bar.expand(3, 5), atol=1e-12)
    assert_close(ref_out.expand(3, 5), torch.tanh(z_bar).expand(3, 5), atol=1e-12)
    assert_close(got, cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=1), atol=1e-12)


def test_modified_gradient_rejects_non_rule():
    with pytest.raises(TypeError, match="Rule"):
        cu.ModifiedGradient(make_mlp((4, 5, 3)), lambda z: z)
