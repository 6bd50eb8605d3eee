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

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        return cu.derivative(f, z)


class OneRule(cu.Rule):
    """g = 1: the net with every activation replaced by the identity."""

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
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

        def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
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


# ------------------------------------------------ in-place writes, spellings
_W = randn(6, 4, seed=21)
_V = randn(6, 6, seed=22) * 0.5
_G = randn(6, 4, seed=23)
_LN = nn.LayerNorm(6).to(DTYPE)

# (name, in-place spelling, out-of-place twin): every op writes into a tensor
# that an earlier treated op (the reference pass records its inputs) still needs
INPLACE_WRITES = [
    ("h += tanh(h)", lambda h, g: h.__iadd__(torch.tanh(h)), lambda h, g: h + torch.tanh(h)),
    ("h += ln(h) @ V", lambda h, g: h.__iadd__(_LN(h) @ _V), lambda h, g: h + _LN(h) @ _V),
    ("h.mul_(g)", lambda h, g: h.mul_(g), lambda h, g: h * g),
    ("h *= sigmoid(g)", lambda h, g: h.__imul__(torch.sigmoid(g)), lambda h, g: h * torch.sigmoid(g)),
    ("h /= sigmoid(h) + 1", lambda h, g: h.__itruediv__(h.sigmoid() + 1), lambda h, g: h / (h.sigmoid() + 1)),
    ("h **= 3", lambda h, g: h.__ipow__(3), lambda h, g: h**3),
    ("h[:, :2] *= g[:, :2]", None, None),
]


def _write_model(op):
    def f(x):
        h, g = x @ _W.T, torch.tanh(x @ _G.T)
        t = torch.tanh(h)  # records h in the reference pass
        h = op(h, g)
        return (h + t).sum(1, keepdim=True)

    return f


def _slice_inplace(h, g):
    h[:, :2] *= g[:, :2]
    return h


def _slice_twin(h, g):
    return torch.cat([h[:, :2] * g[:, :2], h[:, 2:]], 1)


@pytest.mark.parametrize("name,inplace,twin", INPLACE_WRITES, ids=[c[0] for c in INPLACE_WRITES])
def test_inplace_writes_after_an_op_recorded_its_input_stay_complete(name, inplace, twin):
    """The reference pass keeps the tensors DeepLIFT pairs with; an in-place
    write into one of them later (``x += block(ln(x))``) must not change them."""
    if inplace is None:
        inplace, twin = _slice_inplace, _slice_twin
    x, bl = randn(3, 4, seed=24), randn(3, 4, seed=25)
    model, reference = _write_model(inplace), _write_model(twin)
    attr, delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=0, return_convergence_delta=True)
    ref = cu.DeepLiftRescale(reference).attribute(x, baselines=bl, target=0)
    with torch.no_grad():
        gap = (reference(x) - reference(bl))[:, 0]
    assert_close((delta / gap).abs().max(), torch.zeros((), dtype=DTYPE), atol=1e-10, rtol=0)
    assert_close(attr, ref, atol=1e-12, rtol=1e-10)


def test_reflected_division_is_a_quotient():
    """``1 / t`` (``Tensor.__rtruediv__``, whose ``__name__`` is ``__rdiv__``)
    equals ``torch.reciprocal(t)``."""
    x, bl = randn(3, 4, seed=26), randn(3, 4, seed=27)

    def spelled(f):
        return lambda x: f(1 + torch.exp(-(x @ _W.T))).sum(1, keepdim=True)

    a, d = cu.DeepLiftRescale(spelled(lambda t: 1 / t)).attribute(
        x, baselines=bl, target=0, return_convergence_delta=True
    )
    b = cu.DeepLiftRescale(spelled(torch.reciprocal)).attribute(x, baselines=bl, target=0)
    assert_close(a, b, atol=1e-12, rtol=1e-10)
    assert float(d.abs().max()) < 1e-10


def test_sdpa_with_keyword_arguments_equals_positional():
    x, bl = randn(2, 5, 4, seed=28), randn(2, 5, 4, seed=29)

    def model(kw):
        def f(x):
            q, k, v = x @ _W[:4].T, x @ _G[:4].T, x
            if kw:
                o = F.scaled_dot_product_attention(query=q, key=k, value=v, is_causal=True)
            else:
                o = F.scaled_dot_product_attention(q, k, v, None, 0.0, True)
            return o.sum((1, 2)).unsqueeze(1)

        return f

    a, d = cu.DeepLiftRescale(model(True)).attribute(x, baselines=bl, target=0, return_convergence_delta=True)
    assert_close(a, cu.DeepLiftRescale(model(False)).attribute(x, baselines=bl, target=0), atol=1e-12, rtol=1e-10)
    assert float(d.abs().max()) < 1e-10


@pytest.mark.parametrize(
    "name,select",
    [
        ("torch.where", lambda h: torch.where(h > 0, h, 0.1 * h)),
        ("Tensor.masked_fill", lambda h: h.masked_fill(h < 0, 0.0)),
        ("Tensor.mul", lambda h: h * (h > 0).to(h.dtype)),
    ],
    ids=["where", "masked_fill", "mul-by-float-mask"],
)
def test_selection_by_an_input_dependent_mask_warns_naming_the_op(name, select):
    """A hand-written leaky ReLU by ``where`` is a step function DeepLIFT
    cannot see: it warns (the delta stays honest); the same selection by a
    mask that does not depend on the input is linear and says nothing."""
    x, bl = randn(3, 4, seed=30), randn(3, 4, seed=31)

    def model(x):
        return select(x @ _W.T).sum(1, keepdim=True)

    with pytest.warns(cu.AttributionWarning, match=rf"mask computed from the inputs: {name} \(1x\)"):
        attr, delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=0, return_convergence_delta=True)
    with torch.no_grad():
        gap = (model(x) - model(bl))[:, 0]
    assert_close(delta, attr.sum(1) - gap, atol=1e-12, rtol=0)  # the delta stays honest

    fixed = torch.tensor([True, False, True, False, True, True])

    def constant_mask(x):
        h = x @ _W.T
        return torch.where(fixed, h, 0.1 * h).sum(1, keepdim=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        _, d = cu.DeepLiftRescale(constant_mask).attribute(x, baselines=bl, target=0, return_convergence_delta=True)
    assert float(d.abs().max()) < 1e-10
    # gradient methods differentiate the selection exactly: nothing to say
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        cu.GradientXInput(model).attribute(x, target=0)


def test_backend_decompositions_do_not_report_their_own_helpers():
    """``torch.maximum`` and ``clamp`` with tensor bounds are decomposed with
    ``broadcast_tensors`` / ``as_tensor``: no unknown-op warning."""
    x, bl = randn(3, 4, seed=32), randn(3, 4, seed=33)

    def model(x):
        h, g = x @ _W.T, x @ _G.T
        return (torch.maximum(h, g) + h.clamp(min=g)).sum(1, keepdim=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        _, d = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=0, return_convergence_delta=True)
    assert float(d.abs().max()) < 1e-10
