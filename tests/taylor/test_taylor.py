"""Tests of captum_unified.taylor (Deng et al. 2021 second-order Taylor terms)."""

import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from captum_unified import AttributionWarning, DeepLiftRescale, GradientXInput, IntegratedGradients, Occlusion1
from captum_unified.attr._core.occlusion_patch import OcclusionPatch
from captum_unified.taylor import (
    TaylorAttribution,
    deeplift_reformulation,
    expected_gradients_reformulation,
    gradient_x_input_reformulation,
    group_interactions,
    hessian_diagonal,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    percentage_change,
    softplus_swap,
    taylor_decomposition,
)

DT = torch.float64


def mlp(act, n_in=5, hidden=7, n_out=3, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, hidden), act, nn.Linear(hidden, hidden), act, nn.Linear(hidden, n_out)).to(DT)


class TwoInput(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.a = nn.Linear(4, 6).to(DT)
        self.b = nn.Linear(6, 6).to(DT)
        self.c = nn.Linear(6, 2).to(DT)

    def forward(self, x1, x2):
        h = torch.tanh(self.a(x1) + self.b(x2.flatten(1)))
        return self.c(torch.sigmoid(h) * h)


class Quadratic(nn.Module):
    """S(x) = x^T A x + b^T x + c over the flattened features, per class."""

    def __init__(self, n, n_out=2, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(n_out, n, n, generator=g, dtype=DT)
        self.b = torch.randn(n_out, n, generator=g, dtype=DT)
        self.c = torch.randn(n_out, generator=g, dtype=DT)

    def forward(self, x):
        x = x.flatten(1)
        return torch.einsum("bi,kij,bj->bk", x, self.A, x) + x @ self.b.t() + self.c


def brute_terms(f, x, xb, target):
    """first, independent, interactive from the full Hessian, per sample."""
    xs, bs = list(x), list(xb)
    firsts, indeps, inters = [], [], []
    for xi, bi in zip(xs, bs):

        def s(v):
            return f(v.unsqueeze(0))[0, target]

        xi = xi.clone()
        g = torch.autograd.functional.jacobian(s, xi)
        H = torch.autograd.functional.hessian(s, xi)
        d = xi - bi
        firsts.append(g * d)
        indeps.append(-0.5 * torch.diagonal(H) * d * d)
        inters.append(-0.5 * d * (H @ d) - indeps[-1])
    return torch.stack(firsts), torch.stack(indeps), torch.stack(inters)


@pytest.mark.parametrize("act", [nn.Tanh(), nn.Sigmoid(), nn.Softplus(beta=2.0)])
def test_terms_match_brute_force_hessian(act):
    model = mlp(act)
    x = torch.randn(4, 5, dtype=DT)
    xb = torch.randn(4, 5, dtype=DT) * 0.3
    dec = taylor_decomposition(model, x, xb, target=1)
    f1, f2, f3 = brute_terms(model, x, xb, 1)
    torch.testing.assert_close(dec.first_order, f1)
    torch.testing.assert_close(dec.independent, f2)
    torch.testing.assert_close(dec.interactive, f3)
    diff = model(x)[:, 1] - model(xb)[:, 1]
    torch.testing.assert_close(dec.error, diff - (f1 + f2 + f3).sum(1))
    attr, delta = TaylorAttribution(model, order=2).attribute(x, xb, target=1, return_convergence_delta=True)
    torch.testing.assert_close(attr, f1 + f2 + f3)
    torch.testing.assert_close(delta, -dec.error)
    torch.testing.assert_close(TaylorAttribution(model, order=1).attribute(x, xb, target=1), f1)


def test_terms_tuple_inputs_match_brute_force():
    model = TwoInput()
    x1, x2 = torch.randn(3, 4, dtype=DT), torch.randn(3, 2, 3, dtype=DT)
    b1, b2 = torch.zeros(1, 4, dtype=DT), 0.2
    dec = taylor_decomposition(model, (x1, x2), (b1, b2), target=[0, 1, 0], max_chunk=3)
    flat = torch.cat([x1, x2.flatten(1)], 1)
    bflat = torch.cat([b1.expand(3, 4), torch.full((3, 6), 0.2, dtype=DT)], 1)

    def f(v):
        return model(v[:, :4], v[:, 4:].reshape(-1, 2, 3))

    for k, t in enumerate([0, 1, 0]):
        f1, f2, f3 = brute_terms(f, flat[k : k + 1], bflat[k : k + 1], t)
        got = [
            torch.cat([a[k : k + 1], bb[k : k + 1].flatten(1)], 1)
            for a, bb in (dec.first_order, dec.independent, dec.interactive)
        ]
        torch.testing.assert_close(got[0], f1)
        torch.testing.assert_close(got[1], f2)
        torch.testing.assert_close(got[2], f3)
    assert isinstance(dec.attribution, tuple) and dec.attribution[1].shape == x2.shape


def test_hessian_diagonal_exact_and_hutchinson():
    model = mlp(nn.Tanh(), n_in=6)
    x = torch.randn(2, 6, dtype=DT)
    exact = hessian_diagonal(model, (x,), target=0, max_chunk=4)
    for k in range(2):
        H = torch.autograd.functional.hessian(lambda v: model(v.unsqueeze(0))[0, 0], x[k])
        torch.testing.assert_close(exact[k], torch.diagonal(H))
    errs = [
        (hessian_diagonal(model, (x,), target=0, method="hutchinson", n_samples=n, seed=0) - exact).norm().item()
        for n in (4, 64, 2048)
    ]
    assert errs[2] < errs[0] and errs[2] < 0.1 * exact.norm().item() + 1e-12
    again = hessian_diagonal(model, (x,), target=0, method="hutchinson", n_samples=4, seed=0)
    assert (again - exact).norm().item() == pytest.approx(errs[0])


def test_group_interactions_match_full_hessian():
    model = mlp(nn.Sigmoid(), n_in=6)
    x = torch.randn(2, 6, dtype=DT)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2]])
    m = group_interactions(model, x, mask, baselines=0.5, target=2, max_chunk=2)
    assert m.shape == (2, 3, 3)
    for k in range(2):
        H = torch.autograd.functional.hessian(lambda v: model(v.unsqueeze(0))[0, 2], x[k])
        d = x[k] - 0.5
        full = H * d[:, None] * d[None, :]
        expect = torch.zeros(3, 3, dtype=DT)
        for i in range(6):
            for j in range(6):
                expect[mask[0, i], mask[0, j]] += full[i, j]
        torch.testing.assert_close(m[k], expect)


def test_quadratic_exact_and_equals_ig():
    model = Quadratic(6)
    x = torch.randn(3, 6, dtype=DT)
    xb = torch.randn(3, 6, dtype=DT)
    attr, delta = TaylorAttribution(model).attribute(x, xb, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10
    dec = taylor_decomposition(model, x, xb, target=1)
    assert dec.error.abs().max() < 1e-10
    ig = IntegratedGradients(model).attribute(x, xb, target=1, n_steps=20)
    torch.testing.assert_close(attr, ig)
    assert percentage_change(ig, integrated_gradients_reformulation(model, x, xb, target=1)) < 1e-10


def test_quadratic_occlusion_reformulations_exact():
    model = Quadratic(8)
    x = torch.randn(2, 2, 4, dtype=DT)
    occ = Occlusion1(model).attribute(x, baselines=0.3, target=0)
    ref = occlusion1_reformulation(model, x, baselines=0.3, target=0)
    torch.testing.assert_close(occ, ref)
    assert percentage_change(occ, ref) < 1e-10
    mask = torch.tensor([[[0, 0, 1, 1], [2, 2, 3, 3]]])
    occ_p = OcclusionPatch(model).attribute(
        x, feature_mask=mask, baselines=torch.full((1, 2, 4), 0.3, dtype=DT), target=0
    )
    ref_p = occlusion_patch_reformulation(model, x, mask, baselines=0.3, target=0)
    torch.testing.assert_close(occ_p, ref_p)
    assert percentage_change(occ_p, ref_p) < 1e-10


def test_quadratic_expected_gradients_reformulation():
    model = Quadratic(5)
    x = torch.randn(2, 5, dtype=DT)
    bls = torch.randn(4, 5, dtype=DT)
    ig = IntegratedGradients(model)
    eg = sum(ig.attribute(x, bls[k : k + 1], target=0, n_steps=10) for k in range(4)) / 4
    ref = expected_gradients_reformulation(model, x, bls, target=0)
    assert percentage_change(eg, ref) < 1e-10


@pytest.mark.parametrize("model", [mlp(nn.Tanh()), mlp(nn.ReLU()), Quadratic(5)])
def test_gradient_x_input_d_is_zero(model):
    x = torch.randn(4, 5, dtype=DT)
    gi = GradientXInput(model).attribute(x, target=0)
    assert percentage_change(gi, gradient_x_input_reformulation(model, x, target=0)) < 1e-12


def test_reformulations_on_sigmoid_mlp_close():
    model = mlp(nn.Sigmoid(), n_in=6)
    x = torch.rand(8, 6, dtype=DT) * 0.5
    ig = IntegratedGradients(model).attribute(x, target=0, n_steps=64)
    assert percentage_change(ig, integrated_gradients_reformulation(model, x, target=0)) < 5.0
    occ = Occlusion1(model).attribute(x, target=0)
    assert percentage_change(occ, occlusion1_reformulation(model, x, target=0)) < 5.0


def test_deeplift_reformulation():
    model = mlp(nn.Sigmoid(), n_in=6)
    x = torch.rand(5, 6, dtype=DT)
    xb = torch.rand(1, 6, dtype=DT) * 0.2
    dl = DeepLiftRescale(model).attribute(x, xb, target=1)
    exact = deeplift_reformulation(model, x, xb, target=1, remainder="exact")
    torch.testing.assert_close(dl, exact)
    second = deeplift_reformulation(model, x, xb, target=1)
    assert percentage_change(dl, second) < 5.0

    class Square(nn.Module):
        def forward(self, z):
            return z * z

    sq = mlp(Square(), n_in=6)
    torch.testing.assert_close(
        deeplift_reformulation(sq, x, xb, target=0, remainder="exact"), deeplift_reformulation(sq, x, xb, target=0)
    )


def _relu_variants(x):
    return [F.relu(x), torch.relu(x), x.relu(), nn.ReLU()(x), F.relu(x.clone(), inplace=True), x.clone().relu_()]


def test_softplus_swap_covers_all_relu_calls_and_leaves_no_trace():
    x = torch.randn(10, dtype=DT)
    before = _relu_variants(x)
    with softplus_swap(beta=3.0) as mode:
        inside = _relu_variants(x)
    expect = F.softplus(x, 3.0)
    for t in inside:
        torch.testing.assert_close(t, expect)
    assert mode.swapped == 6
    for a, b in zip(before, _relu_variants(x)):
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(b, x.clamp(min=0))
    with pytest.raises(RuntimeError, match="boom"):
        with softplus_swap():
            raise RuntimeError("boom")
    for t in _relu_variants(x):
        torch.testing.assert_close(t, x.clamp(min=0))


def test_zero_hessian_warning_and_swap():
    model = mlp(nn.ReLU())
    x = torch.randn(3, 5, dtype=DT)
    with pytest.warns(AttributionWarning, match="softplus_swap"):
        TaylorAttribution(model).attribute(x, target=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", AttributionWarning)
        with softplus_swap(beta=5.0):
            dec = taylor_decomposition(model, x, target=0)
    assert dec.independent.abs().sum() > 0
    # the model is untouched: ReLU again afterwards
    with pytest.warns(AttributionWarning):
        TaylorAttribution(model).attribute(x, target=0)


def test_no_trace_on_inputs():
    model = mlp(nn.Tanh())
    x = torch.randn(2, 5, dtype=DT)
    TaylorAttribution(model).attribute(x, target=0)
    taylor_decomposition(model, x, target=0)
    assert not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in model.parameters())


def test_batched_hvp_vectorisations_agree():
    model = TwoInput()
    x1, x2 = torch.randn(3, 4, dtype=DT), torch.randn(3, 2, 3, dtype=DT)
    a = hessian_diagonal(model, (x1, x2), target=1, max_chunk=4, vectorize="vmap")
    b = hessian_diagonal(model, (x1, x2), target=1, max_chunk=4, vectorize="replicate")
    torch.testing.assert_close(a, b)


def test_quadratic_occlusion_patch_class_matches_reformulation():
    from captum_unified.attr._core.occlusion_patch import OcclusionPatch

    model = Quadratic(16, n_out=3)
    x = torch.randn(2, 1, 4, 4, dtype=DT)
    mask = (torch.arange(4)[:, None] // 2 * 2 + torch.arange(4)[None, :] // 2).reshape(1, 1, 4, 4)
    occ = OcclusionPatch(model).attribute(x, feature_mask=mask, target=2)
    ref = occlusion_patch_reformulation(model, x, mask, target=2)
    torch.testing.assert_close(occ, ref)
    assert percentage_change(occ, ref) < 1e-10


def test_softplus_swap_composes_with_backend_methods():
    torch.manual_seed(0)
    relu_net = nn.Sequential(nn.Linear(5, 6), nn.ReLU(), nn.Linear(6, 2)).to(DT)
    sp_net = nn.Sequential(relu_net[0], nn.Softplus(beta=3.0), relu_net[2])
    x = torch.randn(3, 5, dtype=DT)
    for cls in (IntegratedGradients, DeepLiftRescale, GradientXInput):
        with softplus_swap(beta=3.0):
            a = cls(relu_net).attribute(x, target=0)
        torch.testing.assert_close(a, cls(sp_net).attribute(x, target=0))
    with softplus_swap(beta=3.0):
        a = TaylorAttribution(relu_net).attribute(x, target=0)
    torch.testing.assert_close(a, TaylorAttribution(sp_net).attribute(x, target=0))


def test_conv_model_batched_paths():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Softplus(), nn.Flatten(), nn.Linear(3 * 4 * 4, 2)).to(DT)
    x = torch.randn(2, 1, 6, 6, dtype=DT)
    d_vmap = hessian_diagonal(model, (x,), target=1, vectorize="vmap", max_chunk=10)
    d_rep = hessian_diagonal(model, (x,), target=1, vectorize="replicate", max_chunk=10)
    torch.testing.assert_close(d_vmap, d_rep)
    mask = (torch.arange(6)[:, None] // 3 * 2 + torch.arange(6)[None, :] // 3).reshape(1, 1, 6, 6)
    m = group_interactions(model, x, mask, target=1)
    hv_total = TaylorAttribution(model).attribute(x, target=1) - TaylorAttribution(model, order=1).attribute(
        x, target=1
    )
    # sum of M is delta^T H delta = -2 * (sum of second-order attributions)
    torch.testing.assert_close(m.sum((1, 2)), -2 * hv_total.flatten(1).sum(1))


def test_additional_args_and_noise_tunnel():
    from captum.attr import NoiseTunnel

    class Scaled(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = mlp(nn.Tanh())

        def forward(self, x, scale):
            return self.net(x * scale)

    model = Scaled()
    x = torch.randn(3, 5, dtype=DT)
    scale = torch.full((3, 1), 2.0, dtype=DT)
    a = TaylorAttribution(model).attribute(x, target=0, additional_forward_args=(scale,))
    b = TaylorAttribution(lambda v: model.net(2.0 * v)).attribute(x, target=0)
    torch.testing.assert_close(a, b)
    dec = taylor_decomposition(model, x, target=0, additional_forward_args=(scale,), max_chunk=2)
    torch.testing.assert_close(dec.attribution, a)
    nt = NoiseTunnel(TaylorAttribution(model.net)).attribute(
        x, nt_type="smoothgrad", nt_samples=3, stdevs=0.1, target=0
    )
    assert nt.shape == x.shape and torch.isfinite(nt).all()
