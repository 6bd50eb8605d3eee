"""SPEC §1 facts: Propositions 3 and 4 of Ancona et al., completeness of
DeepLIFT and Integrated Gradients, and the §3.1 multiplicative counterexample.
Expected values come from brute-force math written here or from the other
method the proposition relates to, never from stored numbers."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DTYPE, assert_close, make_cnn, make_mlp, randn, seeded

import captum_unified as cu


# ------------------------------------------------------------------ Prop. 3 (i)
@pytest.mark.parametrize(
    "factory",
    [
        lambda: make_mlp((6, 8, 7, 4), "relu", seed=1),
        lambda: make_mlp((6, 8, 4), "relu", bias=False, seed=2),
        lambda: make_cnn("relu", "avg", seed=3),
        lambda: make_cnn("relu", "max", seed=4),
    ],
    ids=["mlp", "mlp-nobias", "cnn-avg", "cnn-max"],
)
def test_prop3i_epsilon_lrp_equals_gradient_x_input_on_relu(factory):
    model = factory()
    x = randn(4, 2, 6, 6, seed=5) if isinstance(model, nn.Module) and hasattr(model, "conv1") else randn(4, 6, seed=5)
    for target in (0, [1, 2, 2, 0]):
        lrp = cu.EpsilonLRP(model, epsilon=1e-12).attribute(x, target=target)
        gi = cu.GradientXInput(model).attribute(x, target=target)
        # independent GI: plain autograd
        xx = x.clone().requires_grad_(True)
        out = model(xx)
        idx = torch.as_tensor(target).expand(4) if isinstance(target, int) else torch.tensor(target)
        (g,) = torch.autograd.grad(out[torch.arange(4), idx].sum(), xx)
        assert_close(gi, g * x, atol=1e-12)
        assert_close(lrp, g * x, atol=1e-9, rtol=1e-8)


def test_prop3i_fails_off_relu():
    """Guard against a vacuous Prop. 3i check: with Tanh they differ."""
    model = make_mlp((6, 8, 4), "tanh", seed=6)
    x = randn(4, 6, seed=5)
    lrp = cu.EpsilonLRP(model, epsilon=1e-12).attribute(x, target=1)
    gi = cu.GradientXInput(model).attribute(x, target=1)
    assert (lrp - gi).abs().max() > 1e-3


# ------------------------------------------------------------------ Prop. 3 (ii)
class NoBiasCNN(nn.Module):
    def __init__(self, act):
        super().__init__()
        self.c = nn.Conv2d(2, 3, 3, bias=False)
        self.act = nn.ReLU() if act == "relu" else nn.Tanh()
        self.fc = nn.Linear(3 * 4 * 4, 2, bias=False)

    def forward(self, x):
        return self.fc(torch.flatten(self.act(self.c(x)), 1))


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_prop3ii_deeplift_zero_baseline_equals_epsilon_lrp_without_bias(act, kind):
    if kind == "mlp":
        model = make_mlp((6, 8, 7, 3), act, bias=False, seed=7)
        x = randn(5, 6, seed=8)
    else:
        seeded(9)
        model = NoBiasCNN(act).to(DTYPE).eval()
        x = randn(5, 2, 6, 6, seed=8)
    dl = cu.DeepLiftRescale(model).attribute(x, baselines=0.0, target=1)
    lrp = cu.EpsilonLRP(model, epsilon=1e-12).attribute(x, target=1)
    assert_close(dl, lrp, atol=1e-9, rtol=1e-8)


def test_prop3ii_needs_no_bias():
    """Guard: with biases and Tanh the two differ (the premise matters)."""
    model = make_mlp((6, 8, 7, 3), "tanh", bias=True, seed=7)
    x = randn(5, 6, seed=8)
    dl = cu.DeepLiftRescale(model).attribute(x, baselines=0.0, target=1)
    lrp = cu.EpsilonLRP(model, epsilon=1e-12).attribute(x, target=1)
    assert (dl - lrp).abs().max() > 1e-4


# ------------------------------------------------------------------ Prop. 4
class LinearNet(nn.Module):
    """Linear - identity - Linear: a linear model S_c(x) = sum_i a_i x_i + b."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.Linear(6, 5)
        self.l2 = nn.Linear(5, 3)

    def forward(self, x):
        return self.l2(self.l1(x))


def test_prop4_all_methods_equal_on_linear_model():
    seeded(10)
    model = LinearNet().to(DTYPE).eval()
    x = randn(4, 6, seed=11)
    target = [0, 1, 2, 1]
    a = (model.l2.weight @ model.l1.weight)[torch.tensor(target)]  # (4, 6): a_i per sample
    expected = a * x  # a_i x_i with a zero baseline (Appendix A.3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        results = {
            "gi": cu.GradientXInput(model).attribute(x, target=target),
            "ig": cu.IntegratedGradients(model).attribute(x, target=target, n_steps=3),
            "lrp": cu.EpsilonLRP(model, epsilon=1e-12).attribute(x, target=target),
            "dl": cu.DeepLiftRescale(model).attribute(x, baselines=0.0, target=target),
            "occ": cu.Occlusion1(model).attribute(x, target=target),
        }
    for name, r in results.items():
        # epsilon-LRP keeps only the output's bias share out: with eps->0 and
        # relevance S/(S) at the output it is a_i x_i as well.
        assert_close(r, expected, atol=1e-9, rtol=1e-8, msg=name)


def test_prop4_sensitivity_n_on_linear_model():
    """Occlusion-1 (hence all methods) satisfies Sensitivity-n on a linear model:
    sum over any subset S of R_i equals S_c(x) - S_c(x_[x_S=0])."""
    seeded(12)
    model = LinearNet().to(DTYPE).eval()
    x = randn(2, 6, seed=13)
    r = cu.GradientXInput(model).attribute(x, target=2)
    g = torch.Generator().manual_seed(0)
    for n in (1, 2, 4, 6):
        for _ in range(5):
            idx = torch.randperm(6, generator=g)[:n]
            xs = x.clone()
            xs[:, idx] = 0
            with torch.no_grad():
                diff = model(x)[:, 2] - model(xs)[:, 2]
            assert_close(r[:, idx].sum(1), diff, atol=1e-10)


# ------------------------------------------------------------------ completeness
COMPLETE_MODELS = [
    ("mlp-tanh", lambda: make_mlp((6, 8, 7, 3), "tanh", seed=20), (4, 6)),
    ("mlp-sigmoid", lambda: make_mlp((6, 8, 7, 3), "sigmoid", seed=21), (4, 6)),
    ("mlp-softplus", lambda: make_mlp((6, 8, 3), "softplus", seed=22), (4, 6)),
    ("mlp-relu", lambda: make_mlp((6, 8, 7, 3), "relu", seed=23), (4, 6)),
    ("mlp-gelu", lambda: make_mlp((6, 8, 7, 3), "gelu", seed=24), (4, 6)),
    ("cnn-elu", lambda: make_cnn("elu", "avg", seed=25), (3, 2, 6, 6)),
]


@pytest.mark.parametrize("name,factory,shape", COMPLETE_MODELS, ids=[c[0] for c in COMPLETE_MODELS])
def test_deeplift_completeness(name, factory, shape):
    model = factory()
    x = randn(*shape, seed=30)
    for bl in (0.0, randn(1, *shape[1:], seed=31), randn(*shape, seed=32)):
        attr, delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=2, return_convergence_delta=True)
        xb = torch.as_tensor(bl, dtype=DTYPE).expand_as(x) if not torch.is_tensor(bl) else bl.expand_as(x)
        with torch.no_grad():
            expected = model(x)[:, 2] - model(xb)[:, 2]
        assert_close(attr.reshape(shape[0], -1).sum(1), expected, atol=1e-9, rtol=1e-8)
        assert delta.abs().max() < 1e-9
        assert_close(delta, attr.reshape(shape[0], -1).sum(1) - expected, atol=1e-12)


@pytest.mark.parametrize(
    "name,factory,shape",
    COMPLETE_MODELS[:3] + COMPLETE_MODELS[4:],
    ids=[c[0] for c in COMPLETE_MODELS[:3] + COMPLETE_MODELS[4:]],
)
def test_integrated_gradients_completeness(name, factory, shape):
    model = factory()
    x = randn(*shape, seed=33)
    bl = randn(1, *shape[1:], seed=34)
    with torch.no_grad():
        expected = model(x)[:, 0] - model(bl.expand_as(x))[:, 0]
    errs = []
    for steps in (4, 64):
        attr, delta = cu.IntegratedGradients(model).attribute(
            x, baselines=bl, target=0, n_steps=steps, return_convergence_delta=True
        )
        err = (attr.reshape(shape[0], -1).sum(1) - expected).abs().max()
        assert_close(delta.abs().max(), err, atol=1e-12)
        errs.append(err)
    # Gauss-Legendre converges fast on smooth nets (ELU is C1 only: slower)
    assert errs[1] < (1e-4 if name.endswith("elu") and name.startswith("cnn") else 1e-6)
    assert errs[1] < errs[0]


def test_integrated_gradients_completeness_relu_riemann():
    model = make_mlp((6, 8, 7, 3), "relu", seed=23)
    x = randn(4, 6, seed=33)
    with torch.no_grad():
        expected = model(x)[:, 1] - model(torch.zeros_like(x))[:, 1]
    attr = cu.IntegratedGradients(model).attribute(x, target=1, n_steps=2000, method="riemann_trapezoid")
    assert_close(attr.sum(1), expected, atol=2e-3, rtol=0)


# ------------------------------------------------------------------ §3.1 counterexample
def h(x):
    """h(x1, x2) = ReLU(x1 - 1) * ReLU(x2), one output per sample."""
    return F.relu(x[:, 0] - 1) * F.relu(x[:, 1])


def test_multiplicative_counterexample_ig_complete_deeplift_not():
    """Ancona et al.'s original DeepLIFT (ordinary product rule) is not complete
    on h, and its convergence delta reports the true gap."""
    x = torch.tensor([[3.0, 2.0], [2.5, 0.5], [4.0, 1.0]], dtype=DTYPE)
    expected_total = h(x) - h(torch.zeros_like(x))
    # Table 1 by hand, zero baseline: z1 = x1 - 1 (ref -1), z2 = x2 (ref 0).
    x1, x2 = x[:, 0], x[:, 1]
    g1 = (F.relu(x1 - 1) - F.relu(torch.tensor(-1.0, dtype=DTYPE))) / ((x1 - 1) - (-1.0))
    g2 = (F.relu(x2) - 0.0) / (x2 - 0.0)
    dl_expected = torch.stack([x1 * g1 * F.relu(x2), x2 * g2 * F.relu(x1 - 1)], 1)
    with pytest.warns(cu.AttributionWarning, match="product"):
        dl, dl_delta = cu.DeepLiftRescale(h, products="gradient").attribute(
            x, baselines=0.0, return_convergence_delta=True
        )
    assert_close(dl, dl_expected, atol=1e-12)
    assert (dl.sum(1) - expected_total).abs().min() > 0.1  # not complete
    assert_close(dl_delta, dl.sum(1) - expected_total, atol=1e-12)

    ig, ig_delta = cu.IntegratedGradients(h).attribute(
        x, baselines=0.0, n_steps=4000, method="riemann_middle", return_convergence_delta=True
    )
    assert_close(ig.sum(1), expected_total, atol=5e-3, rtol=0)
    assert ig_delta.abs().max() < 5e-3


def test_shapley_products_make_deeplift_complete_on_the_counterexample():
    """SPEC §5: with the two-player Shapley split each factor gets
    (1/2)(other + other at baseline): by hand, and complete."""
    x = torch.tensor([[3.0, 2.0], [2.5, 0.5], [4.0, 1.0]], dtype=DTYPE)
    base = torch.tensor([[0.5, -0.3]], dtype=DTYPE)
    expected_total = h(x) - h(base)
    x1, x2, b1, b2 = x[:, 0], x[:, 1], base[:, 0], base[:, 1]
    a, ab = F.relu(x1 - 1), F.relu(b1 - 1)
    c, cb = F.relu(x2), F.relu(b2)
    dz1, dz2 = x1 - b1, x2 - b2
    ga = torch.where((dz1).abs() > 1e-10, (a - ab) / dz1, (x1 - 1 > 0).to(DTYPE))
    gc = torch.where((dz2).abs() > 1e-10, (c - cb) / dz2, (x2 > 0).to(DTYPE))
    expected = torch.stack([dz1 * ga * 0.5 * (c + cb), dz2 * gc * 0.5 * (a + ab)], 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        dl, delta = cu.DeepLiftRescale(h).attribute(x, baselines=base, return_convergence_delta=True)
    assert_close(dl, expected, atol=1e-12)
    assert_close(dl.sum(1), expected_total, atol=1e-12)
    assert delta.abs().max() < 1e-12


def test_no_product_warning_without_products():
    model = make_mlp((4, 5, 2), "tanh", seed=40)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        cu.DeepLiftRescale(model).attribute(randn(3, 4, seed=1), target=0)
