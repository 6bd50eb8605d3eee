"""OcclusionPatch: equal to Captum's Occlusion / FeatureAblation, linear-model
identities, error messages."""

import pytest
import torch
from captum.attr import FeatureAblation, Occlusion
from torch import nn

from captum_unified import GradientXInput
from captum_unified.attr._core.occlusion import Occlusion1
from captum_unified.attr._core.occlusion_patch import OcclusionPatch


def _cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(4 * 7 * 6, 3)).double()


def _x(b=5):
    g = torch.Generator().manual_seed(1)
    return torch.randn(b, 2, 7, 6, generator=g, dtype=torch.double)


@pytest.mark.parametrize(
    "window,stride",
    [((1, 2, 2), (1, 1, 1)), ((2, 3, 3), (1, 2, 2)), ((1, 3, 2), (1, 2, 1)), ((1, 2, 2), (1, 2, 2)), ((2, 4, 4), 3)],
)
@pytest.mark.parametrize("ppe", [None, 1, 7])
def test_sliding_windows_equal_captum_occlusion(window, stride, ppe):
    m, x = _cnn(), _x()
    ours = OcclusionPatch(m).attribute(
        x, patch_shapes=window, strides=stride, target=1, baselines=0.3, perturbations_per_eval=ppe
    )
    ref = Occlusion(m).attribute(x, sliding_window_shapes=window, strides=stride, target=1, baselines=0.3)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6, check_dtype=False)


def test_sliding_windows_tuple_inputs_equal_captum():
    torch.manual_seed(0)
    lin = nn.Linear(2 * 5 * 4 + 6, 2).double()

    def f(a, b):
        return torch.tanh(lin(torch.cat([a.flatten(1), b], 1)))

    g = torch.Generator().manual_seed(2)
    a, b = torch.randn(3, 2, 5, 4, generator=g, dtype=torch.double), torch.randn(3, 6, generator=g, dtype=torch.double)
    ours = OcclusionPatch(f).attribute(
        (a, b), patch_shapes=((1, 2, 2), (3,)), strides=((1, 1, 2), (2,)), target=0, max_batch_size=10
    )
    ref = Occlusion(f).attribute((a, b), sliding_window_shapes=((1, 2, 2), (3,)), strides=((1, 1, 2), (2,)), target=0)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r, rtol=1e-5, atol=1e-6, check_dtype=False)


def test_non_overlapping_patches_equal_captum_with_stride_equal_window():
    m, x = _cnn(), _x()
    # 7x6 with 3x4 patches: partial patches at the border
    ours = OcclusionPatch(m).attribute(x, patch_shapes=(2, 3, 4), target=2)
    ref = Occlusion(m).attribute(x, sliding_window_shapes=(2, 3, 4), strides=(2, 3, 4), target=2)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6, check_dtype=False)
    # every feature of a patch has the same value
    assert torch.allclose(ours[:, :, :3, :4], ours[:, :1, :1, :1].expand(-1, 2, 3, 4))


def test_feature_mask_equals_feature_ablation():
    m, x = _cnn(), _x()
    g = torch.Generator().manual_seed(3)
    mask = torch.randint(0, 6, (1, 1, 7, 6), generator=g)
    ours = OcclusionPatch(m).attribute(x, feature_mask=mask, target=2, baselines=-0.5)
    ref = FeatureAblation(m).attribute(x, feature_mask=mask, target=2, baselines=-0.5)
    torch.testing.assert_close(ours, ref)
    # per-sample masks (first dimension = batch)
    mask_b = torch.randint(0, 4, (5, 2, 7, 6), generator=g)
    ours = OcclusionPatch(m).attribute(x, feature_mask=mask_b, target=0)
    ref = FeatureAblation(m).attribute(x, feature_mask=mask_b, target=0)
    torch.testing.assert_close(ours, ref)


def test_feature_mask_shared_across_tuple_inputs_equals_feature_ablation():
    torch.manual_seed(0)
    lin = nn.Linear(8 + 3, 2).double()

    def f(a, b):
        return torch.sigmoid(lin(torch.cat([a, b], 1))) * 2

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(4, 8, generator=g, dtype=torch.double), torch.randn(4, 3, generator=g, dtype=torch.double)
    ma = torch.tensor([[0, 0, 1, 1, 2, 2, 3, 3]])
    mb = torch.tensor([[1, 3, 4]])  # ids 1 and 3 shared with input 0
    ours = OcclusionPatch(f).attribute((a, b), feature_mask=(ma, mb), target=1, perturbations_per_eval=2)
    ref = FeatureAblation(f).attribute((a, b), feature_mask=(ma, mb), target=1)
    for o, r in zip(ours, ref):
        torch.testing.assert_close(o, r)


def test_linear_model_matches_gradient_x_input_sums():
    torch.manual_seed(0)
    lin = nn.Linear(2 * 6 * 6, 3).double()
    model = nn.Sequential(nn.Flatten(), lin)
    g = torch.Generator().manual_seed(5)
    x = torch.randn(4, 2, 6, 6, generator=g, dtype=torch.double)
    gxi = GradientXInput(model).attribute(x, target=1)
    torch.testing.assert_close(Occlusion1(model).attribute(x, target=1), gxi)
    # Occlusion-patch summed over a patch = sum of Gradient*Input over the patch
    patch = OcclusionPatch(model).attribute(x, patch_shapes=(2, 3, 2), target=1)
    per_patch_gxi = gxi.reshape(4, 1, 2, 2, 3, 3, 2).sum((2, 4, 6))
    per_patch_occ = patch.reshape(4, 1, 2, 2, 3, 3, 2)[:, :, 0, :, 0, :, 0]
    torch.testing.assert_close(per_patch_occ, per_patch_gxi)
    divided = OcclusionPatch(model).attribute(x, patch_shapes=(2, 3, 2), target=1, divide_by_patch_size=True)
    torch.testing.assert_close(divided.sum((1, 2, 3)), gxi.sum((1, 2, 3)))
    # nonzero baseline: (x - xbar) * w
    xbar = torch.randn(2, 6, 6, generator=g, dtype=torch.double)
    w = lin.weight[1].detach().reshape(2, 6, 6)
    expected = (x - xbar) * w
    torch.testing.assert_close(Occlusion1(model).attribute(x, baselines=xbar, target=1), expected)
    divided = OcclusionPatch(model).attribute(
        x, patch_shapes=(1, 4, 4), baselines=xbar, target=1, divide_by_patch_size=True
    )
    torch.testing.assert_close(divided.sum((1, 2, 3)), expected.sum((1, 2, 3)))


def test_divide_by_patch_size_feature_mask_and_windows():
    m, x = _cnn(), _x(3)
    mask = torch.zeros(1, 2, 7, 6, dtype=torch.long)
    mask[:, :, 3:] = 1
    plain = OcclusionPatch(m).attribute(x, feature_mask=mask, target=0)
    div = OcclusionPatch(m).attribute(x, feature_mask=mask, target=0, divide_by_patch_size=True)
    torch.testing.assert_close(div[:, :, :3], plain[:, :, :3] / (2 * 3 * 6))
    torch.testing.assert_close(div[:, :, 3:], plain[:, :, 3:] / (2 * 4 * 6))
    w_plain = OcclusionPatch(m).attribute(x, patch_shapes=(2, 2, 2), strides=(1, 2, 2), target=0)
    w_div = OcclusionPatch(m).attribute(
        x, patch_shapes=(2, 2, 2), strides=(1, 2, 2), target=0, divide_by_patch_size=True
    )
    # 7 rows, windows of 2 rows at 0, 2, 4, 6: the last one is cut to 1 row (4 features)
    torch.testing.assert_close(w_div[:, :, :6], w_plain[:, :, :6] / 8)
    torch.testing.assert_close(w_div[:, :, 6:], w_plain[:, :, 6:] / 4)


def test_memory_bounds_and_progress_do_not_change_result():
    m, x = _cnn(), _x()
    ref = OcclusionPatch(m).attribute(x, patch_shapes=(1, 2, 2), target=1)
    for kw in ({"max_batch_size": 7}, {"max_memory_mb": 1e-3}, {"perturbations_per_eval": 3}, {"show_progress": True}):
        torch.testing.assert_close(OcclusionPatch(m).attribute(x, patch_shapes=(1, 2, 2), target=1, **kw), ref)


def test_no_trace_on_model():
    m, x = _cnn(), _x(2)
    before = [p.requires_grad for p in m.parameters()]
    OcclusionPatch(m).attribute(x, patch_shapes=(1, 2, 2), strides=1, target=1)
    assert [p.requires_grad for p in m.parameters()] == before
    assert not x.requires_grad and m.training
    assert not m._forward_hooks and not m._forward_pre_hooks


def test_errors():
    m, x = _cnn(), _x(2)
    op = OcclusionPatch(m)
    with pytest.raises(ValueError, match="larger than input"):
        op.attribute(x, patch_shapes=(1, 8, 2), target=0)
    with pytest.raises(ValueError, match="dimension"):
        op.attribute(x, patch_shapes=(2, 2), target=0)
    with pytest.raises(ValueError, match="does not fit input shape"):
        op.attribute(x, feature_mask=torch.zeros(1, 2, 5, 6, dtype=torch.long), target=0)
    with pytest.raises(ValueError, match="does not fit input shape"):
        op.attribute(x, feature_mask=torch.zeros(3, 2, 7, 6, dtype=torch.long), target=0)
    with pytest.raises(TypeError, match="integer"):
        op.attribute(x, feature_mask=torch.zeros(1, 2, 7, 6), target=0)
    with pytest.raises(ValueError, match="exactly one"):
        op.attribute(x, target=0)
    with pytest.raises(ValueError, match="positive"):
        op.attribute(x, patch_shapes=(1, 2, 2), strides=(1, 0, 1), target=0)
