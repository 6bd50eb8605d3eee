"""The rules package as such: each rule's multiplier against its formula written
by hand, the product policies' summation-to-delta, the contract that a rule
always receives its op, and the contract of every rule in ``RULES``."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DTYPE, assert_close, make_mlp, randn

import captum_unified as cu
import captum_unified.ops.fused
from captum_unified.rules import PRODUCT_POLICIES, RULES, EpsilonLRPRule, GradientRule, OpCall, RescaleRule, Rule
from captum_unified.rules.norms import NORM_POLICIES
from captum_unified.rules.products import gate_products, gradient_products, shapley_products, uniform_products

FUNCTIONS = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": F.softplus}
DECOMPOSED = cu.default_op_table().without_fused()


# ----------------------------------------------------------------- multipliers
@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_gradient_multiplier_is_the_derivative(name):
    f = FUNCTIONS[name]
    z = randn(50, seed=1) * 3
    g = GradientRule().multiplier(f, z, f(z), op=OpCall(name))
    zz = z.clone().requires_grad_()
    (d,) = torch.autograd.grad(f(zz).sum(), zz)
    assert_close(g, d, atol=1e-14)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_epsilon_multiplier_by_hand(name):
    f, eps = FUNCTIONS[name], 1e-3
    z = torch.cat([randn(50, seed=2) * 3, torch.zeros(3, dtype=DTYPE)])
    g = EpsilonLRPRule(eps).multiplier(f, z, f(z), op=OpCall(name))
    sign = torch.where(z >= 0, 1.0, -1.0).to(DTYPE)  # sign(0) = 1
    assert_close(g, f(z) / (z + eps * sign), atol=1e-14)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_rescale_multiplier_by_hand(name):
    f = FUNCTIONS[name]
    z, ref = randn(50, seed=3) * 3, randn(50, seed=4) * 3
    ref[:5] = z[:5]  # no change: the derivative
    ref[5:8] = z[5:8] + 1e-12  # below eps: the derivative
    rule = RescaleRule(eps=1e-10)
    g = rule.multiplier(f, z, f(z), ref, f(ref), op=OpCall(name))
    secant = (f(z) - f(ref)) / (z - ref)
    zz = z.clone().requires_grad_()
    (d,) = torch.autograd.grad(f(zz).sum(), zz)
    expected = torch.where((z - ref).abs() <= 1e-10, d, secant)
    assert_close(g, expected, atol=1e-12)
    assert_close(g * (z - ref), f(z) - f(ref), atol=1e-12)  # summation-to-delta


def test_rescale_multiplier_uses_the_closed_form_derivative_of_the_op():
    z = randn(4, seed=5)
    op = OpCall("t", derivative=lambda z, o: z * 0 + 7)
    g = RescaleRule().multiplier(torch.tanh, z, torch.tanh(z), z, torch.tanh(z), op=op)
    assert torch.equal(g, torch.full_like(z, 7.0))


# ------------------------------------------------------------- product policies
BILINEAR = {
    "mul": (lambda a, b: a * b, (3, 4), (3, 4)),
    "matmul": (lambda a, b: a @ b, (2, 3, 4), (2, 4, 5)),
    "einsum": (lambda a, b: torch.einsum("bi,bj->bij", a, b), (3, 4), (3, 2)),
}


def _split(policy, fn, a, b, ra, rb, gates=()):
    """The two parts of the product's change the policy gives: for a bilinear
    fn, d fn(a, b_)/da applied to da is fn(da, b_), and likewise for b."""
    a_, b_ = policy(OpCall("op", gates=gates), a, b, ra, rb)
    da, db = a - ra, b - rb
    part_a = fn(da, b_) if b_ is not None else torch.zeros_like(fn(a, b))
    part_b = fn(a_, db) if a_ is not None else torch.zeros_like(fn(a, b))
    return part_a, part_b


@pytest.mark.parametrize("op", list(BILINEAR))
def test_shapley_split_sums_to_the_change_of_the_product(op):
    fn, sa, sb = BILINEAR[op]
    a, b, ra, rb = randn(*sa, seed=6), randn(*sb, seed=7), randn(*sa, seed=8), randn(*sb, seed=9)
    part_a, part_b = _split(shapley_products, fn, a, b, ra, rb)
    assert_close(part_a + part_b, fn(a, b) - fn(ra, rb), atol=1e-12)
    # the ordinary product rule does not (Ancona et al. 2018, Sec. 3.1)
    ga, gb = _split(gradient_products, fn, a, b, ra, rb)
    assert (ga + gb - (fn(a, b) - fn(ra, rb))).abs().max() > 1e-3


@pytest.mark.parametrize("op", list(BILINEAR))
def test_uniform_and_gate_conserve_the_product_from_a_zero_reference(op):
    fn, sa, sb = BILINEAR[op]
    a, b = randn(*sa, seed=10), randn(*sb, seed=11)
    za, zb = torch.zeros_like(a), torch.zeros_like(b)
    for policy, gates in ((uniform_products, ()), (gate_products, (True, False)), (gate_products, (False, True))):
        part_a, part_b = _split(policy, fn, a, b, za, zb, gates)
        assert_close(part_a + part_b, fn(a, b), atol=1e-12)
    # the gate gets nothing
    part_a, part_b = _split(gate_products, fn, a, b, za, zb, (True, False))
    assert torch.equal(part_a, torch.zeros_like(part_a))
    # without exactly one gate the gate policy is the uniform one
    assert_close(
        _split(gate_products, fn, a, b, za, zb, (True, True))[0], _split(uniform_products, fn, a, b, za, zb)[0]
    )


def test_shapley_policy_needs_the_reference():
    with pytest.raises(RuntimeError, match="baseline pass"):
        shapley_products(OpCall("mul"), randn(2), randn(2))


def test_unknown_product_policy_is_a_clear_error():
    class Odd(Rule):
        products = "nonsense"

        def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
            return torch.ones_like(z)

    with pytest.raises(ValueError, match="Unknown product policy 'nonsense'"):
        Odd().product_factors(OpCall("mul"), randn(2), randn(2))


# ------------------------------------------------------------ the op contract
def test_a_multiplier_without_op_is_refused_at_class_creation():
    with pytest.raises(TypeError, match=r"op=None") as err:

        class Old(Rule):
            def multiplier(self, f, z, out, ref_z=None, ref_out=None):
                return torch.ones_like(z)

    assert "Old.multiplier" in str(err.value)


def test_a_multiplier_with_kwargs_or_inherited_is_accepted():
    class Kw(Rule):
        def multiplier(self, f, z, out, *args, **kwargs):
            return torch.ones_like(z)

    class Inherits(RescaleRule):
        pass

    assert Kw().multiplier(torch.tanh, randn(2), randn(2), op=OpCall("tanh")).shape == (2,)
    assert Inherits().needs_reference


class Spy(RescaleRule):
    """Records every op a rule is applied to."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, OpCall | None]] = []

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        self.seen.append(("multiplier", op))
        return super().multiplier(f, z, out, ref_z, ref_out, op=op)

    def product_factors(self, op, a, b, ref_a=None, ref_b=None):
        self.seen.append(("product", op))
        return super().product_factors(op, a, b, ref_a, ref_b)


class GatedNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = nn.Linear(4, 5), nn.Linear(4, 5), nn.Linear(5, 2)

    def forward(self, x):
        return self.c(torch.sigmoid(self.a(x)) * F.relu(self.b(x)) + torch.tanh(self.a(x)))


@pytest.mark.parametrize("table", [None, DECOMPOSED], ids=["fused", "decomposed"])
def test_the_backend_always_passes_the_op(table):
    torch.manual_seed(0)
    model = GatedNet().to(DTYPE).eval()
    spy = Spy()
    cu.ModifiedGradient(model, spy, op_table=table).attribute(randn(3, 4, seed=1), baselines=0.0, target=0)
    assert all(isinstance(op, OpCall) for _, op in spy.seen)
    names = {(kind, op.name) for kind, op in spy.seen if op is not None}
    assert {("multiplier", "sigmoid"), ("multiplier", "relu"), ("multiplier", "tanh"), ("product", "mul")} <= names
    gates = [op.gates for kind, op in spy.seen if kind == "product" and op is not None]
    assert (True, False) in gates  # sigmoid(.) * relu(.): the first factor is a gate


def test_the_output_op_is_passed_when_the_rule_applies_to_the_output():
    seen = []

    class OutputSpy(EpsilonLRPRule):
        def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
            seen.append(op.name if op is not None else None)
            return super().multiplier(f, z, out, ref_z, ref_out, op=op)

    cu.ModifiedGradient(make_mlp((4, 5, 3)), OutputSpy(1e-6)).attribute(randn(2, 4, seed=2), target=1)
    assert seen[-1] == "output" and "relu" in seen


# -------------------------------------------------------------- RULES contract
class Mixed(nn.Module):
    """Elementwise functions, gated products, an LSTM, softmax, LayerNorm, max-pooling."""

    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.ln = nn.LayerNorm(4)
        self.q, self.k = nn.Linear(4, 4), nn.Linear(4, 4)
        self.out = nn.Linear(4, 2)

    def forward(self, x):
        h = self.ln(self.lstm(x)[0])
        att = torch.softmax(self.q(h) @ self.k(h).transpose(1, 2), -1)
        h = F.max_pool1d((att @ h).transpose(1, 2), 2).transpose(1, 2)
        return self.out(torch.tanh(h).mean(1))


def _mixed():
    torch.manual_seed(3)
    return Mixed().to(DTYPE).eval(), randn(3, 4, 3, seed=4), randn(1, 4, 3, seed=5)


@pytest.mark.parametrize("name", list(RULES))
def test_registered_rule_contract(name):
    cls = RULES[name]
    assert issubclass(cls, Rule) and cls.__name__ in cu.rules.__all__  # and so on the API page
    assert getattr(cu.rules, cls.__name__) is cls
    rule = cls()  # a registered rule has defaults for every argument
    assert rule.products in PRODUCT_POLICIES
    assert rule.maxima in ("gradient", "tree", "deeplift")
    assert rule.norm in ("gradient", "decompose", *NORM_POLICIES)
    assert rule.softmax in ("gradient", "shift", "logsumexp")
    assert isinstance(rule.eps, float) and rule.eps >= 0
    assert rule.maxima != "deeplift" or rule.needs_reference, "DeepLIFT's max rule needs the baseline pass"
    assert cls.__doc__ and repr(rule).startswith(cls.__name__)
    model, x, base = _mixed()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        attr = cu.ModifiedGradient(model, rule).attribute(x, baselines=base, target=1)
    assert attr.shape == x.shape and torch.isfinite(attr).all()


@pytest.mark.parametrize("name", [n for n in RULES if RULES[n]().modifies_gradient])
def test_registered_rule_takes_the_fused_kernels_and_they_equal_the_decompositions(name, monkeypatch):
    cls = RULES[name]
    model, x, base = _mixed()
    sub = type(f"User{cls.__name__}", (cls,), {})  # a user's subclass, nothing changed
    calls = []
    kernel = captum_unified.ops.fused._LSTMRecurrence
    apply = kernel.apply
    monkeypatch.setattr(kernel, "apply", lambda *a: calls.append(1) or apply(*a))

    def run(rule, table=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            return cu.ModifiedGradient(model, rule, op_table=table).attribute(x, baselines=base, target=1)

    fast = run(cls())
    assert calls, "the shipped rule takes the fused LSTM kernel"
    calls.clear()
    assert torch.equal(run(sub()), fast), "a subclass takes the same fast path, bit for bit"
    assert calls, "the subclass takes the fused LSTM kernel"
    calls.clear()
    assert_close(fast, run(cls(), DECOMPOSED), atol=1e-12, rtol=1e-9)
    assert not calls, "without_fused() computes the decomposition"


def test_rescale_is_complete_on_the_mixed_model():
    """The registered DeepLIFT rule's defining property, from forward passes."""
    model, x, base = _mixed()
    attr = cu.ModifiedGradient(model, RULES["rescale"]()).attribute(x, baselines=base, target=1)
    with torch.no_grad():
        change = model(x)[:, 1] - model(base)[:, 1]
    assert_close(attr.sum((1, 2)), change, atol=1e-10)
