"""Property-based tests over random small architectures (depth 1-3 hidden
layers, widths 1-6, six activations, module vs functional style), random
inputs and baselines. Oracles: completeness computed from two forward passes,
Captum's IntegratedGradients and InputXGradient, and Gradient*Input (Prop. 3i)."""

from __future__ import annotations

import torch
from captum.attr import InputXGradient as CInputXGradient
from captum.attr import IntegratedGradients as CIG
from conftest import DTYPE, MLP, FunctionalMLP, assert_close
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import captum_unified as cu

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ACTS = ["relu", "tanh", "sigmoid", "softplus", "elu", "gelu"]


@st.composite
def nets(draw, acts=ACTS):
    depth = draw(st.integers(1, 3))
    widths = [draw(st.integers(1, 6)) for _ in range(depth + 2)]
    act = draw(st.sampled_from(acts))
    style = draw(st.sampled_from(["module", "functional"]))
    seed = draw(st.integers(0, 2**16))
    batch = draw(st.integers(1, 4))
    scale = draw(st.sampled_from([0.1, 1.0, 3.0]))
    torch.manual_seed(seed)
    base = MLP(widths, act).to(DTYPE).eval()
    model = base if style == "module" else FunctionalMLP(base, act, "functional").to(DTYPE).eval()
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, widths[0], generator=g, dtype=DTYPE) * scale
    bl_kind = draw(st.sampled_from(["zero", "scalar", "batch1", "full"]))
    if bl_kind == "zero":
        bl = 0.0
    elif bl_kind == "scalar":
        bl = draw(st.floats(-1, 1, allow_nan=False))
    elif bl_kind == "batch1":
        bl = torch.randn(1, widths[0], generator=g, dtype=DTYPE)
    else:
        bl = torch.randn(batch, widths[0], generator=g, dtype=DTYPE)
    target = draw(st.integers(0, widths[-1] - 1))
    return model, x, bl, target


def _expand(bl, x):
    if isinstance(bl, float):
        return torch.full_like(x, bl)
    return bl.expand_as(x)


@SETTINGS
@given(nets())
def test_deeplift_is_complete(case):
    model, x, bl, target = case
    attr, delta = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=target, return_convergence_delta=True)
    with torch.no_grad():
        gap = model(x)[:, target] - model(_expand(bl, x))[:, target]
    scale = 1.0 + gap.abs().max()
    assert (attr.sum(1) - gap).abs().max() < 1e-9 * scale
    assert delta.abs().max() < 1e-9 * scale


def _weight_rounding_bound(model, x, baseline, target, n_steps, method):
    """``sum_k w_k |dS/dx_i at x_k| |x_i - b_i|`` per element, by plain autograd (float64)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    step_sizes, alphas = (f(n_steps) for f in approximation_parameters(method))
    total = torch.zeros_like(x)
    for w, a in zip(step_sizes, alphas):
        point = (baseline + a * (x - baseline)).requires_grad_()
        (grad,) = torch.autograd.grad(model(point)[:, target].sum(), point)
        total += abs(w) * grad.abs()
    return total * (x - baseline).abs()


@SETTINGS
@given(nets(), st.sampled_from(["gausslegendre", "riemann_trapezoid"]), st.integers(1, 24))
def test_integrated_gradients_matches_captum(case, method, n_steps):
    model, x, bl, target = case
    if method == "riemann_trapezoid" and n_steps < 2:
        n_steps = 2
    ours, d1 = cu.IntegratedGradients(model).attribute(
        x, baselines=bl, target=target, n_steps=n_steps, method=method, return_convergence_delta=True
    )
    theirs, d2 = CIG(model).attribute(
        x, baselines=bl, target=target, n_steps=n_steps, method=method, return_convergence_delta=True
    )
    # The one difference: Captum rounds its step weights to float32
    # (``torch.tensor(step_sizes).float()`` in captum/attr/_core/integrated_gradients.py),
    # ours keep the input dtype. Each weight is then off by at most 2**-24 of
    # itself, so element i differs by at most 2**-24 * sum_k w_k |dS/dx_i(x_k)| |x_i - b_i|,
    # computed here by plain autograd at the path points. A tolerance relative
    # to the attribution itself fails where the steps' terms cancel (reported:
    # 1.8e-9 against atol 1e-10), on whichever nets hypothesis draws; the
    # thread count plays no part (same bits on 1 and 2 threads).
    bound = _weight_rounding_bound(model, x, _expand(bl, x), target, n_steps, method)
    err = (ours - theirs.detach()).abs()
    assert bool((err <= 2**-24 * bound + 1e-13 * (1 + bound)).all()), (err - 2**-24 * bound).max()
    assert_close(d1, d2.to(DTYPE), atol=1e-6 * (1.0 + theirs.abs().sum().item()), rtol=1e-6)


@SETTINGS
@given(nets(acts=["tanh", "sigmoid", "softplus", "gelu"]))
def test_integrated_gradients_complete_on_smooth_nets(case):
    """Gauss-Legendre error shrinks with steps; with 48 nodes it is tiny on
    these smooth nets with inputs of moderate size."""
    model, x, bl, target = case
    with torch.no_grad():
        gap = model(x)[:, target] - model(_expand(bl, x))[:, target]
    attr = cu.IntegratedGradients(model).attribute(x, baselines=bl, target=target, n_steps=48)
    assert (attr.sum(1) - gap).abs().max() < 1e-4 * (1.0 + gap.abs().max())


@SETTINGS
@given(nets(acts=["elu"]))
def test_integrated_gradients_complete_on_c1_nets(case):
    """ELU is only C1 (its second derivative jumps at 0): the quadrature error
    across the kink decays like 1/n^2, so 48 nodes give about 1e-3."""
    model, x, bl, target = case
    with torch.no_grad():
        gap = model(x)[:, target] - model(_expand(bl, x))[:, target]
    attr = cu.IntegratedGradients(model).attribute(x, baselines=bl, target=target, n_steps=48)
    assert (attr.sum(1) - gap).abs().max() < 2e-3 * (1.0 + gap.abs().max())


@SETTINGS
@given(nets())
def test_gradient_x_input_matches_captum(case):
    model, x, _, target = case
    ours = cu.GradientXInput(model).attribute(x, target=target)
    theirs = CInputXGradient(model).attribute(x, target=target)
    assert_close(ours, theirs.detach(), atol=1e-12, rtol=1e-10)


@SETTINGS
@given(nets(acts=["relu"]))
def test_epsilon_lrp_with_relu_equals_gradient_x_input(case):
    model, x, _, target = case
    with torch.no_grad():
        s = model(x)[:, target]
    eps = 1e-13
    lrp = cu.EpsilonLRP(model, epsilon=eps).attribute(x, target=target)
    gi = cu.GradientXInput(model).attribute(x, target=target)
    # the stabiliser at the output scales by S/(S + eps sign S); elsewhere exact
    tol = 1e-9 + (eps / s.abs().clamp_min(1e-300)).max().item()
    assert (lrp - gi).abs().max() <= tol * (1.0 + gi.abs().max())


def test_integrated_gradients_differs_from_captum_only_by_its_float32_step_weights():
    """A net with large gradients (weights x4, inputs x3) where the old tolerance
    (atol 1e-10, rtol 1e-6 of the value) fails: the difference is all Captum's
    float32 step weights. Plain-autograd IG with the weights rounded to float32
    is Captum's result to float64 rounding; with float64 weights, ours."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    torch.manual_seed(101)
    model = MLP([4, 5, 3], "tanh").to(DTYPE).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4)
    g = torch.Generator().manual_seed(102)
    x = torch.randn(3, 4, generator=g, dtype=DTYPE) * 3
    bl = torch.randn(3, 4, generator=g, dtype=DTYPE)
    ours = cu.IntegratedGradients(model).attribute(x, baselines=bl, target=1, n_steps=20)
    theirs = CIG(model).attribute(x, baselines=bl, target=1, n_steps=20)

    def by_hand(weight_dtype):
        step_sizes, alphas = (f(20) for f in approximation_parameters("gausslegendre"))
        total = torch.zeros_like(x)
        for w, a in zip(step_sizes, alphas):
            point = (bl + a * (x - bl)).requires_grad_()
            (grad,) = torch.autograd.grad(model(point)[:, 1].sum(), point)
            total += grad * torch.tensor(w, dtype=weight_dtype).to(DTYPE)
        return total * (x - bl)

    torch.testing.assert_close(by_hand(torch.float32), theirs, atol=1e-13, rtol=1e-12)
    torch.testing.assert_close(by_hand(torch.float64), ours, atol=1e-13, rtol=1e-12)
    assert not torch.allclose(ours, theirs, atol=1e-10, rtol=1e-6)  # the old tolerance would fail here
