"""ExpectedGradients: IG with one baseline, linear model, seed, convergence, errors."""

import pytest
import torch
from torch import nn

from captum_unified import GradientXInput, IntegratedGradients
from captum_unified.attr._core.expected_gradients import ExpectedGradients


def _smooth():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 16), nn.Softplus(), nn.Linear(16, 3)).double()


def _x(b=8, n=6, seed=1):
    return torch.randn(b, n, generator=torch.Generator().manual_seed(seed), dtype=torch.double)


def test_single_baseline_with_steps_equals_integrated_gradients():
    m, x = _smooth(), _x()
    b = _x(1, seed=2)[0]
    eg = ExpectedGradients(m).attribute(x, baselines=b, target=1, n_samples=3, n_steps=20, internal_batch_size=16)
    ig = IntegratedGradients(m).attribute(x, baselines=b.unsqueeze(0), target=1, n_steps=20)
    torch.testing.assert_close(eg, ig)
    eg = ExpectedGradients(m).attribute(x, baselines=b, target=1, n_samples=2, n_steps=7, method="riemann_trapezoid")
    ig = IntegratedGradients(m).attribute(x, baselines=b.unsqueeze(0), target=1, n_steps=7, method="riemann_trapezoid")
    torch.testing.assert_close(eg, ig)


def test_linear_model_equals_gradient_x_input():
    torch.manual_seed(0)
    lin = nn.Linear(6, 3).double()
    x = _x()
    eg = ExpectedGradients(lin)
    torch.testing.assert_close(
        eg.attribute(x, baselines=0.0, target=2, n_samples=5, seed=0), GradientXInput(lin).attribute(x, target=2)
    )
    b = _x(1, seed=3)
    expected = (x - b) * lin.weight[2].detach()
    torch.testing.assert_close(eg.attribute(x, baselines=b, target=2, n_samples=4, seed=1), expected)
    # a reference set on a linear model: mean over the drawn references
    refs = _x(5, seed=4)
    a, delta = eg.attribute(x, baselines=refs, target=2, n_samples=10, seed=2, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10


def test_tuple_inputs_and_additional_args():
    torch.manual_seed(0)
    l1, l2 = nn.Linear(4, 2).double(), nn.Linear(3, 2).double()

    def f(a, b, scale):
        return torch.tanh(l1(a) + l2(b)) * scale

    a, b = _x(5, 4), _x(5, 3, seed=7)
    ra, rb = _x(6, 4, seed=8), _x(6, 3, seed=9)
    scale = torch.arange(1.0, 6.0, dtype=torch.double).unsqueeze(1)
    tgt = [0, 1, 0, 1, 1]
    out, d = ExpectedGradients(f).attribute(
        (a, b),
        baselines=(ra, rb),
        target=tgt,
        additional_forward_args=(scale,),
        n_samples=400,
        seed=0,
        internal_batch_size=64,
        return_convergence_delta=True,
    )
    assert isinstance(out, tuple) and out[0].shape == a.shape and out[1].shape == b.shape
    assert d.shape == (5,) and d.abs().mean() < 0.05


def test_seed_reproducible_and_independent_of_batching():
    m, x = _smooth(), _x()
    refs = _x(30, seed=5)
    eg = ExpectedGradients(m)
    state = torch.get_rng_state()
    a1 = eg.attribute(x, baselines=refs, target=1, seed=3)
    a2 = eg.attribute(x, baselines=refs, target=1, seed=3, internal_batch_size=24)
    a3 = eg.attribute(x, baselines=refs, target=1, seed=4)
    g1 = eg.attribute(x, baseline_stdevs=0.5, target=1, seed=1, n_samples=10)
    g2 = eg.attribute(x, baseline_stdevs=0.5, target=1, seed=1, n_samples=10, internal_batch_size=8)
    eg.attribute(x, baseline_stdevs=0.5, target=1, n_samples=3)  # no seed: fresh entropy
    assert torch.equal(state, torch.get_rng_state()), "global RNG state changed"
    torch.testing.assert_close(a1, a2)
    torch.testing.assert_close(g1, g2)
    assert not torch.allclose(a1, a3)


@pytest.mark.parametrize("kind", ["refs", "gaussian"])
def test_convergence_delta_shrinks_with_samples(kind):
    m, x = _smooth(), _x(16)
    kw = {"baselines": _x(50, seed=6)} if kind == "refs" else {"baseline_stdevs": 0.5}
    eg = ExpectedGradients(m)
    _, d16 = eg.attribute(x, target=1, seed=1, n_samples=16, return_convergence_delta=True, **kw)
    _, d1024 = eg.attribute(x, target=1, seed=1, n_samples=1024, return_convergence_delta=True, **kw)
    assert d1024.abs().mean() < 0.5 * d16.abs().mean()


def test_no_trace_on_model():
    m, x = _smooth(), _x()
    before = [p.requires_grad for p in m.parameters()]
    ExpectedGradients(m).attribute(x, baseline_stdevs=0.1, target=0, n_samples=4, seed=0)
    assert [p.requires_grad for p in m.parameters()] == before
    assert not x.requires_grad and x.grad is None
    assert all(p.grad is None for p in m.parameters())


def test_errors():
    m, x = _smooth(), _x()
    eg = ExpectedGradients(m)
    with pytest.raises(ValueError, match="empty reference set"):
        eg.attribute(x, baselines=torch.zeros(0, 6, dtype=torch.double), target=0)
    with pytest.raises(ValueError, match="exactly one"):
        eg.attribute(x, target=0)
    with pytest.raises(ValueError, match="exactly one"):
        eg.attribute(x, baselines=_x(3), baseline_stdevs=0.1, target=0)
    with pytest.raises(ValueError, match="must have shape"):
        eg.attribute(x, baselines=torch.zeros(3, 5, dtype=torch.double), target=0)
    with pytest.raises(ValueError, match="n_samples"):
        eg.attribute(x, baselines=_x(3), n_samples=0, target=0)
    with pytest.raises(ValueError, match="baseline_stdevs"):
        eg.attribute(x, baseline_stdevs=-1.0, target=0)
