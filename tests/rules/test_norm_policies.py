"""The norm policies (captum_unified/rules/norms.py) against independent
oracles: exactness from forward values, the path-averaged Jacobian against
many-step Integrated Gradients of the op alone (autograd), its scalar
integrals against a fine trapezoid rule, and boundedness where the
baseline's variance is zero."""

from __future__ import annotations

import pytest
import torch

from captum_unified.ops.norms import MaxNormScale, RsqrtScale, StdEpsScale
from captum_unified.rules import OpCall, RescaleRule
from captum_unified.rules.norms import NORM_POLICIES, integrated_norm, norm_integrals, secant_norm

FAMILIES = {
    "rsqrt": (RsqrtScale(1e-5), lambda c: c * torch.rsqrt((c * c).mean(-1, keepdim=True) + 1e-5)),
    "unbiased": (
        RsqrtScale(1e-6, 16 / 15),
        lambda c: c / torch.sqrt((c * c).sum(-1, keepdim=True) / 15 + 1e-6),
    ),
    "std+eps": (StdEpsScale(1e-3, 16 / 15), lambda c: c / (torch.sqrt((c * c).sum(-1, keepdim=True) / 15) + 1e-3)),
    "normalize": (MaxNormScale(1e-12, 16.0), lambda c: c / torch.sqrt((c * c).sum(-1, keepdim=True)).clamp_min(1e-12)),
}
BASELINES = {
    "random": lambda g: torch.randn(8, 16, generator=g, dtype=torch.float64),
    "zero": lambda g: torch.zeros(8, 16, dtype=torch.float64),
    "tiny": lambda g: 1e-4 * torch.randn(8, 16, generator=g, dtype=torch.float64),
    "batch-1": lambda g: torch.randn(1, 16, generator=g, dtype=torch.float64),
}


def _centre(t):
    return t - t.mean(-1, keepdim=True)


def _case(family, base, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    c = _centre(torch.randn(8, 16, generator=g, dtype=torch.float64))
    ref = _centre(BASELINES[base](g))
    w = torch.randn(8, 16, generator=g, dtype=torch.float64)
    fam, f = FAMILIES[family]
    return c.to(dtype), ref.to(dtype), w.to(dtype), fam, f


def _attribute(policy, c, ref, w, fam, f):
    with torch.no_grad():
        y, ry = f(c), f(ref)
    backward = policy(c, ref, y, ry, (-1,), fam)
    return backward(w) * (c - ref), ((y - ry) * w).sum(-1)


@pytest.mark.parametrize("policy", ["secant", "integrated"])
@pytest.mark.parametrize("family", list(FAMILIES))
@pytest.mark.parametrize("base", list(BASELINES))
@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_exact_policies_sum_to_the_change(policy, family, base, dtype, tol):
    c, ref, w, fam, f = _case(family, base, dtype)
    attr, dy = _attribute(NORM_POLICIES[policy], c, ref, w, fam, f)
    assert torch.isfinite(attr).all()
    err = (attr.double().sum(-1) - dy.double()).abs()
    assert (err <= tol * (dy.double().abs() + 1)).all(), err.max()


def _ig_of_op(c, ref, w, f, steps=20001):
    c, ref, w = c.double(), ref.double(), w.double()
    total = torch.zeros_like(c)
    ts = (torch.arange(steps, dtype=torch.float64) + 0.5) / steps
    for chunk in ts.split(2000):
        z = (ref[None] + chunk[:, None, None] * (c - ref)[None]).requires_grad_()
        (gz,) = torch.autograd.grad((f(z) * w).sum(), z)
        total += gz.sum(0)
    return total / steps * (c - ref)


@pytest.mark.parametrize("family", ["rsqrt", "std+eps"])
@pytest.mark.parametrize("base", ["random", "zero"])
def test_integrated_policy_is_integrated_gradients_of_the_op(family, base):
    c, ref, w, fam, f = _case(family, base, torch.float64, seed=1)
    attr, _ = _attribute(integrated_norm, c, ref, w, fam, f)
    ig = _ig_of_op(c, ref, w, f)
    torch.testing.assert_close(attr, ig, atol=2e-4 * ig.abs().max().item(), rtol=0)


def test_norm_integrals_against_a_fine_trapezoid():
    fam = RsqrtScale(1e-6)
    alpha = torch.tensor([1.0, 1e-3, 4.0, 1e-12, 0.0, 0.3], dtype=torch.float64)
    beta = torch.tensor([-0.5, 0.002, -7.9, 1e-9, 0.0, -0.6], dtype=torch.float64)
    gamma = torch.tensor([0.0625, 1.0, 3.90070, 1.0, 2.0, 0.3], dtype=torch.float64)  # rows 0, 2, 5: peaks inside
    got = norm_integrals(alpha, beta, gamma, fam)
    t = torch.linspace(0, 1, 2_000_001, dtype=torch.float64)
    q = (alpha[:, None] * t + beta[:, None]) * t + gamma[:, None]
    h, dh = fam.h(q), fam.dh(q)
    want = [torch.trapezoid(v, t) for v in (h, dh, t * dh, t * t * dh)]
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=0)


def test_secant_is_the_constant_scale_where_the_baseline_row_is_zero():
    c, ref, w, fam, f = _case("rsqrt", "zero", torch.float64)
    y, ry = f(c), f(ref)
    got = secant_norm(c, ref, y, ry, (-1,), fam)(w)
    scale = torch.rsqrt((c * c).mean(-1, keepdim=True) + 1e-5)
    torch.testing.assert_close(got, w * scale)
    constant = NORM_POLICIES["constant"](c, None, y, None, (-1,), fam)(w)
    torch.testing.assert_close(constant, w * scale)


def test_bounded_where_the_shapley_split_is_not():
    """Zero-variance baseline: the Shapley split of c * rsqrt(mean(c^2) + eps)
    multiplies by (h + h_bar) / 2 ~ eps^-1/2 / 2 = 158 and cancels; the secant
    and integrated policies stay within a small factor of the op's change."""
    c, ref, w, fam, f = _case("rsqrt", "zero", torch.float64, seed=3)
    y, ry = f(c), f(ref)
    h, hr = fam.h((c * c).mean(-1, keepdim=True)), fam.h((ref * ref).mean(-1, keepdim=True))
    shapley = 0.5 * (h + hr) * w * (c - ref)  # the c-factor's Shapley term alone
    for name in ("secant", "integrated"):
        attr = NORM_POLICIES[name](c, ref, y, ry, (-1,), fam)(w) * (c - ref)
        assert attr.abs().sum() < 20 * ((y - ry) * w).abs().sum(), name
    assert shapley.abs().sum() > 50 * ((y - ry) * w).abs().sum()


def test_rule_norm_backward_errors():
    c = torch.randn(2, 4)
    with pytest.raises(RuntimeError, match="needs the baseline pass"):
        RescaleRule().norm_backward(OpCall("layer_norm"), c, None, c, None, (-1,), RsqrtScale(1e-5))
    rule = RescaleRule()
    rule.norm = "mine"
    with pytest.raises(ValueError, match="Unknown norm policy"):
        rule.norm_backward(OpCall("layer_norm"), c, c, c, c, (-1,), RsqrtScale(1e-5))
    with pytest.raises(ValueError, match="norm must be one of"):
        RescaleRule(norm="constant")


@pytest.mark.parametrize("family", [RsqrtScale(1e-5), RsqrtScale(1e-6, 16 / 15), StdEpsScale(1e-3), MaxNormScale(1e-6)])
def test_secant_of_the_scale_against_exact_decimal_arithmetic(family):
    """The secant of h between q and q_bar (the family's closed form where it has
    one, else the guarded quotient) against 50-digit decimal arithmetic: rows
    far apart, near each other (1e-9 relative: the quotient's cancellation) and
    equal (h'(q))."""
    from decimal import Decimal, getcontext

    from captum_unified.rules.norms import _secant

    getcontext().prec = 50
    g = torch.Generator().manual_seed(3)
    q = torch.rand(300, generator=g, dtype=torch.float64) * 10 ** torch.empty(300, dtype=torch.float64).uniform_(
        -6, 3, generator=g
    )
    rq = torch.cat(
        [q[:100] * (1 + 1e-9 * torch.randn(100, generator=g, dtype=torch.float64)), q[100:200], q[200:].flip(0)]
    )
    got = _secant(family, q, rq, family.h(q), family.h(rq))

    def h(v: Decimal) -> Decimal:
        k, eps = Decimal(getattr(family, "k", 1.0)), Decimal(family.eps)
        if isinstance(family, RsqrtScale):
            return 1 / (k * v + eps).sqrt()
        if isinstance(family, StdEpsScale):
            return 1 / ((k * v).sqrt() + eps)
        return 1 / max((k * v).sqrt(), eps)

    def dh(v: Decimal) -> Decimal:  # central difference at 1e-20 relative, in 50 digits
        step = v * Decimal("1e-20")
        return (h(v + step) - h(v - step)) / (2 * step)

    want = []
    for a, b in zip(q.tolist(), rq.tolist()):
        da, db = Decimal(a), Decimal(b)
        want.append(float(dh(da) if da == db else (h(da) - h(db)) / (da - db)))
    want_t = torch.tensor(want, dtype=torch.float64)
    rel = ((got - want_t).abs() / want_t.abs()).max()
    # the closed form (RsqrtScale) has no cancellation; the guarded quotient loses digits where q ~ q_bar
    assert float(rel) < (1e-13 if isinstance(family, RsqrtScale) else 1e-3)
