"""Every registered method on float, integer, bool, empty and tuple inputs
gives Captum's result (its registered Captum twin, run here on the same
input) or a clear error that names the problem; never an error from deep
inside torch. Driven by the registry (tests/registry.py): a new method is
covered without a line here."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import DTYPE, make_mlp
from registry import METHODS, ids
from torch import nn

CLEAR = re.compile(r"integer|floating|dtype|0 samples")
X = torch.tensor([[0.5, -1.0, 0.25, 2.0], [1.5, 0.75, -0.5, 0.0]], dtype=DTYPE)
INT = torch.tensor([[1, -2, 0, 3], [2, 2, -1, 0]])


def _model():
    return make_mlp((4, 6, 5, 3), "tanh", seed=3)


class Cast(nn.Module):
    """The model on integer or bool inputs: casts them to float first (as a
    model with a preprocessing step would); keeps ``linears`` for the layer methods."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.linears = model.linears

    def forward(self, x):
        return self.model(x.to(DTYPE))


class Split(nn.Module):
    """The model on a tuple of inputs: features 0-1 and 2-3."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.linears = model.linears

    def forward(self, a, b):
        return self.model(torch.cat([a, b], 1))


def _attribute(case, model, x, **kw):
    return case.make(model).attribute(x, target=1, **case.call_kwargs(model), **kw)


def _captum(case, model, x):
    """Captum's result and error (either may be None; None, None: no twin)."""
    twin = case.twin(model)
    if twin is None:
        return None, None
    try:
        return twin.attribute(x, target=1, **case.call_kwargs(model)), None
    except Exception as err:  # Captum may fail in any way; ours must then be a clear error or a sound result
        return None, err


def _close(a, b):
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b)
        for u, v in zip(a, b):
            _close(u, v)
        return
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a.to(DTYPE), b.to(DTYPE), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_float_inputs_give_captums_result(case):
    model = _model()
    ours = _attribute(case, model, X)
    assert ours.dtype == DTYPE and bool(torch.isfinite(ours).all())
    assert tuple(ours.shape) == ((2, 6) if case.layer else (2, 4))
    theirs, err = _captum(case, model, X)
    assert err is None, f"Captum's twin failed on float inputs: {err}"
    if theirs is not None:
        _close(ours, theirs)
        assert ours.dtype == theirs.dtype


@pytest.mark.parametrize("kind", ["int", "bool"])
@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_integer_and_bool_inputs_give_captums_result_or_a_clear_error(case, kind):
    x = INT if kind == "int" else INT > 0
    model = Cast(_model())
    try:
        ours = _attribute(case, model, x)
    except (TypeError, ValueError) as err:
        assert CLEAR.search(str(err)), f"not a clear error: {err}"
        return
    theirs, their_err = _captum(case, model, x)
    if theirs is not None:  # Captum's result, in Captum's dtype
        _close(ours, theirs)
        assert ours.dtype == theirs.dtype, (ours.dtype, theirs.dtype)
    else:  # no twin, or Captum fails: the result must be the one of the same values as floats
        _close(ours, _attribute(case, model, x.to(DTYPE)))


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_an_empty_batch_is_a_clear_error(case):
    for x in (torch.zeros(0, 4, dtype=DTYPE), (torch.zeros(0, 2, dtype=DTYPE), torch.zeros(0, 2, dtype=DTYPE))):
        model = Split(_model()) if isinstance(x, tuple) else _model()
        with pytest.raises(ValueError, match="0 samples"):
            _attribute(case, model, x)


@pytest.mark.parametrize("case", METHODS, ids=ids(METHODS))
def test_tuple_inputs_give_the_split_result_and_captums(case):
    base = _model()
    model = Split(base)
    parts = (X[:, :2], X[:, 2:])
    ours = _attribute(case, model, parts)
    whole = _attribute(case, base, X)
    if case.layer:  # one layer, the same activations: a tensor, as Captum's layer methods
        _close(ours, whole)
    else:
        assert isinstance(ours, tuple) and len(ours) == 2
        if not case.random:  # (a random method draws per input tensor)
            _close(torch.cat(ours, 1), whole)
    theirs, err = _captum(case, model, parts)
    assert err is None, f"Captum's twin failed on tuple inputs: {err}"
    if theirs is not None:
        _close(ours, theirs)
