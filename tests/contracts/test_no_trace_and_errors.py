"""SPEC conventions: never leave a trace on the user's model (also when the
model raises), and turn bad input into a clear error; epsilon-LRP warns where
Ancona §4 point 5 says it is unreliable."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from conftest import DTYPE, hook_count, make_cnn, make_mlp, make_styled, randn
from torch.nn.modules import module as _module
from torch.overrides import _get_current_function_mode_stack

import captum_unified as cu


def _calls(model):
    """(name, callable(x)) for every method, input methods and layer methods."""
    layer = model.linears[1]
    return [
        ("gi", lambda x, **k: cu.GradientXInput(model).attribute(x, target=1)),
        (
            "ig",
            lambda x, **k: cu.IntegratedGradients(model).attribute(
                x, baselines=0.2, target=1, n_steps=4, return_convergence_delta=True
            ),
        ),
        ("lrp", lambda x, **k: cu.EpsilonLRP(model, 1e-3).attribute(x, target=1, return_convergence_delta=True)),
        (
            "dl",
            lambda x, **k: cu.DeepLiftRescale(model).attribute(
                x, baselines=0.2, target=1, return_convergence_delta=True
            ),
        ),
        ("mg", lambda x, **k: cu.ModifiedGradient(model, cu.EpsilonLRPRule(0.1)).attribute(x, target=1)),
        ("occ", lambda x, **k: cu.Occlusion1(model).attribute(x, target=1)),
        ("lgi", lambda x, **k: cu.LayerGradientXInput(model, layer).attribute(x, target=1)),
        (
            "lgi_in",
            lambda x, **k: cu.LayerGradientXInput(model, layer).attribute(x, target=1, attribute_to_layer_input=True),
        ),
        ("llrp", lambda x, **k: cu.LayerEpsilonLRP(model, layer).attribute(x, target=1)),
        (
            "ldl",
            lambda x, **k: cu.LayerDeepLiftRescale(model, layer).attribute(
                x, baselines=0.1, target=1, return_convergence_delta=True
            ),
        ),
        (
            "ldl_in",
            lambda x, **k: cu.LayerDeepLiftRescale(model, layer).attribute(x, target=1, attribute_to_layer_input=True),
        ),
    ]


def _assert_no_trace(model, x, x_before, requires_grad, training):
    assert hook_count(model) == 0
    assert not _module._global_forward_hooks and not _module._global_forward_pre_hooks
    assert not _module._global_backward_hooks
    assert torch._C._len_torch_function_stack() == 0
    assert _get_current_function_mode_stack() == []
    assert torch.is_grad_enabled()
    assert model.training is training
    assert all(m.training is training for m in model.modules())
    assert x.requires_grad is requires_grad
    assert torch.equal(x.detach(), x_before)
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("training", [False, True])
@pytest.mark.parametrize("requires_grad", [False, True])
@pytest.mark.parametrize("style", ["module", "functional", "reused"])
def test_no_trace_after_successful_calls(training, requires_grad, style):
    model = make_styled((4, 6, 5, 3), "tanh", style, seed=1)
    model.train(training)
    for name, call in _calls(model):
        x = randn(3, 4, seed=2).requires_grad_(requires_grad)
        before = x.detach().clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            out = call(x)
        attr = out[0] if isinstance(out, tuple) else out
        if not requires_grad:  # (with a grad-requiring input Captum's results carry grad_fn too)
            assert not attr.requires_grad, name
        _assert_no_trace(model, x, before, requires_grad, training)


def test_no_grad_context_is_respected_and_restored():
    model = make_mlp((4, 6, 3), "relu", seed=3)
    x = randn(2, 4, seed=1)
    with torch.no_grad():
        a = cu.GradientXInput(model).attribute(x, target=0)
        assert not torch.is_grad_enabled()
    xx = x.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(xx)[:, 0].sum(), xx)
    torch.testing.assert_close(a, g * x)


class Exploding(nn.Module):
    """Raises inside forward on its ``fail_on``-th call, after a nonlinearity."""

    def __init__(self, fail_on):
        super().__init__()
        torch.manual_seed(4)
        self.l1, self.act, self.l2 = nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)
        self.fail_on = fail_on
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        h = torch.tanh(self.act(self.l1(x)))
        if self.calls == self.fail_on:
            raise RuntimeError("boom in forward")
        return self.l2(h)


@pytest.mark.parametrize("fail_on", [1, 2])
def test_no_trace_when_model_raises(fail_on):
    for k in range(len(_calls(make_mlp((4, 5, 3))))):
        model = Exploding(fail_on).to(DTYPE)
        model.linears = nn.ModuleList([model.l1, model.l2])  # for the layer methods
        name, call = _calls(model)[k]
        x = randn(3, 4, seed=2)
        before = x.clone()
        try:
            call(x)
        except RuntimeError as e:
            assert "boom" in str(e), name
        else:
            # only a method that calls forward once can escape fail_on=2
            assert fail_on == 2 and model.calls == 1, name
        _assert_no_trace(model, x, before, False, True)


# ------------------------------------------------------------------ errors
METHODS_WITH_BASELINES = [
    ("ig", lambda m: cu.IntegratedGradients(m), {"n_steps": 3}),
    ("dl", lambda m: cu.DeepLiftRescale(m), {}),
    ("mg", lambda m: cu.ModifiedGradient(m, cu.RescaleRule()), {}),
    ("occ", lambda m: cu.Occlusion1(m), {}),
    ("ldl", lambda m: cu.LayerDeepLiftRescale(m, m.linears[0]), {}),
]
ALL_METHODS = METHODS_WITH_BASELINES + [
    ("gi", lambda m: cu.GradientXInput(m), {}),
    ("lrp", lambda m: cu.EpsilonLRP(m), {}),
    ("lgi", lambda m: cu.LayerGradientXInput(m, m.linears[0]), {}),
    ("llrp", lambda m: cu.LayerEpsilonLRP(m, m.linears[0]), {}),
]


@pytest.mark.parametrize("name,make,kw", METHODS_WITH_BASELINES, ids=[m[0] for m in METHODS_WITH_BASELINES])
@pytest.mark.parametrize("bad", [(5,), (3, 5), (2, 4), (3, 4, 1)], ids=str)
def test_baseline_of_wrong_shape(name, make, kw, bad):
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    x = randn(3, 4, seed=1)
    with pytest.raises(ValueError, match=r"baselines.*shape"):
        make(model).attribute(x, baselines=torch.zeros(*bad, dtype=DTYPE), target=0, **kw)


@pytest.mark.parametrize("name,make,kw", METHODS_WITH_BASELINES, ids=[m[0] for m in METHODS_WITH_BASELINES])
def test_wrong_number_of_baselines_and_nonfinite_baseline(name, make, kw):
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    x = randn(3, 4, seed=1)
    with pytest.raises(ValueError, match="baseline"):
        make(model).attribute(x, baselines=(0.0, 0.0), target=0, **kw)
    bad = torch.zeros(1, 4, dtype=DTYPE)
    bad[0, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN or inf"):
        make(model).attribute(x, baselines=bad, target=0, **kw)


@pytest.mark.parametrize("name,make,kw", ALL_METHODS, ids=[m[0] for m in ALL_METHODS])
@pytest.mark.parametrize("target", [3, -4, [0, 1, 7], torch.tensor([0, 3, 1]), torch.tensor(5)], ids=str)
def test_target_out_of_range(name, make, kw, target):
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    x = randn(3, 4, seed=1)
    with pytest.raises(IndexError, match="out of range") as exc:
        make(model).attribute(x, target=target, **kw)
    assert "3 values per sample" in str(exc.value)


@pytest.mark.parametrize("name,make,kw", ALL_METHODS, ids=[m[0] for m in ALL_METHODS])
def test_target_list_of_wrong_length_and_missing_target(name, make, kw):
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    x = randn(3, 4, seed=1)
    with pytest.raises(ValueError, match="target"):
        make(model).attribute(x, target=[0, 1], **kw)
    with pytest.raises(ValueError, match="target"):
        make(model).attribute(x, **kw)


@pytest.mark.parametrize("name,make,kw", ALL_METHODS, ids=[m[0] for m in ALL_METHODS])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")], ids=str)
def test_nonfinite_inputs(name, make, kw, value):
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    x = randn(3, 4, seed=1)
    x[1, 2] = value
    with pytest.raises(ValueError, match="NaN or inf"):
        make(model).attribute(x, target=0, **kw)


def test_nonfinite_in_second_input_is_named():
    model = lambda a, b: a.sum(1, keepdim=True) + b.sum(1, keepdim=True)  # noqa: E731
    x = (randn(2, 3, seed=1), randn(2, 2, seed=2))
    x[1][0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"inputs\[1\].*NaN or inf"):
        cu.GradientXInput(model).attribute(x, target=0)


class BatchMixer(nn.Module):
    """Returns a different number of rows than it gets (a view that mixes samples)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(6)
        self.linears = nn.ModuleList([nn.Linear(4, 5), nn.Linear(10, 3)])

    def forward(self, x):
        h = torch.tanh(self.linears[0](torch.cat([x, x], 1)[:, :4]))
        return self.linears[1](torch.cat([h, h], 1))[::2]  # drops every second row


@pytest.mark.parametrize("name,make,kw", ALL_METHODS, ids=[m[0] for m in ALL_METHODS])
def test_model_output_batch_mismatch(name, make, kw):
    model = BatchMixer().to(DTYPE)
    x = randn(4, 4, seed=1)
    with pytest.raises(ValueError, match="batch size") as exc:
        make(model).attribute(x, target=0, **kw)
    assert "one row per input sample" in str(exc.value)
    assert hook_count(model) == 0 and torch._C._len_torch_function_stack() == 0


def test_bad_input_types():
    model = make_mlp((4, 5, 3), "tanh", seed=5)
    with pytest.raises(TypeError, match="inputs"):
        cu.GradientXInput(model).attribute([randn(2, 4)], target=0)
    with pytest.raises(ValueError, match="batch"):
        cu.GradientXInput(lambda a, b: a + b.sum()).attribute((randn(2, 4), randn(3, 4)), target=0)
    with pytest.raises(TypeError, match="floating"):
        cu.GradientXInput(lambda t: t.double()).attribute(torch.ones(2, 4, dtype=torch.long), target=0)
    with pytest.raises(ValueError, match="epsilon"):
        cu.EpsilonLRP(model, epsilon=0.0)


# ------------------------------------------------------------------ warnings
@pytest.mark.parametrize("act", ["sigmoid", "softplus"])
@pytest.mark.parametrize("style", ["module", "functional"])
def test_epsilon_lrp_warns_through_f0_nonzero(act, style):
    model = make_styled((4, 5, 3), act, style, seed=7)
    with pytest.warns(cu.AttributionWarning, match=act) as rec:
        cu.EpsilonLRP(model).attribute(randn(2, 4, seed=1), target=0)
    assert any("f(0)" in str(w.message) for w in rec)
    with pytest.warns(cu.AttributionWarning):
        cu.LayerEpsilonLRP(model, model.linears[0]).attribute(randn(2, 4, seed=1), target=0)


@pytest.mark.parametrize("act", ["relu", "tanh"])
@pytest.mark.parametrize("style", ["module", "functional", "reused"])
def test_epsilon_lrp_silent_through_relu_and_tanh(act, style):
    model = make_styled((4, 5, 6, 3), act, style, seed=7)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cu.EpsilonLRP(model).attribute(randn(2, 4, seed=1), target=0)
        cu.EpsilonLRP(make_cnn(act, "max", seed=1)).attribute(randn(2, 2, 6, 6, seed=1), target=0)
