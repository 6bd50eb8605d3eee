"""Every row of the shipped op table has its test, derived from the table:

* every composite row decomposes to the same forward values as the op, and
  DeepLIFT (Rescale) through the decomposition sums to the change of the op's
  output (each piece satisfies its summation-to-delta);
* every function object of every product row is treated as a product (the
  rule's product policy sees it by name), computes what the op computes, and
  the Shapley split is complete through it;
* every function object of every element-wise row reaches its row (the rule's
  multiplier sees the row's name), computes what the op computes, and a
  closed-form derivative equals autograd's.

A new row without an example here fails ``test_every_row_has_an_example``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DTYPE, assert_close, randn

from captum_unified.backend import RuleContext
from captum_unified.canonizers import rms_norm_float32, rms_norm_one_plus_weight_float32
from captum_unified.ops import COMPOSITES, PRODUCT_OPS, OpKind, default_op_table, op_name
from captum_unified.ops.elementwise import ELEMENTWISE_OPS
from captum_unified.ops.linear import GATE_PRESERVING
from captum_unified.rules import RULES, RescaleRule

DECOMPOSED = default_op_table().without_fused()


class Spy(RescaleRule):
    """DeepLIFT (Rescale), recording the names of the ops it is applied to."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.names: set[str] = set()

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        self.names.add(op.name)
        return super().multiplier(f, z, out, ref_z, ref_out, op=op)

    def product_factors(self, op, a, b, ref_a=None, ref_b=None):
        self.names.add(op.name)
        return super().product_factors(op, a, b, ref_a, ref_b)


def through_backend(fn: Callable, xs: tuple, bs: tuple, rule: RescaleRule | None = None, table=DECOMPOSED):
    """``fn(*xs)`` under DeepLIFT (baseline pass on ``bs``): the output, the
    output at the baselines, the modified gradients, the context."""
    rule = rule or Spy()
    rec = RuleContext(rule, table, recording=True, leaves=bs)
    with torch.no_grad(), rec:
        ref_out = fn(*bs)
    rec.release()
    leaves = tuple(x.detach().requires_grad_() for x in xs)
    ctx = RuleContext(rule, table, references=rec.records, leaves=leaves)
    with ctx:
        out = fn(*leaves)
    ctx.check_complete()
    ctx.release()
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    grads = tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves))
    return out, ref_out, grads, ctx


def check_complete(fn, xs, bs, rule=None, table=DECOMPOSED, atol=1e-9):
    """Forward values equal the op's; sum of multiplier * delta = change of the output."""
    out, ref_out, grads, ctx = through_backend(fn, xs, bs, rule, table)
    with torch.no_grad():
        plain, plain_ref = fn(*xs), fn(*bs)
    assert_close(out.detach(), plain, atol=1e-12, rtol=1e-10, msg="forward under the backend")
    assert_close(ref_out, plain_ref, atol=1e-12, rtol=1e-10, msg="baseline pass")
    assert not ctx.report.unknown, f"ops reported unknown: {ctx.report.unknown}"
    total = sum((g * (x - b)).sum() for g, x, b in zip(grads, xs, bs))
    change = (plain - plain_ref).sum()
    assert abs(float(total - change)) <= atol * max(1.0, abs(float(change))), (float(total), float(change))
    return ctx


# --------------------------------------------------------------- composites
def _rnn(cls, **kw):
    torch.manual_seed(0)
    m = cls(**kw).to(DTYPE).eval()
    return lambda x: m(x)[0]


def _cell(cls, lstm=False, **kw):
    torch.manual_seed(1)
    m = cls(3, 4, **kw).to(DTYPE).eval()
    if lstm:
        return lambda x, h, c: m(x, (h, c))[0] + m(x, (h, c))[1]
    return lambda x, h: m(x, h)


W_BIL = randn(2, 3, 4, seed=40)
POOL = 8

#: row name -> (fn, input shapes); every input is tainted, a baseline is drawn for each.
COMPOSITE_EXAMPLES: dict[str, tuple[Callable, list[tuple[int, ...]]]] = {
    "div": (lambda a, b: a / (b.abs() + 1.0) + torch.div(a, b * b + 2.0), [(3, 4), (3, 4)]),
    "pow": (lambda a, b: (a.abs() + 0.5) ** 2.5 + torch.pow(a.abs() + 1.0, torch.tanh(b)), [(3, 4), (3, 4)]),
    "maximum": (lambda a, b: torch.maximum(a, b) + torch.fmin(a, b), [(3, 4), (3, 4)]),
    "max": (lambda a: a.max(-1).values + a.amin(0).sum() + torch.max(a), [(3, 5)]),
    "max_pool": (lambda a: F.max_pool2d(a, 2, 1, padding=1).sum((2, 3)), [(2, 2, 4, 4)]),
    "adaptive_max_pool": (lambda a: F.adaptive_max_pool1d(a, 3), [(2, 2, POOL)]),
    "layer_norm": (lambda a: F.layer_norm(a, (4,), randn(4, seed=41), randn(4, seed=42)), [(3, 4)]),
    "rms_norm": (lambda a: F.rms_norm(a, (4,), randn(4, seed=43), eps=1e-6), [(3, 4)]),
    "rms_norm_float32": (lambda a: rms_norm_float32(a, (4,), 1e-6) * randn(4, seed=47), [(3, 4)]),
    "rms_norm_one_plus_weight_float32": (
        lambda a: rms_norm_one_plus_weight_float32(a, randn(4, seed=48), 1e-6),
        [(3, 4)],
    ),
    "group_norm": (lambda a: F.group_norm(a, 2, randn(4, seed=44), randn(4, seed=45)), [(3, 4, 3)]),
    "batch_norm": (lambda a: F.batch_norm(a, None, None, training=True), [(4, 3)]),
    "instance_norm": (lambda a: F.instance_norm(a), [(2, 3, 5)]),
    "norm": (lambda a: torch.norm(a, dim=-1) + torch.linalg.vector_norm(a, 1, dim=0).sum(), [(3, 4)]),
    "var": (lambda a: a.var(-1) + torch.std(a, dim=-1, correction=0), [(3, 4)]),
    "softmax": (lambda a: torch.softmax(a * 3, -1) @ randn(4, 2, seed=46), [(3, 4)]),
    "log_softmax": (lambda a: F.log_softmax(a, dim=-1), [(3, 4)]),
    "logsumexp": (lambda a: torch.logsumexp(a, -1), [(3, 4)]),
    "add_product": (
        lambda a, b, c: torch.addmm(c, a, b) + torch.addcmul(c, c, c, value=0.5) + torch.addcdiv(c, c, c * c + 1),
        [(3, 4), (4, 5), (3, 5)],
    ),
    "prod": (lambda a: a.prod(-1) + torch.prod(a[:, :2]), [(3, 3)]),
    "glu": (lambda a: F.glu(a, -1), [(3, 4)]),
    "lerp": (lambda a, b, w: torch.lerp(a, b, torch.sigmoid(w)), [(3, 4), (3, 4), (3, 4)]),
    "bilinear": (lambda a, b: F.bilinear(a, b, W_BIL), [(3, 3), (3, 4)]),
    "lstm": (_rnn(nn.LSTM, input_size=3, hidden_size=4, num_layers=2, bidirectional=True), [(5, 2, 3)]),
    "gru": (_rnn(nn.GRU, input_size=3, hidden_size=4, batch_first=True), [(2, 5, 3)]),
    "rnn_tanh": (_rnn(nn.RNN, input_size=3, hidden_size=4), [(5, 2, 3)]),
    "rnn_relu": (_rnn(nn.RNN, input_size=3, hidden_size=4, nonlinearity="relu"), [(5, 2, 3)]),
    "lstm_cell": (_cell(nn.LSTMCell, lstm=True), [(2, 3), (2, 4), (2, 4)]),
    "gru_cell": (_cell(nn.GRUCell), [(2, 3), (2, 4)]),
    "rnn_tanh_cell": (_cell(nn.RNNCell), [(2, 3), (2, 4)]),
    "rnn_relu_cell": (_cell(nn.RNNCell, nonlinearity="relu"), [(2, 3), (2, 4)]),
    "scaled_dot_product_attention": (
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        [(2, 3, 4), (2, 3, 4), (2, 3, 4)],
    ),
}


def test_every_row_has_an_example():
    assert {row.name for row in COMPOSITES} == set(COMPOSITE_EXAMPLES)
    assert {op_name(f) for row in PRODUCT_OPS for f in row.functions} == set(PRODUCT_EXAMPLES)
    assert all(row.functions for row in COMPOSITES), "a composite row lists its function objects"


@pytest.mark.parametrize("name", sorted(COMPOSITE_EXAMPLES))
def test_composite_row_decomposes_exactly_and_completely(name):
    torch.manual_seed(7)
    fn, shapes = COMPOSITE_EXAMPLES[name]
    xs = tuple(randn(*s, seed=10 + i) for i, s in enumerate(shapes))
    bs = tuple(randn(*s, seed=20 + i) * 0.7 for i, s in enumerate(shapes))
    check_complete(fn, xs, bs)


@pytest.mark.parametrize("row", [r for r in COMPOSITES if r.fused is not None], ids=lambda r: r.name)
def test_composite_row_with_a_fused_kernel_is_complete_through_it(row):
    fn, shapes = COMPOSITE_EXAMPLES[row.name]
    xs = tuple(randn(*s, seed=10 + i) for i, s in enumerate(shapes))
    bs = tuple(randn(*s, seed=20 + i) * 0.7 for i, s in enumerate(shapes))
    check_complete(fn, xs, bs, table=default_op_table())


def modified_gradients_of(fn: Callable, xs: tuple, bs: tuple, rule, table) -> tuple:
    """The modified gradients of ``fn(*xs).sum()`` under ``rule`` (a baseline pass on ``bs``
    when the rule needs one)."""
    records = None
    if rule.needs_reference:
        rec = RuleContext(rule, table, recording=True, leaves=bs)
        with torch.no_grad(), rec:
            fn(*bs)
        rec.release()
        records = rec.records
    leaves = tuple(x.detach().requires_grad_() for x in xs)
    ctx = RuleContext(rule, table, references=records, leaves=leaves)
    with ctx:
        out = fn(*leaves)
    ctx.release()
    grads = torch.autograd.grad(out.sum(), leaves, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, leaves))


@pytest.mark.parametrize("rule", [n for n in RULES if RULES[n]().modifies_gradient])
@pytest.mark.parametrize("row", [r for r in COMPOSITES if r.fused is not None], ids=lambda r: r.name)
def test_composite_row_with_a_fused_kernel_equals_its_decomposition(row, rule):
    """A fused kernel computes what the decomposition computes, under every registered rule."""
    fn, shapes = COMPOSITE_EXAMPLES[row.name]
    xs = tuple(randn(*s, seed=10 + i) for i, s in enumerate(shapes))
    bs = tuple(randn(*s, seed=20 + i) * 0.7 for i, s in enumerate(shapes))
    fused = modified_gradients_of(fn, xs, bs, RULES[rule](), default_op_table())
    decomposed = modified_gradients_of(fn, xs, bs, RULES[rule](), DECOMPOSED)
    for a, b in zip(fused, decomposed):
        assert_close(a, b, atol=1e-12, rtol=1e-9, msg=f"{row.name} under {rule}")


# ----------------------------------------------------------------- products
TT = torch.Tensor
_MUL = ((3, 4), (3, 4))
#: op name of the function object -> (call, factor shapes)
PRODUCT_EXAMPLES: dict[str, tuple[Callable, tuple[tuple[int, ...], ...]]] = {
    "torch.mul": (torch.mul, _MUL),
    "torch.multiply": (torch.multiply, _MUL),
    "Tensor.mul": (TT.mul, _MUL),
    "Tensor.multiply": (TT.multiply, _MUL),
    "Tensor.__mul__": (TT.__mul__, _MUL),
    "Tensor.__rmul__": (TT.__rmul__, _MUL),
    "Tensor.mul_": (lambda a, b: a.clone().mul_(b), _MUL),
    "Tensor.multiply_": (lambda a, b: a.clone().multiply_(b), _MUL),
    "Tensor.__imul__": (lambda a, b: a.clone().__imul__(b), _MUL),
    "torch.matmul": (torch.matmul, ((2, 3, 4), (4, 5))),
    "Tensor.matmul": (TT.matmul, ((3, 4), (4,))),
    "Tensor.__matmul__": (TT.__matmul__, ((2, 3, 4), (2, 4, 5))),
    "torch.mm": (torch.mm, ((3, 4), (4, 5))),
    "Tensor.mm": (TT.mm, ((3, 4), (4, 5))),
    "torch.bmm": (torch.bmm, ((2, 3, 4), (2, 4, 5))),
    "Tensor.bmm": (TT.bmm, ((2, 3, 4), (2, 4, 5))),
    "torch.mv": (torch.mv, ((3, 4), (4,))),
    "Tensor.mv": (TT.mv, ((3, 4), (4,))),
    "torch.dot": (torch.dot, ((4,), (4,))),
    "Tensor.dot": (TT.dot, ((4,), (4,))),
    "torch.inner": (torch.inner, ((3, 4), (2, 4))),
    "Tensor.inner": (TT.inner, ((4,), (4,))),
    "torch.outer": (torch.outer, ((3,), (4,))),
    "Tensor.outer": (TT.outer, ((3,), (4,))),
    "torch.ger": (torch.ger, ((3,), (4,))),
    "Tensor.ger": (TT.ger, ((3,), (4,))),
    "torch.vdot": (torch.vdot, ((4,), (4,))),
    "Tensor.vdot": (TT.vdot, ((4,), (4,))),
    "torch.kron": (torch.kron, ((2, 2), (2, 3))),
    "Tensor.kron": (TT.kron, ((2, 2), (2, 3))),
    "torch.tensordot": (lambda a, b: torch.tensordot(a, b, dims=1), ((3, 4), (4, 5))),
    "Tensor.__rmatmul__": (TT.__rmatmul__, ((4, 5), (3, 4))),
    "torch.einsum": (lambda a, b: torch.einsum("bi,ij->bj", a, b), ((3, 4), (4, 5))),
    "F.linear": (lambda x, w: F.linear(x, w, randn(5, seed=50)), ((3, 4), (5, 4))),
    "torch.conv1d": (lambda x, w: F.conv1d(x, w, randn(4, seed=51), padding=1), ((2, 3, 6), (4, 3, 3))),
    "torch.conv2d": (lambda x, w: F.conv2d(x, w, randn(4, seed=52)), ((2, 3, 5, 5), (4, 3, 3, 3))),
    "torch.conv3d": (lambda x, w: F.conv3d(x, w), ((1, 2, 4, 4, 4), (3, 2, 2, 2, 2))),
    "torch.conv_transpose1d": (lambda x, w: F.conv_transpose1d(x, w, randn(4, seed=53)), ((2, 3, 5), (3, 4, 3))),
    "torch.conv_transpose2d": (lambda x, w: F.conv_transpose2d(x, w, stride=2), ((2, 3, 3, 3), (3, 2, 2, 2))),
    "torch.conv_transpose3d": (lambda x, w: F.conv_transpose3d(x, w), ((1, 2, 3, 3, 3), (2, 3, 2, 2, 2))),
}

_PRODUCT_ROW = {op_name(f): row for row in PRODUCT_OPS for f in row.functions}


@pytest.mark.parametrize("fname", sorted(PRODUCT_EXAMPLES))
def test_product_function_is_a_product_of_its_factors(fname):
    fn, shapes = PRODUCT_EXAMPLES[fname]
    xs = tuple(randn(*s, seed=30 + i) for i, s in enumerate(shapes))
    bs = tuple(randn(*s, seed=60 + i) * 0.5 for i, s in enumerate(shapes))
    rule = Spy()
    check_complete(lambda a, b: fn(a, b), xs, bs, rule=rule)
    assert _PRODUCT_ROW[fname].name.rstrip("_") in rule.names, "the product policy saw the op by its row's name"


def test_a_product_with_one_constant_factor_is_linear():
    rule = Spy()
    w = randn(5, 4, seed=70)
    check_complete(lambda x: F.linear(torch.tanh(x), w) * 2.0, (randn(3, 4, seed=71),), (randn(3, 4, seed=72),), rule)
    assert "linear" not in rule.names and "mul" not in rule.names and "tanh" in rule.names


# -------------------------------------------------------------- element-wise
#: extra arguments / domain of the rows that need them (default: z in (0.1, 0.9), no argument)
_ELEMENTWISE_ARGS: dict[str, tuple] = {
    "prelu": (torch.tensor([0.2], dtype=DTYPE),),
    "threshold": (0.4, -1.0),
    "clamp": (0.3, 0.7),
    "clamp_min": (0.4,),
    "clamp_max": (0.6,),
}
_DOMAIN_SHIFT = {"acosh": 1.5}


def _elementwise_calls():
    table = default_op_table()
    for row in ELEMENTWISE_OPS:
        entries = [(f, e) for f, e in table.items() if e.kind is OpKind.ELEMENTWISE and e.name == row.name]
        for f, e in entries:
            yield pytest.param(row, f, e.inplace, id=f"{row.name}:{op_name(f)}")


@pytest.mark.parametrize("row,f,inplace", list(_elementwise_calls()))
def test_elementwise_function_reaches_its_row(row, f, inplace):
    g = torch.Generator().manual_seed(3)
    z = torch.rand(3, 4, generator=g, dtype=DTYPE) * 0.8 + 0.1 + _DOMAIN_SHIFT.get(row.name, 0.0)
    ref = torch.rand(3, 4, generator=g, dtype=DTYPE) * 0.8 + 0.1 + _DOMAIN_SHIFT.get(row.name, 0.0)
    extra = _ELEMENTWISE_ARGS.get(row.name, ())

    def call(t):
        return f(t.clone() if inplace else t, *extra)

    rule = Spy()
    out, _, (grad,), _ = through_backend(call, (z,), (ref,), rule, default_op_table())
    assert row.name in rule.names
    with torch.no_grad():
        canonical = call(z)
    assert torch.equal(out.detach(), canonical)
    if row.derivative is not None:
        zz = z.clone().requires_grad_()
        (d,) = torch.autograd.grad(call(zz).sum(), zz)
        assert_close(row.derivative(z, canonical), d, atol=1e-12)


def test_clamp_with_an_input_dependent_bound_uses_its_fallback():
    rule = Spy(maxima="tree")  # max(a, b) = b + relu(a - b): the rule sees the relu
    check_complete(
        lambda x, lo: torch.clamp(x, min=lo),
        (randn(3, 4, seed=80), randn(3, 4, seed=81)),
        (randn(3, 4, seed=82), randn(3, 4, seed=83)),
        rule,
    )
    assert rule.names == {"relu"}


# ------------------------------------------------------------------ linear
def test_gate_preserving_ops_are_linear_entries_that_keep_the_gate():
    table = default_op_table()
    kept = {e.name for e in table.values() if e.keeps_gate}
    assert kept == set(GATE_PRESERVING)
    assert all(e.kind is OpKind.LINEAR for e in table.values() if e.keeps_gate)


def test_a_gate_stays_a_gate_through_a_view():
    seen = []

    class GateSpy(RescaleRule):
        def product_factors(self, op, a, b, ref_a=None, ref_b=None):
            seen.append(op.gates)
            return super().product_factors(op, a, b, ref_a, ref_b)

    fn = lambda x: torch.sigmoid(x).reshape(4, 3).transpose(0, 1) * torch.tanh(x).view(4, 3).T  # noqa: E731
    through_backend(fn, (randn(3, 4, seed=90),), (randn(3, 4, seed=91),), GateSpy(), default_op_table())
    assert seen == [(True, False)]
