import warnings

import pytest
import torch
from torch import nn

import captum_unified as cu
from captum_unified._utils.common import AttributionWarning
from captum_unified.metrics import default_n_list, sensitivity_n


def _linear():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(12, 3)).double()


def _nonlinear():
    torch.manual_seed(1)
    return nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 2)).double()


def _attribute(name, model, x, target):
    if name == "gxi":
        return cu.GradientXInput(model).attribute(x, target=target)
    if name == "ig":
        return cu.IntegratedGradients(model).attribute(x, target=target, n_steps=200)
    if name == "dl":
        return cu.DeepLiftRescale(model).attribute(x, target=target)
    if name == "lrp":
        return cu.EpsilonLRP(model).attribute(x, target=target)
    if name == "occ":
        return cu.Occlusion1(model).attribute(x, target=target)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["gxi", "ig", "dl", "lrp", "occ"])
def test_linear_model_all_methods_correlation_one(name):
    # Proposition 4: on a linear model every method satisfies Sensitivity-n for all n.
    model = _linear()
    x = torch.randn(5, 12, dtype=torch.float64)
    a = _attribute(name, model, x, 1)
    r = sensitivity_n(model, x, a, n=[1, 2, 4, 8, 11], target=1, n_subsets=30)
    assert r.correlations.shape == (5, 5)
    assert torch.allclose(r.correlations, torch.ones_like(r.correlations), atol=1e-6)
    with pytest.warns(AttributionWarning):  # n = N: per-sample correlation undefined
        r_all = sensitivity_n(model, x, a, n=12, target=1, n_subsets=5)
    assert torch.allclose(r_all.pooled, torch.ones(1, dtype=torch.float64), atol=1e-6)


def test_nonlinear_occlusion_sensitivity_1():
    model = _nonlinear()
    x = torch.randn(6, 12, dtype=torch.float64) * 2
    a = _attribute("occ", model, x, 0)
    r = sensitivity_n(model, x, a, n=[1, 4, 8], target=0, n_subsets=40)
    assert torch.allclose(r.correlations[:, 0], torch.ones(6, dtype=torch.float64), atol=1e-9)
    assert r.mean[0] > r.mean[1] - 1e-12


@pytest.mark.parametrize("name", ["ig", "dl"])
def test_nonlinear_ig_deeplift_best_at_N(name):
    # Completeness: at n = N the attribution sum equals the output change (pooled
    # correlation over samples = 1), the highest value over all n.
    model = _nonlinear()
    x = torch.randn(24, 12, dtype=torch.float64) * 2
    a = _attribute(name, model, x, 0)
    ns = [1, 2, 4, 8, 12]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)
        r = sensitivity_n(model, x, a, n=ns, target=0, n_subsets=40)
    assert r.pooled[-1] > 1 - 1e-4
    assert int(torch.argmax(r.pooled)) == len(ns) - 1
    assert torch.isnan(r.correlations[:, -1]).all()  # one subset per sample: undefined
    assert int(r.n_nan[-1]) == 24


def test_same_seed_same_numbers_and_batch_bound_independent():
    model = _nonlinear()
    x = torch.randn(4, 12, dtype=torch.float64)
    a = _attribute("gxi", model, x, 1)
    kw = dict(n=[1, 3, 6], target=1, n_subsets=25, seed=7)
    r1 = sensitivity_n(model, x, a, **kw)
    r2 = sensitivity_n(model, x, a, **kw)
    r3 = sensitivity_n(model, x, a, perturbations_per_eval=1, **kw)
    r4 = sensitivity_n(model, x, a, max_batch_size=9, **kw)
    r5 = sensitivity_n(model, x, a, **{**kw, "seed": 8})
    assert torch.equal(r1.correlations, r2.correlations)
    for r in (r3, r4):
        assert torch.allclose(r1.correlations, r.correlations, atol=1e-12)
    assert not torch.allclose(r1.correlations, r5.correlations)
    # subsets of one n do not depend on the other sizes asked for
    r6 = sensitivity_n(model, x, a, **{**kw, "n": [3]})
    assert torch.allclose(r6.correlations[:, 0], r1.correlations[:, 1], atol=1e-12)


def test_global_rng_untouched():
    model = _linear()
    x = torch.randn(2, 12, dtype=torch.float64)
    a = _attribute("gxi", model, x, 0)
    state = torch.get_rng_state()
    sensitivity_n(model, x, a, n=[2], target=0, n_subsets=10)
    assert torch.equal(state, torch.get_rng_state())


def test_constant_input_nan_and_warning():
    model = _nonlinear()
    x = torch.zeros(3, 12, dtype=torch.float64)  # equal to the baseline
    a = _attribute("gxi", model, x, 0)
    with pytest.warns(AttributionWarning, match="undefined"):
        r = sensitivity_n(model, x, a, n=[1, 5], target=0, n_subsets=10)
    assert torch.isnan(r.correlations).all()
    assert r.n_nan.tolist() == [3, 3]
    # constant attributions on a sample with varying output changes
    x = torch.randn(2, 12, dtype=torch.float64)
    with pytest.warns(AttributionWarning):
        r = sensitivity_n(model, x, torch.ones_like(x), n=[3], target=0, n_subsets=10)
    assert torch.isnan(r.correlations).all()


def test_nanmean_ignores_nan():
    model = _linear()
    x = torch.randn(3, 12, dtype=torch.float64)
    x[0] = 0
    a = _attribute("gxi", model, x, 0)
    with pytest.warns(AttributionWarning):
        r = sensitivity_n(model, x, a, n=[2], target=0, n_subsets=10)
    assert int(r.n_nan[0]) == 1
    assert torch.allclose(r.mean, torch.ones(1, dtype=torch.float64))


def test_feature_mask_pixels_and_tuple_inputs():
    torch.manual_seed(0)
    conv = nn.Sequential(nn.Conv2d(3, 2, 3, padding=1), nn.Flatten(), nn.Linear(2 * 5 * 5, 2)).double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    a = cu.GradientXInput(conv).attribute(x, target=0)
    pix = torch.arange(25).reshape(1, 1, 5, 5)
    r = sensitivity_n(conv, x, a, n=[1, 5, 20], target=0, feature_mask=pix, n_subsets=20)
    assert r.n_features == 25
    assert torch.allclose(r.correlations, torch.ones_like(r.correlations), atol=1e-6)  # linear model
    # a pixel group: attribution sum = sum over channels; removal of all channels
    s = r.attribution_sums[0, :, 0]
    ch = r.output_changes[0, :, 0]
    assert torch.allclose(s, ch, atol=1e-8)

    # tuple inputs: two tensors, features numbered across both
    def f(u, v):
        return u.sum(1, keepdim=True) * 2 + (v * 3).sum(1, keepdim=True)

    u, v = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    au, av = cu.GradientXInput(f).attribute((u, v))
    r = sensitivity_n(f, (u, v), (au, av), n=[1, 3, 9], n_subsets=20)
    assert r.n_features == 10
    assert torch.allclose(r.correlations, torch.ones_like(r.correlations), atol=1e-6)


def test_default_n_list():
    ns = default_n_list(784)
    assert ns[0] == 1 and ns[-1] == int(0.8 * 784)
    assert ns == sorted(set(ns))
    assert default_n_list(1) == [1]
    model = _linear()
    x = torch.randn(2, 12, dtype=torch.float64)
    r = sensitivity_n(model, x, _attribute("gxi", model, x, 0), target=0, n_subsets=5)
    assert r.n == default_n_list(12)


def test_bad_n_raises():
    model = _linear()
    x = torch.randn(2, 12, dtype=torch.float64)
    with pytest.raises(ValueError):
        sensitivity_n(model, x, x, n=13, target=0)
    with pytest.raises(ValueError):
        sensitivity_n(model, x, x[:, :5], n=2, target=0)
