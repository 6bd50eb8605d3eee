"""Contracts every public method and metric keeps, driven by the one table of
tests/registry.py (a new method or metric is covered by adding one line there):
an empty batch is a clear error, NaN inputs are a clear error, integer inputs
give a correct floating result (or a clear error), NoiseTunnel works."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NoiseTunnel
from conftest import DTYPE, make_mlp
from registry import METHODS, METRIC_ENTRIES, ids
from torch import nn

from captum_unified.metrics.registry import METRICS


def _model():
    return make_mlp((4, 6, 5, 3), "tanh", seed=3)


class Cast(nn.Module):
    """The model on integer inputs: casts them to float first (as a model with
    a preprocessing step would); keeps ``linears`` for the layer methods."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.linears = model.linears

    def forward(self, x):
        return self.model(x.to(DTYPE))


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_empty_batch_is_a_clear_error(entry):
    method = entry.make(_model())
    with pytest.raises(ValueError, match="0 samples"):
        method.attribute(torch.zeros(0, 4, dtype=DTYPE), target=1, **entry.kwargs)


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_nan_inputs_are_a_clear_error(entry):
    method = entry.make(_model())
    x = torch.randn(2, 4, dtype=DTYPE)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        method.attribute(x, target=1, **entry.kwargs)


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_integer_inputs_give_the_float_result(entry):
    model = _model()
    x = torch.tensor([[1, -2, 0, 3], [2, 2, -1, 0]])
    try:
        out = entry.make(Cast(model)).attribute(x, target=1, **entry.kwargs)
    except (TypeError, ValueError) as err:  # a clear error is acceptable if it names the problem
        assert "integer" in str(err) or "float" in str(err), str(err)
        return
    assert out.is_floating_point(), out.dtype
    ref = entry.make(Cast(model)).attribute(x.to(DTYPE), target=1, **entry.kwargs)
    torch.testing.assert_close(out.to(DTYPE), ref.to(DTYPE), rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_noise_tunnel_works(entry):
    """Zero noise: NoiseTunnel's SmoothGrad is the mean of the method at the copies of each
    sample (Captum repeats each sample ``nt_samples`` times in a row); with one copy it is
    the method itself (same seed: the same draws)."""
    model = _model()
    x = torch.randn(3, 4, dtype=DTYPE)
    method = entry.make(model)
    plain = method.attribute(x, target=1, **entry.kwargs)
    one = NoiseTunnel(method).attribute(x, nt_type="smoothgrad", nt_samples=1, stdevs=0.0, target=1, **entry.kwargs)
    torch.testing.assert_close(one.to(DTYPE), plain.to(DTYPE), rtol=1e-6, atol=1e-9)
    nt = NoiseTunnel(method).attribute(x, nt_type="smoothgrad", nt_samples=2, stdevs=0.0, target=1, **entry.kwargs)
    copies = method.attribute(x.repeat_interleave(2, dim=0), target=1, **entry.kwargs)
    torch.testing.assert_close(
        nt.to(DTYPE), copies.reshape(3, 2, *plain.shape[1:]).mean(1).to(DTYPE), rtol=1e-6, atol=1e-9
    )
    if not entry.random:  # zero noise: the mean of identical attributions
        torch.testing.assert_close(nt.to(DTYPE), plain.to(DTYPE), rtol=1e-6, atol=1e-9)
    else:  # the copies get their own draws: a different estimate, not the method's
        assert not torch.allclose(nt.to(DTYPE), plain.to(DTYPE))


def test_noise_tunnel_expected_gradients_with_a_reference_set():
    """NoiseTunnel with ``draw_baseline_from_distrib=True`` hands EG ``nt_samples * batch``
    references drawn from the set (numpy's global RNG, as for GradientShap): with zero
    noise the result is EG on the copies with those references; with noise, the
    SmoothGrad of EG at the same noisy copies (torch's global RNG)."""
    import numpy as np

    import captum_unified as cu

    model = _model()
    x = torch.randn(3, 4, dtype=DTYPE)
    refs = torch.randn(10, 4, dtype=DTYPE)
    eg = cu.ExpectedGradients(model)
    kw = dict(target=1, n_samples=3, seed=0)
    nt = NoiseTunnel(eg)
    for nt_samples, stdevs in ((1, 0.0), (2, 0.0), (2, 0.1)):
        np.random.seed(5)  # noqa: NPY002 - Captum draws the references from numpy's global RNG
        torch.manual_seed(7)
        out = nt.attribute(
            x, nt_samples=nt_samples, stdevs=stdevs, baselines=refs, draw_baseline_from_distrib=True, **kw
        )
        np.random.seed(5)  # noqa: NPY002
        drawn = refs[np.random.choice(10, nt_samples * 3).tolist()]  # noqa: NPY002
        torch.manual_seed(7)
        noisy = x.repeat_interleave(nt_samples, 0) + torch.normal(0, torch.full((nt_samples * 3, 4), stdevs))
        expected = eg.attribute(noisy, baselines=drawn, **kw).reshape(3, nt_samples, 4).mean(1)
        torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-12)
        if nt_samples == 1:  # one copy, no noise: EG with the drawn references itself
            torch.testing.assert_close(out, eg.attribute(x, baselines=drawn, **kw), rtol=1e-10, atol=1e-12)
    # Gaussian baselines through NoiseTunnel: zero noise and one copy is EG itself
    torch.testing.assert_close(
        nt.attribute(x, nt_samples=1, stdevs=0.0, baseline_stdevs=0.2, **kw),
        eg.attribute(x, baseline_stdevs=0.2, **kw),
        rtol=1e-10,
        atol=1e-12,
    )


# ---------------------------------------------------------------- metrics
def test_every_registered_metric_has_a_contract_entry():
    assert {e.name for e in METRIC_ENTRIES} == set(METRICS)


def _metric_case(entry, x):
    model = _model()
    if entry.image:
        x = x.reshape(x.shape[0], 1, 2, 2)
    return (lambda inp: model(inp.reshape(inp.shape[0], -1).to(DTYPE))), x


@pytest.mark.parametrize("entry", METRIC_ENTRIES, ids=[e.name for e in METRIC_ENTRIES])
def test_metric_empty_batch_and_nan_are_clear_errors(entry):
    f, x = _metric_case(entry, torch.zeros(0, 4, dtype=DTYPE))
    with pytest.raises(ValueError, match="0 samples"):
        entry.call(f, x, x.clone())
    f, x = _metric_case(entry, torch.randn(2, 4, dtype=DTYPE))
    bad = x.clone()
    bad[1].view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        entry.call(f, x, bad)  # NaN attributions
    if entry.name not in ("bounding_box_accuracy", "percentage_change"):  # these take no inputs
        with pytest.raises(ValueError, match="NaN"):
            entry.call(f, bad, x)  # NaN inputs


@pytest.mark.parametrize("entry", METRIC_ENTRIES, ids=[e.name for e in METRIC_ENTRIES])
def test_metric_integer_inputs_give_the_float_result(entry):
    f, x = _metric_case(entry, torch.tensor([[1, -2, 0, 3], [2, 2, -1, 1]]))
    a = torch.tensor([[0.5, -1.0, 0.0, 2.0], [1.0, 0.25, -0.5, 0.1]], dtype=DTYPE).reshape(x.shape)
    out = entry.call(f, x, a)
    assert out.is_floating_point()
    torch.testing.assert_close(out, entry.call(f, x.to(DTYPE), a), equal_nan=True)
