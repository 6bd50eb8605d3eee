"""Occlusion1 / OcclusionPatch on Captum's own FeatureAblation / Occlusion test
models and configurations (captum.testing): the same numbers, in Captum's dtype."""

from __future__ import annotations

import pytest
import torch
from captum.attr import FeatureAblation, NoiseTunnel, Occlusion
from captum.testing.helpers.basic_models import (
    BasicModel,
    BasicModel_ConvNet_One_Conv,
    BasicModel_MultiLayer,
    BasicModel_MultiLayer_MultiInput,
    BasicModelBoolInput,
    BasicModelWithSparseInputs,
)
from torch import nn

import captum_unified as cu

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _close(ours, expected, atol=1e-4):
    if isinstance(expected, tuple):
        assert isinstance(ours, tuple) and len(ours) == len(expected)
        for o, e in zip(ours, expected):
            _close(o, e, atol)
        return
    if isinstance(expected, torch.Tensor):  # Captum's dtype (FeatureAblation: the output's; Occlusion: floating)
        assert ours.dtype == expected.dtype, (ours.dtype, expected.dtype)
    expected = torch.as_tensor(expected)
    assert tuple(ours.shape) == tuple(expected.shape)
    torch.testing.assert_close(ours.double().cpu(), expected.double().cpu(), atol=atol, rtol=1e-5)


class TokenModel(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.emb = nn.Embedding(20, 4)
        self.lin = nn.Linear(4 * 5, 3)

    def forward(self, ids):
        return self.lin(self.emb(ids).flatten(1))


@pytest.mark.parametrize("device", DEVICES)
def test_integer_token_ids_equal_feature_ablation(device):
    model = TokenModel().to(device)
    ids = torch.tensor([[3, 7, 1, 19, 4], [5, 5, 2, 0, 11]], device=device)
    ref = FeatureAblation(model).attribute(ids, target=1)
    assert ref.is_floating_point()
    _close(cu.Occlusion1(model).attribute(ids, target=1), ref)
    mask = torch.tensor([[0, 0, 1, 2, 2]], device=device)
    ref = FeatureAblation(model).attribute(ids, target=2, feature_mask=mask, baselines=1)
    _close(cu.OcclusionPatch(model).attribute(ids, target=2, feature_mask=mask, baselines=1), ref)
    _close(
        cu.OcclusionPatch(model).attribute(ids, target=2, patch_shapes=(2,), baselines=1),
        Occlusion(model).attribute(ids, target=2, sliding_window_shapes=(2,), strides=2, baselines=1),
    )


def test_integer_inputs_with_float_baselines():
    # captum tests/attr/test_feature_ablation.py: int inputs, fractional baselines stay floating
    def sum_forward(*inps):
        return torch.cat([torch.flatten(inp, start_dim=1) for inp in inps], dim=1).sum(1)

    inp1 = torch.tensor([[0, 1], [3, 4]])
    inp2 = torch.tensor([[[0.1, 0.2], [0.3, 0.2]], [[0.4, 0.5], [0.3, 0.2]]])
    inp3 = torch.tensor([[0], [1]])
    expected = (
        torch.tensor([[-0.2, 0.8], [2.8, 3.8]]),
        torch.tensor([[[-3.0, -2.9], [-2.8, -2.9]], [[-2.7, -2.6], [-2.8, -2.9]]]),
        torch.tensor([[-0.4], [0.6]]),
    )
    _close(cu.Occlusion1(sum_forward).attribute((inp1, inp2, inp3), baselines=(0.2, 3.1, 0.4)), expected)
    masks = (torch.tensor([[0, 1]]), torch.tensor([[[2, 3], [4, 5]]]), torch.tensor([[6]]))
    _close(
        cu.OcclusionPatch(sum_forward).attribute((inp1, inp2, inp3), feature_mask=masks, baselines=(0.2, 3.1, 0.4)),
        expected,
    )


def test_int_model_output_gives_float_attributions():
    # captum test_simple_ablation_int_to_int expects int64 [[-3, 0, 0]]; ours is the same value, floating
    inp = torch.tensor([[-3, 1, 2]])
    for ppe in (1, 2, 3):
        _close(cu.Occlusion1(BasicModel()).attribute(inp, target=0, perturbations_per_eval=ppe), [[-3.0, 0.0, 0.0]])


@pytest.mark.parametrize("ppe", [1, 2, 3])
def test_bool_inputs(ppe):
    model = BasicModelBoolInput()
    inp = torch.tensor([[True, False, True]])
    mask = torch.tensor([[0, 0, 1]])
    _close(
        cu.OcclusionPatch(model).attribute(inp, feature_mask=mask, target=0, perturbations_per_eval=ppe),
        [[40.0, 40.0, 40.0]],
    )
    _close(
        cu.OcclusionPatch(model).attribute(
            inp, feature_mask=mask, target=0, baselines=True, perturbations_per_eval=ppe
        ),
        [[-40.0, -40.0, 0.0]],
    )
    ref = FeatureAblation(model).attribute(inp, target=0)
    _close(cu.Occlusion1(model).attribute(inp, target=0, perturbations_per_eval=ppe), ref)


def test_multi_input_masks_with_shared_ids_and_per_sample_masks():
    algo = cu.OcclusionPatch(BasicModel_MultiLayer_MultiInput())
    inp1 = torch.tensor([[23.0, 100.0, 0.0], [20.0, 50.0, 30.0]])
    inp2 = torch.tensor([[20.0, 50.0, 30.0], [0.0, 100.0, 0.0]])
    inp3 = torch.tensor([[0.0, 100.0, 10.0], [2.0, 10.0, 3.0]])
    masks = (torch.tensor([[1, 1, 1], [0, 1, 0]]), torch.tensor([[3, 4, 2]]), torch.tensor([[5, 6, 7], [5, 5, 5]]))
    expected = (
        [[492.0, 492.0, 492.0], [200.0, 200.0, 200.0]],
        [[80.0, 200.0, 120.0], [0.0, 400.0, 0.0]],
        [[0.0, 400.0, 40.0], [60.0, 60.0, 60.0]],
    )
    for ppe in (1, 2, 3):
        out = algo.attribute(
            (inp1, inp2, inp3), feature_mask=masks, additional_forward_args=(1,), target=0, perturbations_per_eval=ppe
        )
        _close(out, tuple(torch.tensor(e) for e in expected))
    with_baselines = (
        [[468.0, 468.0, 468.0], [184.0, 192.0, 184.0]],
        [[68.0, 188.0, 108.0], [-12.0, 388.0, -12.0]],
        [[-16.0, 384.0, 24.0], [12.0, 12.0, 12.0]],
    )
    out = algo.attribute(
        (inp1, inp2, inp3), feature_mask=masks, additional_forward_args=(1,), target=0, baselines=(2, 3.0, 4)
    )
    _close(out, tuple(torch.tensor(e) for e in with_baselines))


def test_zero_dim_masks_and_conv_model():
    algo = cu.OcclusionPatch(BasicModel_ConvNet_One_Conv())
    inp = torch.arange(16, dtype=torch.float).view(1, 1, 4, 4)
    inp2 = torch.ones((1, 1, 4, 4))
    for ppe in (1, 2, 4):
        out = algo.attribute(
            (inp, inp2), feature_mask=(torch.tensor(0), torch.tensor(1)), target=0, perturbations_per_eval=ppe
        )
        _close(out, (67 * torch.ones_like(inp), 13 * torch.ones_like(inp2)))


def test_per_input_int_strides_equal_captum_occlusion():
    torch.manual_seed(0)
    lin = nn.Linear(2 * 6 * 6 + 7, 2)

    def f(a, b):
        return torch.tanh(lin(torch.cat([a.flatten(1), b], 1)))

    a, b = torch.randn(3, 2, 6, 6), torch.randn(3, 7)
    windows, strides = ((2, 3, 3), (2,)), (2, 1)
    ours = cu.OcclusionPatch(f).attribute((a, b), patch_shapes=windows, strides=strides, target=1)
    ref = Occlusion(f).attribute((a, b), sliding_window_shapes=windows, strides=strides, target=1)
    _close(ours, ref, atol=1e-5)
    # per input: a per-dimension tuple and an int
    ours = cu.OcclusionPatch(f).attribute((a, b), patch_shapes=windows, strides=((1, 2, 1), 2), target=0)
    ref = Occlusion(f).attribute((a, b), sliding_window_shapes=windows, strides=((1, 2, 1), 2), target=0)
    _close(ours, ref, atol=1e-5)


# ------------------------------------------------------------- aggregate mode
def _scalar_models():
    net = BasicModel_MultiLayer()
    return {
        "float": lambda inp: torch.sum(net(inp)).item(),
        "0d": lambda inp: torch.sum(net(inp)),
        "1d": lambda inp: torch.sum(net(inp)).reshape(1),
        "int": lambda inp: int(torch.sum(net(inp)).item()),
    }


@pytest.mark.parametrize("kind", ["float", "0d", "1d", "int"])
def test_model_returning_one_scalar_per_batch_is_captums_aggregate_mode(kind):
    f = _scalar_models()[kind]
    mask = torch.tensor([[0, 0, 1]])
    one = torch.tensor([[2.0, 10.0, 3.0]])
    _close(cu.OcclusionPatch(f).attribute(one, feature_mask=mask), [[82.0, 82.0, 24.0]])
    two = torch.tensor([[2.0, 10.0, 3.0], [20.0, 50.0, 30.0]])
    _close(cu.OcclusionPatch(f).attribute(two, feature_mask=mask), [[642.0, 642.0, 264.0]])
    _close(cu.OcclusionPatch(f).attribute(two, feature_mask=mask, perturbations_per_eval=4), [[642.0, 642.0, 264.0]])
    ref = FeatureAblation(f).attribute(two)
    _close(cu.Occlusion1(f).attribute(two), ref)
    with pytest.raises(ValueError, match="per-sample"):
        cu.OcclusionPatch(f).attribute(two, feature_mask=torch.tensor([[0, 0, 1], [1, 1, 0]]))


def test_aggregate_multi_input_and_multi_output():
    net = BasicModel_MultiLayer_MultiInput()
    inp1 = torch.tensor([[23.0, 100.0, 0.0], [20.0, 50.0, 30.0]])
    inp2 = torch.tensor([[20.0, 50.0, 30.0], [0.0, 100.0, 0.0]])
    inp3 = torch.tensor([[0.0, 100.0, 10.0], [2.0, 10.0, 3.0]])
    masks = (torch.tensor([[1, 1, 1]]), torch.tensor([[0, 3, 2]]), torch.tensor([[4, 5, 6]]))
    out = cu.OcclusionPatch(lambda *i: torch.sum(net(*i))).attribute(
        (inp1, inp2, inp3), feature_mask=masks, additional_forward_args=(1,)
    )
    _close(
        out,
        (torch.tensor([[1784.0, 1784, 1784]]), torch.tensor([[160.0, 1200, 240]]), torch.tensor([[16.0, 880, 104]])),
    )
    # one output row for a batch of 2, three values: attributions (3, 3)
    inp = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    _close(
        cu.Occlusion1(lambda i: i[0].unsqueeze(0)).attribute(inp), [[1.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 3.0]]
    )
    _close(
        cu.OcclusionPatch(lambda i: i[0].unsqueeze(0)).attribute(inp, feature_mask=torch.tensor([[0, 0, 1]])),
        [[1.0, 1.0, 0.0], [2.0, 2.0, 0.0], [0.0, 0.0, 3.0]],
    )
    # an output that does not depend on the input
    x = torch.randn(10, 5)
    _close(
        cu.OcclusionPatch(lambda i: torch.ones(1, 5, 3, 2)).attribute(x, feature_mask=torch.arange(5).unsqueeze(0)),
        torch.zeros(30, 5),
    )


def test_inputs_whose_first_dimensions_differ():
    model = BasicModelWithSparseInputs()
    inp1 = torch.tensor([[1.0, -2.0, 3.0], [2.0, -1.0, 3.0]])
    _close(
        cu.Occlusion1(model).attribute((inp1, torch.tensor([1, 7, 2, 4, 5, 3, 6]))),
        (torch.tensor([[9.0, -3.0, 12.0]]), torch.tensor([2.0])),
    )
    _close(
        cu.Occlusion1(model).attribute((inp1, torch.tensor([]))),
        (torch.tensor([[9.0, -3.0, 12.0]]), torch.tensor([0.0])),
    )


def test_noise_tunnel_with_occlusion_patch_and_feature_ablation_semantics():
    model = BasicModel_MultiLayer()
    inp = torch.tensor([[20.0, 50.0, 30.0]])
    nt = NoiseTunnel(cu.OcclusionPatch(model))
    out = nt.attribute(inp, nt_samples=3, stdevs=1e-10, feature_mask=torch.tensor([[0, 0, 1]]), target=0)
    _close(out, [[280.0, 280.0, 120.0]])
    out = NoiseTunnel(cu.Occlusion1(model)).attribute(inp, nt_samples=2, stdevs=1e-10, target=0)
    _close(out, [[80.0, 200.0, 120.0]])


def test_a_model_with_integer_outputs_keeps_captums_dtype():
    """A model whose outputs are integers (counts, votes): Occlusion1 and
    OcclusionPatch with a feature mask return the output's dtype with exact
    integer changes, as FeatureAblation; OcclusionPatch with patches is
    floating, as Occlusion (which averages over windows)."""
    weights = torch.tensor([[1, 2, 3, 4], [0, 1, -1, 2], [3, 0, 0, 1]])

    def counts(x):
        return x.long() @ weights.T

    for x in (torch.tensor([[1, -2, 0, 3], [2, 2, -1, 0]]), torch.tensor([[1.0, -2.0, 0.0, 3.0]])):
        ref = FeatureAblation(counts).attribute(x, target=1)
        ours = cu.Occlusion1(counts).attribute(x, target=1)
        assert ours.dtype == ref.dtype == torch.int64 and torch.equal(ours, ref)
        mask = torch.tensor([[0, 0, 1, 1]])
        ref = FeatureAblation(counts).attribute(x, target=1, feature_mask=mask)
        ours = cu.OcclusionPatch(counts).attribute(x, target=1, feature_mask=mask)
        assert ours.dtype == ref.dtype == torch.int64 and torch.equal(ours, ref)
        ref = Occlusion(counts).attribute(x, target=1, sliding_window_shapes=(2,), strides=2)
        ours = cu.OcclusionPatch(counts).attribute(x, target=1, patch_shapes=(2,))
        assert ours.dtype == ref.dtype == torch.get_default_dtype()
        torch.testing.assert_close(ours, ref)
    # changes beyond float32's integers stay exact
    big = torch.tensor([[2**30 + 1, 3, 0, 1]])
    assert cu.Occlusion1(counts).attribute(big, target=0)[0, 0] == 2**30 + 1
