import pytest
import torch
from torch import nn

from captum_unified.metrics import region_perturbation


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 3)).double()


def _slow(model, x, a, target, order, baseline, group_of_pixel=False, ks=None):
    """Per sample, rank features by attribution and remove them one by one."""
    curves = []
    for i in range(x.shape[0]):
        xi = x[i : i + 1].clone()
        if group_of_pixel:
            r = a[i].sum(0).reshape(-1)  # a pixel = all channels
        else:
            r = a[i].reshape(-1)
        key = -r if order == "most_relevant_first" else r
        rank = torch.argsort(key, stable=True).tolist()
        row = [model(xi)[0, target[i]].item()]
        cur = xi.clone()
        for step, g in enumerate(rank, 1):
            if group_of_pixel:
                h, w = divmod(g, x.shape[3])
                cur[0, :, h, w] = baseline
            else:
                cur.view(-1)[g] = baseline
            if ks is None or step in ks:
                row.append(model(cur)[0, target[i]].item())
        curves.append(row)
    return torch.tensor(curves, dtype=torch.float64)


@pytest.mark.parametrize("order", ["most_relevant_first", "least_relevant_first"])
def test_equals_slow_loop_per_feature(order):
    model = _model()
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=g)
    a = torch.randn(3, 2, 4, 4, dtype=torch.float64, generator=g)
    target = torch.tensor([0, 2, 1])
    res = region_perturbation(model, x, a, target=target, order=order, baselines=0.5, perturbations_per_eval=7)
    ref = _slow(model, x, a, target.tolist(), order, 0.5)
    assert res.k == list(range(33))
    assert res.curves.shape == (3, 33)
    torch.testing.assert_close(res.curves, ref, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(res.aopc, (ref[:, :1] - ref).mean(1))
    # chunking does not change the numbers
    res2 = region_perturbation(model, x, a, target=target, order=order, baselines=0.5, max_batch_size=5)
    torch.testing.assert_close(res2.curves, res.curves, rtol=0, atol=1e-13)


@pytest.mark.parametrize("order", ["most_relevant_first", "least_relevant_first"])
def test_equals_slow_loop_pixel_groups_and_steps(order):
    model = _model()
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 2, 4, 4, dtype=torch.float64, generator=g)
    a = torch.randn(2, 2, 4, 4, dtype=torch.float64, generator=g)
    mask = torch.arange(16).reshape(1, 1, 4, 4)
    ks = [1, 3, 8, 16]
    res = region_perturbation(model, x, a, target=1, feature_mask=mask, order=order, n_steps=ks)
    ref = _slow(model, x, a, [1, 1], order, 0.0, group_of_pixel=True, ks=set(ks))
    assert res.k == [0] + ks and res.n_features == 16
    torch.testing.assert_close(res.curves, ref, rtol=1e-10, atol=1e-12)
    # int n_steps: equal steps ending with everything removed
    res4 = region_perturbation(model, x, a, target=1, feature_mask=mask, order=order, n_steps=4)
    assert res4.k == [0, 4, 8, 12, 16]
    torch.testing.assert_close(res4.curves[:, [0, 2, 4]], res.curves[:, [0, 3, 4]])


def test_bad_arguments():
    model = _model()
    x = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    with pytest.raises(ValueError):
        region_perturbation(model, x, x, target=0, order="random")
    with pytest.raises(ValueError):
        region_perturbation(model, x, x, target=0, n_steps=[3, 2])
    with pytest.raises(ValueError):
        region_perturbation(model, x, x, target=0, n_steps=[40])


def test_per_sample_masks_rank_own_groups():
    # sample 0 has 4 groups of 2 features, sample 1 has 8 groups of 1 (a
    # per-sample mask, as Captum's FeatureAblation accepts). All attributions
    # are negative: ids a sample lacks (sum 0) must not be "removed" first.
    def n_kept(x):
        return (x != 0).sum(1).to(torch.float64)

    x = torch.ones(2, 8, dtype=torch.float64)
    mask = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3], [0, 1, 2, 3, 4, 5, 6, 7]])
    a = -torch.arange(1.0, 9.0, dtype=torch.float64).expand(2, 8)
    for order in ("most_relevant_first", "least_relevant_first"):
        res = region_perturbation(n_kept, x, a, feature_mask=mask, order=order)
        assert res.k == list(range(9))
        assert res.curves[0].tolist() == [8, 6, 4, 2, 0, 0, 0, 0, 0]  # every step removes a group
        assert res.curves[1].tolist() == [8, 7, 6, 5, 4, 3, 2, 1, 0]
        assert res.n_features == 8 and res.n_features_per_sample.tolist() == [4, 8]
        assert sorted(res.ranking[0, :4].tolist()) == [0, 1, 2, 3]
    morf = region_perturbation(n_kept, x, a, feature_mask=mask)
    assert morf.ranking[0, :4].tolist() == [0, 1, 2, 3]  # -3 > -7 > -11 > -15
    assert morf.ranking[1].tolist() == list(range(8))
