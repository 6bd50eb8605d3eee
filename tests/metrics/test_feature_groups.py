"""FeatureGroups, the one reader of Captum's feature_mask: every accepted form of a
mask gives the same groups, counts and masks (hypothesis), and every method and
metric that takes a mask agrees with Captum's FeatureAblation on it."""

from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import FeatureAblation
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import captum_unified as cu
from captum_unified.feature_groups import FeatureGroups
from captum_unified.metrics import region_perturbation, sensitivity_n
from captum_unified.taylor import group_interactions
from captum_unified.taylor.reformulations import occlusion_patch_reformulation

DT = torch.float64
SETTINGS = settings(max_examples=30, deadline=None)
B, C, H, W = 3, 2, 3, 4


@st.composite
def masks(draw):
    """A mask of shape (1 or B, 1 or C, H, W) with ids in [-3, 5] (a few ids, negatives included)."""
    per_sample = draw(st.booleans())
    per_channel = draw(st.booleans())
    shape = (B if per_sample else 1, C if per_channel else 1, H, W)
    seed = draw(st.integers(0, 2**16))
    g = torch.Generator().manual_seed(seed)
    lo = draw(st.integers(-3, 0))
    hi = draw(st.integers(lo + 1, 5))
    return torch.randint(lo, hi + 1, shape, generator=g)


def _forms(m):
    """Every accepted spelling of the partition ``m`` (with how its ids relate)."""
    forms = [
        m,
        (m,),
        m.clone().expand(1 if m.shape[0] == 1 else B, C, H, W).contiguous(),
        m.expand(B, C, H, W).clone(),
        m * 3 - 7,
        (m + 100).to(torch.int32),
    ]
    if m.shape[0] == 1 and m.shape[1] == 1:
        forms += [m[0], m[0, 0]]  # (1, H, W) and (H, W): right-aligned broadcasting
    if int(m.min()) >= 0 and int(m.max()) <= 1:
        forms.append(m.bool())
    return forms


def _canonical(groups: FeatureGroups):
    flat = groups.flat_ids()
    sizes = groups.sizes().expand(B, -1)
    return flat, groups.presence, groups.counts, sizes, groups.n_groups


@SETTINGS
@given(masks())
def test_every_form_of_a_mask_gives_the_same_groups(m):
    x = torch.randn(B, C, H, W, dtype=DT)
    ref = _canonical(FeatureGroups.from_mask(m, (x,)))
    labels = torch.unique(m)
    assert ref[4] == labels.numel()  # negative ids are ordinary groups
    for form in _forms(m):
        got = _canonical(FeatureGroups.from_mask(form, (x,)))
        for a, b in zip(got, ref):
            assert torch.equal(torch.as_tensor(a), torch.as_tensor(b)), form
    # the masks removing groups 0..G-1 one at a time cover each feature exactly once
    g = FeatureGroups.from_mask(m, (x,))
    (single,) = g.single_masks(0, g.n_groups)
    covered = single.expand(g.n_groups, B, C, H, W).sum(0)
    assert torch.equal(covered, torch.ones_like(covered))
    # membership masks: group k of every sample
    member = torch.eye(g.n_groups, dtype=torch.bool).unsqueeze(1).expand(g.n_groups, B, g.n_groups)
    (mm,) = g.member_masks(member)
    assert torch.equal(mm.expand(g.n_groups, B, C, H, W), single.expand(g.n_groups, B, C, H, W))


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(C, 3, 2), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 2 * 3, 2)).to(DT).eval()


@SETTINGS
@given(masks(), st.sampled_from([0.0, 0.5]))
def test_methods_and_metrics_agree_with_feature_ablation(m, base):
    model = _cnn()
    g = torch.Generator().manual_seed(int(m.sum()) + 7)
    x = torch.randn(B, C, H, W, dtype=DT, generator=g)
    fa = FeatureAblation(model).attribute(x, feature_mask=m, target=1, baselines=base)
    for form in _forms(m):
        ours = cu.OcclusionPatch(model).attribute(x, feature_mask=form, target=1, baselines=base)
        torch.testing.assert_close(ours, fa, rtol=1e-9, atol=1e-12)
    groups = FeatureGroups.from_mask(m, (x,))
    size = groups.scatter(groups.sizes().to(DT).expand(B, -1))[0]
    per_feature = fa / size  # each group's output change spread over its features
    # Sensitivity-1 on FeatureAblation's own values: every subset's sum is its output change
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = sensitivity_n(model, x, per_feature, n=1, target=1, baselines=base, feature_mask=m, n_subsets=4)
    torch.testing.assert_close(r.attribution_sums, r.output_changes, rtol=1e-9, atol=1e-12)
    # region perturbation: removing the most relevant group first drops the output by its FA value
    rp = region_perturbation(model, x, per_feature, target=1, baselines=base, feature_mask=m, n_steps=[1])
    best = groups.sums((per_feature,)).masked_fill(~groups.presence, -float("inf")).max(1).values
    torch.testing.assert_close(rp.curves[:, 0] - rp.curves[:, 1], best.to(rp.curves.dtype), rtol=1e-9, atol=1e-12)


class Quadratic(nn.Module):
    def __init__(self, n, seed=3):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.A = torch.randn(2, n, n, generator=g, dtype=DT)
        self.b = torch.randn(2, n, generator=g, dtype=DT)

    def forward(self, x):
        x = x.flatten(1)
        return torch.einsum("bi,kij,bj->bk", x, self.A, x) + x @ self.b.t()


@settings(max_examples=15, deadline=None)
@given(masks())
def test_group_interactions_use_the_same_groups(m):
    model = Quadratic(C * H * W)
    x = torch.randn(B, C, H, W, dtype=DT)
    mats = group_interactions(model, x, m, baselines=0.2, target=0)
    assert mats.shape == (B, torch.unique(m).numel(), torch.unique(m).numel())
    # on a quadratic model the Taylor reformulation of Occlusion-patch is exact (Deng Thm 3)
    occ = cu.OcclusionPatch(model).attribute(x, feature_mask=m, baselines=0.2, target=0)
    torch.testing.assert_close(occlusion_patch_reformulation(model, x, m, baselines=0.2, target=0), occ)


def test_errors_are_the_same_everywhere():
    x = torch.randn(B, C, H, W, dtype=DT)
    model = _cnn()
    calls = [
        lambda mask: cu.OcclusionPatch(model).attribute(x, feature_mask=mask, target=0),
        lambda mask: sensitivity_n(model, x, x, n=1, target=0, feature_mask=mask, n_subsets=2),
        lambda mask: region_perturbation(model, x, x, target=0, feature_mask=mask),
        lambda mask: group_interactions(model, x, mask, target=0),
    ]
    for call in calls:
        with pytest.raises(TypeError, match="dtype"):
            call(torch.zeros(1, 1, H, W))
        with pytest.raises(ValueError, match="does not fit"):
            call(torch.zeros(2, 1, H, W, dtype=torch.long))
        with pytest.raises(ValueError, match="does not fit"):
            call(torch.zeros(1, 1, H, W + 1, dtype=torch.long))
        with pytest.raises(ValueError, match="feature mask"):
            call((torch.zeros(1, 1, H, W, dtype=torch.long),) * 2)


def test_ids_are_sorted_labels():
    x = torch.randn(1, 6)
    g = FeatureGroups.from_mask(torch.tensor([[5, 0, 5, -2, 0, 5]]), (x,))
    assert g.labels.tolist() == [-2, 0, 5]
    assert g.ids[0].tolist() == [[2, 1, 2, 0, 1, 2]]
    assert g.sizes().tolist() == [[1, 2, 3]]
