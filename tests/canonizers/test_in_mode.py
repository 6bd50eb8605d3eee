"""Canonizers applied by the backend itself, inside its mode (PassCanonizer, BACKEND_MAP).

* with no ``canonize`` block, epsilon-LRP ``products="gate"`` conserves the
  logit of bias-free GPT-2 and LLaMA (float64) to <= 1e-4, measured from
  forward passes of the untouched model, with no warning (GPT-2's
  ``NewGELUActivation`` is reached as ``F.gelu``; LLaMA's hand-written RMS norm
  is recognised by the backend's norm patterns, without a false "through
  rsqrt" alarm);
* inside the pass the module computes the fused op and its own hooks still
  run; after the call -- also when it raises -- the model, its modules'
  ``__dict__``, hooks and classes, and torch's global module hooks are as before;
* ``module_map={}`` turns it off; a module that only has the name gets a
  warning naming it and keeps its forward.
"""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.modules.module as torch_module
from torch import nn

transformers = pytest.importorskip("transformers", reason="needs transformers (the dev / test extras)")
from hf_helpers import LastLogits, gemma, gpt2, llama, qwen2, zero_biases

import captum_unified as cu
from captum_unified.canonizers import BACKEND_MAP, MODULE_MAP

IDS = torch.tensor([[1, 4, 6, 8, 9, 4, 10, 5, 7]])


def _snapshot(model: nn.Module) -> dict:
    """Everything the backend must leave as it found it."""
    return {
        "dicts": {name: dict(m.__dict__) for name, m in model.named_modules()},
        "classes": {type(m): type(m).__dict__.get("forward") for m in model.modules()},
        "global": (
            dict(torch_module._global_forward_pre_hooks),
            dict(torch_module._global_forward_hooks),
            dict(torch_module._global_backward_hooks),
        ),
    }


def _same(a: dict, b: dict) -> bool:
    if a["classes"] != b["classes"] or a["global"] != b["global"] or a["dicts"].keys() != b["dicts"].keys():
        return False
    for name, before in a["dicts"].items():
        after = b["dicts"][name]
        if before.keys() != after.keys() or any(before[k] is not after[k] for k in before):
            return False
    return True


def test_backend_map_is_the_gelu_rows_and_the_exact_float32_rms_norms():
    from captum_unified.canonizers import rms_norm_in_float32, rms_norm_one_plus_weight_in_float32

    gelus = {"NewGELUActivation", "GELUTanh", "FastGELUActivation", "GELUActivation"}
    assert set(BACKEND_MAP) == gelus | {"Gemma*RMSNorm", "*RMSNorm"}
    assert all(MODULE_MAP[k] is BACKEND_MAP[k] for k in gelus)
    assert BACKEND_MAP["*RMSNorm"] is rms_norm_in_float32 and rms_norm_in_float32.exact_only
    assert BACKEND_MAP["Gemma*RMSNorm"] is rms_norm_one_plus_weight_in_float32
    assert list(BACKEND_MAP).index("Gemma*RMSNorm") < list(BACKEND_MAP).index("*RMSNorm")  # patterns in order


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gemma"])
def test_float64_llama_is_complete_through_its_float32_rms_norms(arch):
    """transformers' RMS norms compute in float32 also in a float64 model; the
    backend's rows compute them operation for operation as one normalisation of
    the float64 input (DeepLIFT complete to float64's rounding, measured from
    the untouched model), where op by op the cast and the float32 gradients
    of the region cost about 1e-7. Gemma's scales by 1 + weight in float32."""
    model = {"llama": llama, "qwen2": qwen2, "gemma": gemma}[arch](dtype=torch.float64)

    class LogProb(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.m = model

        def forward(self, emb):
            return torch.log_softmax(self.m(inputs_embeds=emb).logits[:, -1], -1)

    f = LogProb()
    g = torch.Generator().manual_seed(1)
    x = 0.5 * torch.randn(2, 7, 32, generator=g, dtype=torch.float64)
    for b in (torch.zeros_like(x), 500 * torch.randn(x.shape, generator=g, dtype=torch.float64)):
        with torch.no_grad():
            d = f(x)[:, 2] - f(b)[:, 2]
        a = cu.DeepLiftRescale(f).attribute(x, baselines=b, target=2)
        assert float((a.flatten(1).sum(1) - d).abs().max() / d.abs().max()) < 1e-12


def test_rms_norm_rows_that_do_not_reproduce_the_module_are_left_alone_silently():
    """An ``*RMSNorm`` that computes in its input's precision (not LLaMA's
    float32) matches the row's name but not its arithmetic in float64: it keeps
    its own ops (which the norm patterns treat), with no warning."""

    class RMSNorm(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.ones(6, dtype=torch.float64))
            self.eps = 1e-6

        def forward(self, x):
            return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    net = nn.Sequential(nn.Linear(4, 6).double(), RMSNorm(), nn.Linear(6, 3).double())
    x = torch.randn(5, 4, dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = cu.DeepLiftRescale(net).attribute(x, target=1)
    with torch.no_grad():
        d = net(x)[:, 1] - net(torch.zeros_like(x))[:, 1]
    assert float((a.sum(1) - d).abs().max() / d.abs().max()) < 1e-12


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lrp_gate_conserves_without_a_canonize_block(arch):
    model = zero_biases({"gpt2": gpt2, "llama": llama}[arch]())
    f = LastLogits(model)
    layers = [model.transformer.wte, model.transformer.wpe] if arch == "gpt2" else [model.model.embed_tokens]
    with torch.no_grad():
        out = f(IDS)  # the untouched model
    t = int(out.argmax())
    before = _snapshot(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "epsilon-LRP through rsqrt", no unknown op
        attrs = cu.LayerEpsilonLRP(f, layers, epsilon=1e-12, products="gate").attribute(IDS, target=t)
    total = sum(a.sum() for a in attrs)
    assert abs(total - out[0, t]) <= 1e-4 * abs(out[0, t]), (float(total), float(out[0, t]))
    assert _same(before, _snapshot(model))


def test_gpt2_needed_the_canonizer():
    # the same measurement with the map off (RuleContext's module_map={}): GELU's spelled-out product
    # loses relevance -- why the map exists
    model = zero_biases(gpt2())
    model.transformer.wpe.weight.data.zero_()  # all relevance reaches the token embeddings
    with torch.no_grad():
        emb = model.transformer.wte(IDS)
        out = model(inputs_embeds=emb).logits[0, -1]
    t = int(out.argmax())
    rule = cu.EpsilonLRPRule(1e-12, products="gate")
    totals = {}
    for name, module_map in (("on", BACKEND_MAP), ("off", {})):
        x = emb.clone().requires_grad_(True)
        with cu.RuleContext(rule, leaves=(x,), module_map=module_map):
            z = model(inputs_embeds=x).logits[0, -1, t]
        (g,) = torch.autograd.grad(z, x)
        totals[name] = float((g * x.detach()).sum())
    assert abs(totals["on"] - out[t]) <= 1e-9 * abs(out[t]), totals
    assert abs(totals["off"] - out[t]) > 1e-3 * abs(out[t]), totals


def test_module_is_fused_inside_and_its_hooks_still_run():
    model = gpt2()
    act = model.transformer.h[0].mlp.act
    seen = []
    handle = act.register_forward_hook(lambda m, i, o: seen.append(type(m.__dict__.get("forward")).__name__))
    try:
        emb = model.get_input_embeddings()
        cu.LayerDeepLiftRescale(LastLogits(model), emb).attribute(IDS, target=3)
    finally:
        handle.remove()
    # baseline pass and input pass: both computed F.gelu through the canonical forward
    assert seen == ["_CanonicalForward", "_CanonicalForward"]
    assert "forward" not in act.__dict__


def test_no_trace_when_the_call_raises():
    model = gpt2()
    f = LastLogits(model)
    before = _snapshot(model)

    class Boom(RuntimeError):
        pass

    def fail(m, i, o):
        raise Boom("raised inside the pass")

    handle = model.transformer.h[1].register_forward_hook(fail)
    try:
        with pytest.raises(Boom):
            cu.LayerEpsilonLRP(f, model.get_input_embeddings()).attribute(IDS, target=3)
        # the first block's GELU was canonized before the second block raised
    finally:
        handle.remove()
    assert _same(before, _snapshot(model))
    with torch.no_grad():  # and the model still computes what it did
        torch.testing.assert_close(f(IDS), LastLogits(gpt2())(IDS), rtol=0, atol=0)


class NewGELUActivation(nn.Module):
    """Has the name of transformers' class but computes something else."""

    def forward(self, x):
        return torch.relu(x)


def test_a_module_with_only_the_name_is_left_alone_with_a_warning():
    model = nn.Sequential(nn.Linear(4, 6), NewGELUActivation(), nn.Linear(6, 2)).double()
    x = torch.randn(3, 4, dtype=torch.float64)
    with pytest.warns(cu.AttributionWarning, match=r"Module 1 \(NewGELUActivation\) matches the backend's module map"):
        attr, delta = cu.DeepLiftRescale(model).attribute(x, target=1, return_convergence_delta=True)
    assert delta.abs().max() < 1e-10  # ReLU's rule, not GELU's: complete
    assert "forward" not in model[1].__dict__
