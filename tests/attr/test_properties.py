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
    # Captum builds its step weights as float32 tensors (relative error ~3e-8);
    # ours keeps the input dtype, hence rtol 1e-6 rather than float64 precision.
    assert_close(ours, theirs.detach(), atol=1e-10, rtol=1e-6)
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
