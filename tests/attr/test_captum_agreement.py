"""Agreement with Captum's own implementations on the networks Captum supports
(SPEC §1, last fact). Captum is the independent oracle here."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LRP as CLRP
from captum.attr import DeepLift as CDeepLift
from captum.attr import InputXGradient as CInputXGradient
from captum.attr import IntegratedGradients as CIG
from captum.attr import LayerDeepLift as CLayerDeepLift
from captum.attr import LayerGradientXActivation as CLayerGxA
from captum.attr import LayerLRP as CLayerLRP
from captum.attr import Occlusion as COcclusion
from captum.attr._utils.lrp_rules import IdentityRule
from conftest import (
    DTYPE,
    assert_close,
    make_cnn,
    make_mlp,
    make_sequential_mlp,
    make_two_input,
    randn,
)

import captum_unified as cu

ACTS = ["relu", "tanh", "sigmoid"]


def _targets(batch):
    return [1, [0, 2, 1, 2][:batch], torch.tensor([2, 0, 1, 0][:batch])]


def _models(act, maxpool=False):
    models = [
        ("mlp", make_mlp((5, 7, 6, 3), act, seed=1), randn(4, 5, seed=11)),
        ("cnn", make_cnn(act, "avg", seed=2), randn(3, 2, 6, 6, seed=12)),
    ]
    if maxpool:  # not for DeepLift: Captum has its own max-pool rule, ours keeps the gradient
        models.append(("cnn-max", make_cnn(act, "max", seed=3), randn(2, 2, 6, 6, seed=13)))
    return models


def _baselines(x):
    return [
        0.0,
        0.3,
        randn(*x.shape, seed=99) * 0.5,  # full batch
        randn(1, *x.shape[1:], seed=98) * 0.5,  # batch 1
    ]


# ---------------------------------------------------------------- InputXGradient
@pytest.mark.parametrize("act", ACTS)
def test_gradient_x_input_matches_captum(act):
    for name, model, x in _models(act, maxpool=True):
        for target in _targets(x.shape[0]):
            ours = cu.GradientXInput(model).attribute(x, target=target)
            theirs = CInputXGradient(model).attribute(x, target=target)
            assert_close(ours, theirs, msg=f"{name}/{act}/{target}")


def test_gradient_x_input_tuple_inputs_match_captum():
    model = make_two_input("tanh", seed=3)
    x = (randn(3, 3, seed=1), randn(3, 2, seed=2))
    for target in _targets(3):
        ours = cu.GradientXInput(model).attribute(x, target=target)
        theirs = CInputXGradient(model).attribute(x, target=target)
        assert isinstance(ours, tuple) and len(ours) == 2
        assert_close(ours, theirs)


# ---------------------------------------------------------------- DeepLift
@pytest.mark.parametrize("act", ACTS)
def test_deeplift_matches_captum(act):
    for name, model, x in _models(act):
        for bl in _baselines(x):
            for target in _targets(x.shape[0]):
                ours, d1 = cu.DeepLiftRescale(model).attribute(
                    x, baselines=bl, target=target, return_convergence_delta=True
                )
                theirs, d2 = CDeepLift(model).attribute(x, baselines=bl, target=target, return_convergence_delta=True)
                assert_close(ours, theirs, atol=1e-8, msg=f"{name}/{act}/{target}")
                assert_close(d1, d2.to(DTYPE), atol=1e-8)


def test_deeplift_tuple_inputs_match_captum():
    model = make_two_input("sigmoid", seed=4)
    x = (randn(3, 3, seed=1), randn(3, 2, seed=2))
    bls = [(0.0, 0.0), (randn(1, 3, seed=5), randn(1, 2, seed=6)), (randn(3, 3, seed=7), 0.5)]
    for bl in bls:
        for target in _targets(3):
            ours = cu.DeepLiftRescale(model).attribute(x, baselines=bl, target=target)
            theirs = CDeepLift(model).attribute(x, baselines=bl, target=target)
            assert_close(ours, theirs, atol=1e-8)


def test_deeplift_multipliers_match_captum():
    model = make_mlp((5, 6, 3), "tanh", seed=8)
    x = randn(4, 5, seed=3)
    bl = randn(1, 5, seed=4)
    ours = cu.DeepLiftRescale(model, multiply_by_inputs=False).attribute(x, bl, target=2)
    theirs = CDeepLift(model, multiply_by_inputs=False).attribute(x, bl, target=2)
    assert_close(ours, theirs, atol=1e-8)


# ---------------------------------------------------------------- LRP (ReLU only)
def test_epsilon_lrp_matches_captum_lrp_relu_mlp():
    model = make_sequential_mlp((5, 7, 6, 3), "relu", seed=5)
    x = randn(4, 5, seed=7)
    for target in _targets(4):
        ours, d1 = cu.EpsilonLRP(model, epsilon=1e-9).attribute(x, target=target, return_convergence_delta=True)
        theirs, d2 = CLRP(model).attribute(x, target=target, return_convergence_delta=True)
        assert_close(ours, theirs, atol=1e-8)
        # Both report S_c(x) - sum(R), the relevance absorbed by biases.
        assert_close(d1, d2.to(DTYPE).reshape(d1.shape), atol=1e-8)


def test_captum_lrp_cannot_serve_as_cnn_oracle_here():
    """Captum 0.9.0's LRP fails on this conv/avg-pool net even with an identity
    rule on Flatten (its backward hooks change tensor sizes); the CNN case of
    epsilon-LRP is covered against Gradient*Input (Prop. 3i) in
    test_propositions.py instead. Documented so a Captum upgrade is noticed."""
    model = make_cnn("relu", "avg", seed=6)
    model.flatten.rule = IdentityRule()
    x = randn(2, 2, 6, 6, seed=8)
    with pytest.raises(RuntimeError, match="changed the size"):
        CLRP(model).attribute(x, target=0)


class _CatNet(torch.nn.Module):
    """Two inputs concatenated into one Linear: a tuple-input net Captum's LRP
    handles with the same Eq. 2 denominators as ours."""

    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(5, 6)
        self.act = torch.nn.ReLU()
        self.l2 = torch.nn.Linear(6, 3)

    def forward(self, x1, x2):
        return self.l2(self.act(self.l1(torch.cat([x1, x2], dim=1))))


def test_epsilon_lrp_tuple_inputs_match_captum_lrp():
    torch.manual_seed(9)
    model = _CatNet().to(DTYPE).eval()
    x = (randn(3, 3, seed=1), randn(3, 2, seed=2))
    ours = cu.EpsilonLRP(model).attribute(x, target=[0, 1, 2])
    theirs = CLRP(model).attribute(x, target=[0, 1, 2])
    assert isinstance(ours, tuple) and len(ours) == 2
    assert_close(ours, theirs, atol=1e-8)


# ---------------------------------------------------------------- IG
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("method", ["gausslegendre", "riemann_trapezoid", "riemann_left"])
def test_integrated_gradients_matches_captum(act, method):
    for name, model, x in _models(act, maxpool=True):
        for bl in _baselines(x)[::2] + [_baselines(x)[3]]:
            target = _targets(x.shape[0])[hash(method) % 3]
            ours, d1 = cu.IntegratedGradients(model).attribute(
                x,
                baselines=bl,
                target=target,
                n_steps=20,
                method=method,
                return_convergence_delta=True,
            )
            theirs, d2 = CIG(model).attribute(
                x,
                baselines=bl,
                target=target,
                n_steps=20,
                method=method,
                return_convergence_delta=True,
            )
            assert_close(ours, theirs, atol=1e-8, msg=f"{name}/{act}/{method}")
            assert_close(d1, d2.to(DTYPE), atol=1e-8)


def test_integrated_gradients_internal_batch_and_tuple_match_captum():
    model = make_two_input("tanh", seed=10)
    x = (randn(3, 3, seed=1), randn(3, 2, seed=2))
    bl = (randn(1, 3, seed=3), 0.2)
    ours = cu.IntegratedGradients(model).attribute(
        x, baselines=bl, target=torch.tensor([0, 1, 2]), n_steps=17, internal_batch_size=7
    )
    theirs = CIG(model).attribute(x, baselines=bl, target=torch.tensor([0, 1, 2]), n_steps=17)
    assert_close(ours, theirs, atol=1e-8)


# ---------------------------------------------------------------- Occlusion
@pytest.mark.parametrize("act", ["relu", "sigmoid"])
def test_occlusion1_matches_captum_occlusion(act):
    for name, model, x in _models(act, maxpool=True):
        window = (1,) * (x.dim() - 1)
        for bl in [0.0, 0.3, randn(1, *x.shape[1:], seed=5)]:
            for target in _targets(x.shape[0]):
                ours = cu.Occlusion1(model).attribute(x, baselines=bl, target=target)
                theirs = COcclusion(model).attribute(x, sliding_window_shapes=window, baselines=bl, target=target)
                assert_close(ours, theirs, atol=1e-9, msg=f"{name}/{act}")


def test_occlusion1_tuple_inputs_match_captum():
    model = make_two_input("tanh", seed=11)
    x = (randn(3, 3, seed=1), randn(3, 2, seed=2))
    ours = cu.Occlusion1(model).attribute(x, baselines=(0.0, 0.5), target=1, perturbations_per_eval=2)
    theirs = COcclusion(model).attribute(x, sliding_window_shapes=((1,), (1,)), baselines=(0.0, 0.5), target=1)
    assert_close(ours, theirs, atol=1e-9)


# ---------------------------------------------------------------- Layer methods
@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("act", ACTS)
def test_layer_gradient_x_input_matches_captum(act, to_input):
    model = make_mlp((5, 7, 6, 3), act, seed=12)
    x = randn(4, 5, seed=1)
    for layer in (model.linears[1], model.acts[0]):
        for target in _targets(4):
            ours = cu.LayerGradientXInput(model, layer).attribute(x, target=target, attribute_to_layer_input=to_input)
            theirs = CLayerGxA(model, layer).attribute(x, target=target, attribute_to_layer_input=to_input)
            assert_close(ours, theirs, atol=1e-9)


@pytest.mark.parametrize("to_input", [False, True])
@pytest.mark.parametrize("act", ACTS)
def test_layer_deeplift_matches_captum(act, to_input):
    model = make_mlp((5, 7, 6, 3), act, seed=13)
    x = randn(4, 5, seed=1)
    for layer in (model.linears[1], model.linears[0]):
        for bl in (0.0, randn(1, 5, seed=2), randn(4, 5, seed=3)):
            ours, d1 = cu.LayerDeepLiftRescale(model, layer).attribute(
                x,
                baselines=bl,
                target=[0, 1, 2, 0],
                attribute_to_layer_input=to_input,
                return_convergence_delta=True,
            )
            theirs, d2 = CLayerDeepLift(model, layer).attribute(
                x,
                baselines=bl,
                target=[0, 1, 2, 0],
                attribute_to_layer_input=to_input,
                return_convergence_delta=True,
            )
            assert_close(ours, theirs, atol=1e-8)
            assert_close(d1, d2.to(DTYPE), atol=1e-8)


@pytest.mark.parametrize("to_input", [False, True])
def test_layer_epsilon_lrp_matches_captum_relu_mlp(to_input):
    model = make_sequential_mlp((5, 7, 6, 3), "relu", seed=14)
    x = randn(4, 5, seed=1)
    for layer in (model[2], model[4]):
        for target in _targets(4):
            ours = cu.LayerEpsilonLRP(model, layer).attribute(x, target=target, attribute_to_layer_input=to_input)
            theirs = CLayerLRP(model, layer).attribute(x, target=target, attribute_to_layer_input=to_input)
            assert_close(ours, theirs, atol=1e-8)


# ---------------------------------------------------------------- additional_forward_args
class _ShiftNet(torch.nn.Module):
    """Per-sample additional argument added before the nonlinearity."""

    def __init__(self):
        super().__init__()
        self.l1 = torch.nn.Linear(4, 5)
        self.act = torch.nn.Tanh()
        self.l2 = torch.nn.Linear(5, 3)

    def forward(self, x, shift, gain=1.0):
        return self.l2(self.act(self.l1(x) + shift)) * gain


@pytest.mark.parametrize("bl_batch", [1, 3])
def test_additional_forward_args_per_sample_match_captum(bl_batch):
    torch.manual_seed(21)
    model = _ShiftNet().to(DTYPE).eval()
    x = randn(3, 4, seed=1)
    shift = randn(3, 5, seed=2)
    bl = randn(bl_batch, 4, seed=3)
    args = (shift, 2.0)
    pairs = [
        (
            cu.DeepLiftRescale(model).attribute(
                x, bl, target=[0, 1, 2], additional_forward_args=args, return_convergence_delta=True
            ),
            CDeepLift(model).attribute(
                x, bl, target=[0, 1, 2], additional_forward_args=args, return_convergence_delta=True
            ),
        ),
        (
            cu.IntegratedGradients(model).attribute(x, bl, target=1, additional_forward_args=args, n_steps=9),
            CIG(model).attribute(x, bl, target=1, additional_forward_args=args, n_steps=9),
        ),
        (
            cu.GradientXInput(model).attribute(x, target=2, additional_forward_args=args),
            CInputXGradient(model).attribute(x, target=2, additional_forward_args=args),
        ),
        (
            cu.Occlusion1(model).attribute(x, bl, target=0, additional_forward_args=args),
            COcclusion(model).attribute(x, (1,), baselines=bl, target=0, additional_forward_args=args),
        ),
    ]
    for ours, theirs in pairs:
        if isinstance(ours, tuple):
            assert_close(ours[0], theirs[0].detach(), atol=1e-8)
            assert_close(ours[1], theirs[1].to(DTYPE), atol=1e-8)
            assert ours[1].abs().max() < 1e-10  # complete with per-sample args
        else:
            assert_close(ours, theirs.detach(), atol=1e-8)


def test_float32_models_match_captum_at_float32_tolerance():
    model = make_mlp((5, 7, 6, 3), "tanh", seed=31).float()
    x = randn(4, 5, seed=1).float()
    bl = randn(1, 5, seed=2).float()
    pairs = [
        (cu.GradientXInput(model).attribute(x, target=1), CInputXGradient(model).attribute(x, target=1)),
        (cu.DeepLiftRescale(model).attribute(x, bl, target=1), CDeepLift(model).attribute(x, bl, target=1)),
        (
            cu.IntegratedGradients(model).attribute(x, bl, target=1, n_steps=10),
            CIG(model).attribute(x, bl, target=1, n_steps=10),
        ),
        (cu.Occlusion1(model).attribute(x, bl, target=1), COcclusion(model).attribute(x, (1,), baselines=bl, target=1)),
    ]
    for ours, theirs in pairs:
        assert ours.dtype == torch.float32
        torch.testing.assert_close(ours, theirs.detach(), atol=1e-5, rtol=1e-4)
