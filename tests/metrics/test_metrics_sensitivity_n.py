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


def _counting(fn):
    calls = {"calls": 0, "rows": 0}

    def f(x, *args):
        calls["calls"] += 1
        calls["rows"] += x.shape[0]
        return fn(x, *args)

    return f, calls


def _same(a, b):
    torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)


def test_dict_of_attributions_one_pass_of_forwards_identical_results():
    model = _nonlinear()
    x = torch.randn(5, 12, dtype=torch.float64)
    attrs = {name: _attribute(name, model, x, 1) for name in ("gxi", "ig", "occ")}
    kw = dict(n=[1, 3, 6, 12], target=1, n_subsets=20, seed=3, max_batch_size=40)
    f, calls = _counting(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)  # n = N: NaN per sample
        res = sensitivity_n(f, x, attrs, **kw)
    shared = dict(calls)
    assert isinstance(res, dict) and list(res) == ["gxi", "ig", "occ"]
    for name, a in attrs.items():
        f1, c1 = _counting(model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AttributionWarning)
            single = sensitivity_n(f1, x, a, **kw)
        assert c1 == shared  # all methods together cost the forwards of one
        for fld in ("correlations", "mean", "n_nan", "pooled", "attribution_sums", "output_changes"):
            _same(getattr(res[name], fld), getattr(single, fld))
        assert res[name].n == single.n and res[name].n_features == single.n_features
    # the NaN warning names the method
    with pytest.warns(AttributionWarning, match="'zero'"):
        sensitivity_n(model, x, {"gxi": attrs["gxi"], "zero": torch.zeros_like(x)}, n=[2], target=1, n_subsets=5)
    with pytest.raises(ValueError, match="empty"):
        sensitivity_n(model, x, {}, n=[2], target=1)


def test_subsets_uniform_exact_size_via_one_hot_methods():
    # one method per feature with a one-hot attribution: its subset sums are the
    # indicator of that feature in the subsets (dict API: one pass of forwards)
    model = _linear()
    x = torch.randn(2, 12, dtype=torch.float64)
    one_hot = {g: torch.zeros_like(x).index_fill_(1, torch.tensor([g]), 1.0) for g in range(12)}
    T = 2000
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)
        res = sensitivity_n(model, x, one_hot, n=[3, 9], target=0, n_subsets=T, seed=1)
    ind = torch.stack([res[g].attribution_sums for g in range(12)])  # (G, len(n), T, B)
    assert torch.equal(ind.sum(0), torch.tensor([3.0, 9.0], dtype=torch.float64).view(2, 1, 1).expand(2, T, 2))
    for j, n in enumerate([3, 9]):
        freq = ind[:, j].mean(1)  # (G, B): how often each feature is drawn
        p = n / 12
        assert (freq - p).abs().max() < 5 * (p * (1 - p) / T) ** 0.5


def test_n_equals_N_evaluated_once():
    model = _linear()
    x = torch.randn(4, 12, dtype=torch.float64)
    a = _attribute("gxi", model, x, 1)
    f, calls = _counting(model)
    with pytest.warns(AttributionWarning):  # n = N: per-sample correlation undefined
        r = sensitivity_n(f, x, a, n=[3, 12], target=1, n_subsets=10, perturbations_per_eval=1)
    assert calls["calls"] == 1 + 10 + 1  # unperturbed, 10 subsets of 3, the only subset of 12
    assert r.output_changes.shape == (2, 10, 4) and r.attribution_sums.shape == (2, 10, 4)
    assert torch.equal(r.output_changes[1], r.output_changes[1, :1].expand(10, 4))
    torch.testing.assert_close(r.attribution_sums[1], a.sum(1).expand(10, 4))
    assert torch.isnan(r.correlations[:, 1]).all()
    torch.testing.assert_close(r.pooled[1], torch.tensor(1.0, dtype=torch.float64))
    # same numbers as when the full subset is evaluated n_subsets times
    with pytest.warns(AttributionWarning):
        r2 = sensitivity_n(model, x, a, n=[3, 12], target=1, n_subsets=10)
    torch.testing.assert_close(r2.output_changes, r.output_changes, rtol=0, atol=1e-12)


def _n_kept(x):
    return (x != 0).sum(1).to(torch.float64)  # output: features not removed


def test_per_sample_masks_draw_from_own_groups():
    # Captum's FeatureAblation accepts per-sample masks: sample 0 has 4 groups of
    # 2 features, sample 1 has 8 groups of 1 feature. Every subset removes
    # exactly n groups of its own sample.
    x = torch.ones(2, 8, dtype=torch.float64)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 4, 5, 6, 7]])
    a = torch.ones_like(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)  # constant changes: NaN
        r = sensitivity_n(_n_kept, x, a, n=[1, 2, 3, 4], feature_mask=mask, n_subsets=30, seed=2)
    for j, n in enumerate([1, 2, 3, 4]):
        assert torch.equal(r.output_changes[j, :, 0], torch.full((30,), 2.0 * n, dtype=torch.float64))
        assert torch.equal(r.output_changes[j, :, 1], torch.full((30,), 1.0 * n, dtype=torch.float64))
        assert torch.equal(r.attribution_sums[j], r.output_changes[j])
    assert r.n_features == 4 and r.n_features_per_sample.tolist() == [4, 8]
    with pytest.raises(ValueError, match="per-sample"):
        sensitivity_n(_n_kept, x, a, n=5, feature_mask=mask)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)
        assert sensitivity_n(_n_kept, x, a, feature_mask=mask, n_subsets=4).n == default_n_list(4)
        # disjoint ids, same count: n = 4 removes all of each sample
        disjoint = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [4, 4, 5, 5, 6, 6, 7, 7]])
        r = sensitivity_n(_n_kept, x, a, n=[2, 4], feature_mask=disjoint, n_subsets=5)
    assert r.n_features == 4
    assert torch.equal(r.output_changes[1], torch.full((5, 2), 8.0, dtype=torch.float64))
    assert torch.equal(r.output_changes[0], torch.full((5, 2), 4.0, dtype=torch.float64))
    # negative ids are ordinary groups (Captum's FeatureAblation): each sample has one group of 8
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AttributionWarning)
        r = sensitivity_n(_n_kept, x, a, n=1, feature_mask=torch.tensor([[0] * 8, [-1] * 8]), n_subsets=3)
    assert r.n_features_per_sample.tolist() == [1, 1]
    assert torch.equal(r.output_changes[0], torch.full((3, 2), 8.0, dtype=torch.float64))


def test_per_sample_mask_with_equal_rows_equals_shared_mask():
    model = _nonlinear()
    x = torch.randn(3, 12, dtype=torch.float64)
    a = _attribute("gxi", model, x, 0)
    shared = torch.arange(12).reshape(1, 12) // 2
    kw = dict(n=[1, 3, 5], target=0, n_subsets=15, seed=4)
    r1 = sensitivity_n(model, x, a, feature_mask=shared, **kw)
    r2 = sensitivity_n(model, x, a, feature_mask=shared.expand(3, 12).clone(), **kw)
    _same(r1.correlations, r2.correlations)
    _same(r1.output_changes, r2.output_changes)


def test_draw_blocks_do_not_depend_on_batch_bound(monkeypatch):
    import sys

    mod = sys.modules["captum_unified.metrics.sensitivity_n"]
    model = _nonlinear()
    x = torch.randn(4, 12, dtype=torch.float64)
    a = _attribute("gxi", model, x, 1)
    kw = dict(n=[2, 9], target=1, n_subsets=25, seed=5)
    ref = sensitivity_n(model, x, a, **kw)
    monkeypatch.setattr(mod, "_DRAW_BLOCK", 4 * 12 * 3)  # 3 subsets per block: blocks straddle chunks
    r1 = sensitivity_n(model, x, a, perturbations_per_eval=7, **kw)
    r2 = sensitivity_n(model, x, a, perturbations_per_eval=2, **kw)
    torch.testing.assert_close(r1.correlations, r2.correlations, rtol=0, atol=1e-12)
    _same(r1.attribution_sums, r2.attribution_sums)
    # torch's CPU generator fills tensors serially: drawing in blocks gives the same subsets
    _same(r1.attribution_sums, ref.attribution_sums)
