"""The logsumexp multipliers (captum_unified/rules/logsumexp.py): the simplex
multiplier of DeepLIFT is exact and bounded at every logit scale; softmax and
log-softmax built on it sum to their change, checked from forward values."""

from __future__ import annotations

import math

import pytest
import torch

from captum_unified.rules import OpCall, RescaleRule, Rule
from captum_unified.rules.logsumexp import gauss_legendre, lse_gradient, lse_simplex


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-10), (torch.float64, 1e-10)])
@pytest.mark.parametrize("scale", [0.1, 1, 10, 100, 1000])
def test_simplex_multiplier_is_exact_and_in_the_simplex(dtype, tol, scale):
    g = torch.Generator().manual_seed(int(scale * 10))
    z = (scale * torch.randn(64, 7, generator=g)).to(dtype)
    ref = (scale * torch.randn(64, 7, generator=g)).to(dtype)
    m = lse_simplex(z, ref, -1)
    assert torch.isfinite(m).all()
    assert (m >= 0).all() and (m <= 1).all()
    assert m.dtype == torch.float64  # the tilt is exact far below float32's rounding of dz
    torch.testing.assert_close(m.sum(-1), torch.ones(64, dtype=torch.float64), atol=1e-12, rtol=0)
    # the change of LSE from the forward values, in float64
    d_lse = torch.logsumexp(z.double(), -1) - torch.logsumexp(ref.double(), -1)
    err = ((m * (z.double() - ref.double())).sum(-1) - d_lse).abs()
    assert (err <= tol * (d_lse.abs() + scale)).all(), err.max()


def test_simplex_multiplier_is_the_gradient_where_nothing_changes_and_the_path_average_otherwise():
    z = torch.randn(5, 4, dtype=torch.float64)
    torch.testing.assert_close(lse_simplex(z, z.clone(), -1), torch.softmax(z, -1))
    # a pure shift: any simplex vector is exact; the path average is softmax(z)
    torch.testing.assert_close(lse_simplex(z + 3.0, z, -1), torch.softmax(z, -1))
    # small changes: the path average is exact to second order, hardly tilted
    ref = z + 1e-4 * torch.randn(5, 4, dtype=torch.float64)
    t, w = gauss_legendre(64)
    p = sum(wk * torch.softmax(ref + tk * (z - ref), -1) for tk, wk in zip(t, w))
    torch.testing.assert_close(lse_simplex(z, ref, -1), p, atol=1e-9, rtol=0)


def test_simplex_multiplier_masked_logits_get_nothing():
    z = torch.tensor([[0.3, -math.inf, 2.0, -math.inf], [-math.inf] * 4], dtype=torch.float64)
    ref = torch.tensor([[1.5, -math.inf, -0.5, -math.inf], [-math.inf] * 4], dtype=torch.float64)
    m = lse_simplex(z, ref, -1)
    assert torch.isfinite(m).all()
    assert m[0, 1] == 0 and m[0, 3] == 0 and (m[1] == 0).all()
    d = torch.logsumexp(z[:1], -1) - torch.logsumexp(ref[:1], -1)
    dz = torch.tensor([[-1.2, 0.0, 2.5, 0.0]], dtype=torch.float64)
    torch.testing.assert_close((m[:1] * dz).sum(-1), d)


def test_simplex_multiplier_other_dims_and_broadcast_baseline():
    z = torch.randn(3, 6, 2, dtype=torch.float64) * 20
    ref = torch.randn(1, 6, 2, dtype=torch.float64) * 20
    m = lse_simplex(z, ref, 1)
    torch.testing.assert_close(m.sum(1), torch.ones(3, 2, dtype=torch.float64))
    d = torch.logsumexp(z, 1) - torch.logsumexp(ref.expand_as(z), 1)
    torch.testing.assert_close((m * (z - ref)).sum(1), d)


def test_gauss_legendre_integrates_polynomials():
    t, w = gauss_legendre(4)
    for k in range(8):  # exact up to degree 2n - 1
        assert abs(sum(wk * tk**k for tk, wk in zip(t, w)) - 1 / (k + 1)) < 1e-14


def test_rule_lse_weights_default_is_the_gradient_and_rescale_is_the_simplex():
    class Mine(Rule):
        def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
            return torch.ones_like(z)

    z, ref = torch.randn(4, 5), torch.randn(4, 5)
    torch.testing.assert_close(Mine().lse_weights(OpCall("softmax"), z, None, -1), lse_gradient(z, -1))
    torch.testing.assert_close(RescaleRule().lse_weights(OpCall("softmax"), z, ref, -1), lse_simplex(z, ref, -1))
    assert RescaleRule(softmax_nodes=8).softmax_nodes == 8
    with pytest.raises(ValueError, match="softmax_nodes"):
        RescaleRule(softmax_nodes=0)
    with pytest.raises(ValueError, match="softmax must be one of"):
        RescaleRule(softmax="decompose")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("length", [1, 16, 128])
def test_logsumexp_kept_equals_torch_logsumexp(dtype, length):
    """The clamped, shifted form equals torch's logsumexp: plain rows, logits up
    to 1e3, causal-mask rows (``finfo.min``), rows of -inf only (-inf) and rows
    holding +inf or NaN (not finite)."""
    from captum_unified.rules.logsumexp import logsumexp_kept

    g = torch.Generator().manual_seed(length)
    z = (torch.randn(6, length, generator=g) * torch.tensor([[0.1], [1], [30], [1e3], [1], [1]])).to(dtype)
    z[4, length // 2 :] = torch.finfo(dtype).min
    want = torch.logsumexp(z.double(), -1, keepdim=True)
    torch.testing.assert_close(logsumexp_kept(z.double(), -1), want, rtol=1e-15, atol=1e-13)
    odd = torch.zeros(3, length, dtype=dtype)
    odd[0], odd[1, 0], odd[2, 0] = -math.inf, math.inf, math.nan
    out = logsumexp_kept(odd, -1).flatten()
    assert out[0] == -math.inf and not torch.isfinite(out[1:]).any()
