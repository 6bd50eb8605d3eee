"""The backend's pieces one by one: call normalisation, the taint tracker, the
reference tape, the report, and the entry point on an ``AttributionCall``."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DTYPE, assert_close, make_mlp, randn

import captum_unified as cu
from captum_unified._utils.call import AttributionCall
from captum_unified.backend import BackendResult, RuleContext, modified_gradients
from captum_unified.backend.calls import split_inplace, write_target
from captum_unified.backend.report import Report
from captum_unified.backend.taint import TaintTracker
from captum_unified.backend.tape import ReferenceTape
from captum_unified.ops import default_op_table

TABLE = default_op_table()


# ------------------------------------------------------------------- calls
@pytest.mark.parametrize(
    "func,args,kwargs,expected",
    [
        (F.relu, ("z",), {"inplace": True}, (("z",), {}, True)),
        (F.relu, ("z", True), {}, (("z",), {}, True)),
        (F.relu, ("z",), {}, (("z",), {}, False)),
        (torch.tanh, (), {"input": "z"}, (("z",), {}, False)),
        (torch.Tensor.relu_, ("z",), {}, (("z",), {}, True)),
        (F.softplus, (), {"input": "z", "beta": 2}, (("z",), {"beta": 2}, False)),
    ],
)
def test_split_inplace_gives_one_form(func, args, kwargs, expected):
    assert split_inplace(TABLE[func], func, args, kwargs) == expected


def test_write_target():
    t, o = randn(2), randn(2)
    assert write_target(torch.Tensor.add_, (t, 1), {}) is t
    assert write_target(torch.Tensor.__iadd__, (t, 1), {}) is t
    assert write_target(torch.add, (t, 1), {"out": o}) is o
    assert write_target(torch.add, (t, 1), {}) is None
    assert write_target(torch.Tensor.__add__, (t, 1), {}) is None


# ------------------------------------------------------------------- taint
def test_taint_tracker_marks():
    tracker = TaintTracker()
    x, c, i = randn(3), randn(3), torch.arange(3)
    tracker.taint(x, [i])
    assert tracker.tainted(x) and not tracker.tainted(c) and not tracker.tainted(i)  # integers are never tainted
    assert tracker.any_tainted([c, (c, [x])]) and not tracker.any_tainted([c, 1.0])
    mask = x > 0
    tracker.mark_masks(mask)
    assert tracker.has_masks and tracker.mask_args([mask, c]) == (True, False)
    assert tracker.any_tainted([mask])
    g = torch.sigmoid(x)
    tracker.mark_gate(g)
    tracker.mark_rule_output(g)
    target = randn(3)
    tracker.carry(g, target)
    assert tracker.tainted(target) and tracker.is_gate(target) and tracker.is_rule_output(target)
    assert tracker.is_rule_output(g[:2])  # a view of a rule output
    tracker.release()
    assert not tracker.tainted(x) and not tracker.has_masks and not tracker.is_gate(g)


# -------------------------------------------------------------------- tape
def test_tape_pairs_ops_in_call_order_and_names_a_mismatch():
    recorder = ReferenceTape("R", recording=True)
    recorder.record("tanh", (randn(1, 3),), randn(1, 3))
    recorder.record("mul", (randn(1, 3), randn(1, 3)))
    tape = ReferenceTape("R", recording=False, references=recorder.records)
    assert tape.next("tanh", (randn(4, 3),)).name == "tanh"  # a batch-1 record broadcasts
    with pytest.raises(RuntimeError, match=r"Op 2 differs between the input pass \(relu"):
        tape.next("relu", (randn(4, 3),))
    short = ReferenceTape("R", recording=False, references=recorder.records)
    short.next("tanh", (randn(4, 3),))
    with pytest.raises(RuntimeError, match="applied 1 treated ops to the inputs but 2 to the baselines"):
        short.check_complete()
    with pytest.raises(RuntimeError, match="R needs a reference pass"):
        ReferenceTape("R", recording=False).next("tanh", (randn(1),))


def test_tape_copies_a_record_before_an_inplace_write():
    tape = ReferenceTape("R", recording=True)
    h = randn(2, 3)
    tape.record("tanh", (h,), h)
    before = h.clone()
    tape.protect((h,))
    h.add_(1.0)
    assert torch.equal(tape.records[0].tensors[0], before) and torch.equal(tape.records[0].out, before)


# ------------------------------------------------------------------ report
def test_report_messages():
    report = Report()
    report.check_once("exp", lambda: "exp is risky")
    report.check_once("exp", lambda: pytest.fail("checked twice"))
    report.product("mul", None)
    report.product("mul", "products!")
    report.product("mul", "again")
    report.unknown_op("torch.cumprod")
    report.unknown_op("torch.cumprod")
    report.selection("torch.where")
    msgs = report.messages("MyRule")
    assert msgs[:2] == ["exp is risky", "products!"]
    assert "torch.cumprod (2x)" in msgs[2] and "MyRule treats them as linear" in msgs[2]
    assert "torch.where (1x)" in msgs[3] and "so MyRule does not attribute" in msgs[3]


# ------------------------------------------------------------- entry point
def test_modified_gradients_takes_the_attribution_call():
    model = make_mlp((4, 6, 3), "tanh", seed=1)
    x, base = randn(5, 4, seed=2), randn(1, 4, seed=3)
    call = AttributionCall.format(x, base, 2)
    result = modified_gradients(model, call, cu.RescaleRule())
    assert isinstance(result, BackendResult)
    with torch.no_grad():
        out, ref = model(x)[:, 2], model(base)[:, 2].expand(5)
    assert_close(result.outputs, out, atol=1e-14)
    assert_close(result.baseline_outputs, ref, atol=1e-14)
    assert_close((result.gradients[0] * (x - base)).sum(1), out - ref, atol=1e-12)
    assert torch.equal(call.inputs[0], x)  # not modified


class CountBatch(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.batches: list[int] = []

    def forward(self, x):
        self.batches.append(x.shape[0])
        return self.lin(torch.tanh(x))


def test_a_shared_baseline_runs_the_reference_pass_on_a_batch_of_one():
    model = CountBatch().to(DTYPE)
    call = AttributionCall.format(randn(5, 4, seed=4), 0.5, 1)
    assert call.shared_baseline
    modified_gradients(model, call, cu.RescaleRule())
    assert model.batches == [1, 5]
    model.batches.clear()
    per_sample = AttributionCall.format(randn(5, 4, seed=4), randn(5, 4, seed=5), 1)
    modified_gradients(model, per_sample, cu.RescaleRule())
    assert model.batches == [5, 5]


def test_a_rule_needing_the_reference_without_baselines_is_a_clear_error():
    call = AttributionCall((randn(2, 4, seed=6),), (), (), 0, False)  # the path points of IG carry none
    with pytest.raises(ValueError, match="RescaleRule needs baselines"):
        modified_gradients(make_mlp((4, 3, 2)), call, cu.RescaleRule())
    assert modified_gradients(make_mlp((4, 3, 2)), call).gradients[0].shape == (2, 4)  # the gradient rule needs none


def test_rule_context_used_directly_leaves_nothing_behind():
    model = make_mlp((4, 5, 3), "relu", seed=7)
    x = randn(2, 4, seed=8).requires_grad_()
    ctx = RuleContext(cu.EpsilonLRPRule(1e-9), leaves=(x,))
    with ctx:
        y = model(x)
    assert not torch.overrides._get_current_function_mode_stack()
    (g,) = torch.autograd.grad(y[:, 1].sum(), x)
    x2 = x.detach().requires_grad_()
    (plain,) = torch.autograd.grad(model(x2)[:, 1].sum(), x2)
    # on ReLUs epsilon-LRP's g(z) = relu(z) / (z + eps) is the gradient up to eps
    assert_close(g, plain, atol=1e-6, rtol=1e-6)
    assert not torch.equal(g, plain)  # but the rule was applied
