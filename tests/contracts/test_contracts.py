"""Contracts every registered method and metric keeps, driven by the package's
registry (captum_unified/registry.py, seen through tests/registry.py: a method
or metric registered there is covered here without a line of its own): NaN
inputs are a clear error, NoiseTunnel works; for metrics, through the Metric
protocol, an empty batch and NaN are clear errors and integer inputs give the
float result. Float, integer, bool, empty and tuple inputs of the methods
against Captum: test_method_inputs.py."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NoiseTunnel
from conftest import DTYPE, make_mlp
from registry import METHODS, METRICS, ids

from captum_unified.metrics.base import EvalBatch


def _model():
    return make_mlp((4, 6, 5, 3), "tanh", seed=3)


@pytest.mark.parametrize("entry", METHODS, ids=ids(METHODS))
def test_nan_inputs_are_a_clear_error(entry):
    method = entry.make(_model())
    x = torch.randn(2, 4, dtype=DTYPE)
    x[1, 2] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        method.attribute(x, target=1, **entry.kwargs)


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
def _metric_batch(case, x):
    """A batch of (B, 1, 4, 4) images for the tanh MLP on 16 features; boxes
    for a metric whose entry says it needs them."""
    model = make_mlp((16, 6, 3), "tanh", seed=3)
    x = x.reshape(x.shape[0], 1, 4, 4)
    extras = (torch.tensor([[0, 0, 2, 2]] * x.shape[0]),) if case.entry.data == "boxes" else ()

    def f(inp):
        return model(inp.reshape(inp.shape[0], -1).to(DTYPE))

    return EvalBatch.make(f, x, target=1, extras=extras, seed=0), x


@pytest.mark.parametrize("case", METRICS, ids=ids(METRICS))
def test_metric_empty_batch_and_nan_are_clear_errors(case):
    with pytest.raises(ValueError, match="0 samples"):
        _metric_batch(case, torch.zeros(0, 16, dtype=DTYPE))
    batch, x = _metric_batch(case, torch.randn(2, 16, dtype=DTYPE))
    bad = x.clone()
    bad[1].view(-1)[0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        case.make().evaluate(batch, {"m": batch.attributions(bad)})  # NaN attributions
    with pytest.raises(ValueError, match="NaN"):
        _metric_batch(case, bad)  # NaN inputs


@pytest.mark.parametrize("case", METRICS, ids=ids(METRICS))
def test_metric_integer_inputs_give_the_float_result(case):
    x = torch.tensor(
        [[1, -2, 0, 3, 2, 2, -1, 1, 0, 1, 2, -3, 1, 1, 0, 2], [2, 2, -1, 1, 0, 0, 1, 3, -2, 1, 1, 0, 2, 1, -1, 0]]
    )
    a = torch.linspace(-1, 1, 32, dtype=DTYPE).reshape(2, 1, 4, 4)
    out = {}
    for dtype in (torch.int64, DTYPE):
        batch, _ = _metric_batch(case, x.to(dtype))
        out[dtype] = case.make().evaluate(batch, {"m": batch.attributions(a)})["m"].values
    assert out[torch.int64].keys() == out[DTYPE].keys() and out[DTYPE]
    for key, value in out[torch.int64].items():
        assert value.is_floating_point(), key
        torch.testing.assert_close(value, out[DTYPE][key], equal_nan=True)
