"""No trace on the model (issue 11): for every public method (tests/registry.py),
in train and in eval mode, parameters and buffers are bit-identical after the
call, no hook, torch-function mode, grad-mode or training flag is left, also
when the model raises; a model in train mode gets a warning that says why the
answers may vary."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from conftest import DTYPE, hook_count, randn
from registry import METHODS, ids
from torch.nn.modules import module as _module
from torch.overrides import _get_current_function_mode_stack

import captum_unified as cu


class BNNet(nn.Module):
    """linears[0] -> BatchNorm -> ReLU -> Dropout -> linears[1]."""

    def __init__(self, fail_after: int = -1) -> None:
        super().__init__()
        self.linears = nn.ModuleList([nn.Linear(4, 6), nn.Linear(6, 3)])
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.25)
        self.calls, self.fail_after = 0, fail_after

    def forward(self, x):
        self.calls += 1
        if self.fail_after >= 0 and self.calls > self.fail_after:
            raise RuntimeError("model failure")
        return self.linears[1](self.drop(torch.relu(self.bn(self.linears[0](x)))))


def _make(training: bool, fail_after: int = -1) -> BNNet:
    torch.manual_seed(0)
    model = BNNet(fail_after).to(DTYPE)
    with torch.no_grad():
        model.bn.running_mean.uniform_(-1, 1)
        model.bn.running_var.uniform_(0.5, 2)
    return model.train(training)


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_untouched(model, before, training):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f"{k} changed"
    assert hook_count(model) == 0
    assert not _module._global_forward_hooks and not _module._global_forward_pre_hooks
    assert torch._C._len_torch_function_stack() == 0 and _get_current_function_mode_stack() == []
    assert torch.is_grad_enabled()
    assert all(m.training is training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_no_state_change(entry, training):
    model = _make(training)
    before = _snapshot(model)
    x = randn(4, 4, seed=1)
    x_before = x.clone()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        entry.make(model).attribute(x, target=1, **entry.kwargs)
    _assert_untouched(model, before, training)
    assert torch.equal(x, x_before) and not x.requires_grad
    train_warnings = [
        w for w in caught if issubclass(w.category, cu.AttributionWarning) and "train mode" in str(w.message)
    ]
    assert bool(train_warnings) is training
    # every warning of the package names the user's line (here: this file), so
    # Python's once-per-location filter counts each of the user's calls
    ours = [w for w in caught if issubclass(w.category, cu.AttributionWarning)]
    assert all(w.filename == __file__ for w in ours), [(w.filename, w.lineno) for w in ours]


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_no_trace_when_the_model_raises(entry):
    for fail_after in (0, 1):
        model = _make(True, fail_after)
        before = _snapshot(model)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                entry.make(model).attribute(randn(4, 4, seed=2), target=1, **entry.kwargs)
        except RuntimeError as e:
            assert "model failure" in str(e)
        else:  # only a method that calls the model once escapes fail_after=1
            assert fail_after == 1 and model.calls == 1, entry.name
        model.fail_after = -1
        _assert_untouched(model, before, True)
