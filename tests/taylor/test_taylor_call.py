"""Every public function of ``captum_unified.taylor`` formats Captum's arguments
once (one :class:`~captum_unified._utils.call.AttributionCall` per call, passed
on), and all of them answer bad input with the call's errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import captum_unified._utils.call as call_module
from captum_unified._utils.call import AttributionCall
from captum_unified.taylor import (
    TaylorAttribution,
    deeplift_layer_reformulation,
    deeplift_reformulation,
    expected_gradients_reformulation,
    gradient_x_input_reformulation,
    group_interactions,
    integrated_gradients_reformulation,
    occlusion1_reformulation,
    occlusion_patch_reformulation,
    taylor_decomposition,
)

torch.manual_seed(0)
MODEL = nn.Sequential(nn.Linear(6, 5), nn.Softplus(), nn.Linear(5, 3)).double().eval()
X = torch.randn(4, 6, dtype=torch.float64)
MASK = torch.tensor([[0, 0, 1, 1, 2, 2]])

#: name -> (inputs -> result); every public Taylor entry point
CALLS = {
    "TaylorAttribution.attribute": lambda x: TaylorAttribution(MODEL).attribute(x, target=1),
    "TaylorAttribution.attribute(order=1)": lambda x: TaylorAttribution(MODEL, order=1).attribute(x, target=1),
    "TaylorAttribution.decompose": lambda x: TaylorAttribution(MODEL).decompose(x, target=1),
    "taylor_decomposition": lambda x: taylor_decomposition(MODEL, x, target=1),
    "group_interactions": lambda x: group_interactions(MODEL, x, MASK, target=1),
    "gradient_x_input_reformulation": lambda x: gradient_x_input_reformulation(MODEL, x, target=1),
    "occlusion1_reformulation": lambda x: occlusion1_reformulation(MODEL, x, target=1),
    "occlusion_patch_reformulation": lambda x: occlusion_patch_reformulation(MODEL, x, MASK, target=1),
    "integrated_gradients_reformulation": lambda x: integrated_gradients_reformulation(MODEL, x, target=1),
    "expected_gradients_reformulation": lambda x: expected_gradients_reformulation(
        MODEL, x, torch.randn(5, 6, dtype=torch.float64), target=1
    ),
    "deeplift_reformulation": lambda x: deeplift_reformulation(MODEL, x, target=1),
    "deeplift_layer_reformulation": lambda x: deeplift_layer_reformulation(MODEL, x, target=1),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_inputs_are_formatted_once_per_call(name, monkeypatch):
    """Counted where the formatting happens (``format_inputs`` inside
    ``AttributionCall.format``): once, also where a function builds on another
    (the patch reformulation on the group interactions, Expected Gradients'
    reformulation on TaylorAttribution once per baseline)."""
    seen = []
    original = call_module.format_inputs

    def counting(*args, **kwargs):
        seen.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(call_module, "format_inputs", counting)
    CALLS[name](X)
    assert len(seen) == 1, f"{name} formatted its inputs {len(seen)} times"


@pytest.mark.parametrize("name", list(CALLS))
def test_empty_batch_is_the_calls_error(name):
    with pytest.raises(ValueError, match="0 samples"):
        CALLS[name](X[:0])


def test_with_baselines_formats_only_the_baselines():
    call = AttributionCall.format((X, X[:, :2]), target=1)
    other = call.with_baselines((0.5, torch.ones(1, 2)))
    assert other.inputs is call.inputs and other.target == 1 and other.is_tuple
    fresh = AttributionCall.format((X, X[:, :2]), (0.5, torch.ones(1, 2)), target=1)
    for a, b in zip(other.baselines, fresh.baselines):
        assert a.dtype == b.dtype and torch.equal(a, b)
    for a, b in zip(other.deltas, fresh.deltas):  # no cached value of the first call leaks in
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="does not fit input shape"):
        call.with_baselines((torch.ones(3, 6), 0.0))


def test_deeplift_reformulation_names_the_tuple_it_cannot_take():
    with pytest.raises(ValueError, match="one input tensor"):
        deeplift_reformulation(MODEL, (X, X), target=1)


def test_no_taylor_module_formats_by_hand():
    """Formatting goes through ``AttributionCall`` only (``terms.format_call``):
    no Taylor module uses the formatting helpers itself."""
    import ast
    from pathlib import Path

    import captum_unified.taylor as taylor

    helpers = {"format_inputs", "format_baselines", "format_additional_args", "_format_output", "_is_tuple"}
    for path in Path(taylor.__file__).parent.glob("*.py"):
        names = {
            a.name
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.ImportFrom)
            for a in node.names
        }
        assert not names & helpers, f"{path.name} imports {sorted(names & helpers)}"
