"""captum_unified.canonizers: module classes computed as the fused op they spell out.

* every row of MODULE_MAP equals the forward of real transformers classes
  (float64 to 1e-12, with the modules' float32 upcast disabled so that their
  math, not float32 rounding, is compared; and float32 as shipped);
* a module whose name matches a row but whose math differs is left alone, with
  a warning naming it;
* the context leaves no trace (modules, forwards, hooks, state dict), also when
  the block raises; hooks still run inside;
* the effect (Achtibat et al.'s and Ali et al.'s LRP rules see GELU and RMS
  norm as one op): epsilon-LRP with ``products="gate"`` conserves the logit of
  bias-free GPT-2 and LLaMA (float64), measured from forward passes.
"""

from __future__ import annotations

import importlib
import warnings

import pytest
import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

transformers = pytest.importorskip("transformers", reason="needs transformers (the dev / test extras)")
from hf_helpers import LastLogits, gpt2, llama, t5, zero_biases

import captum_unified as cu
from captum_unified.canonizers import MODULE_MAP, canonical_op, canonize


def _class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


A = "transformers.activations."
M = "transformers.models."
#: row of MODULE_MAP -> real classes it must cover (constructor kwargs); a new
#: row without samples fails test_every_row_has_samples
SAMPLES: dict[str, list[tuple[str, dict]]] = {
    "NewGELUActivation": [(A + "NewGELUActivation", {})],
    "GELUTanh": [(A + "GELUTanh", {}), (A + "GELUTanh", {"use_gelu_tanh_python": True})],
    "FastGELUActivation": [(A + "FastGELUActivation", {})],
    "GELUActivation": [(A + "GELUActivation", {}), (A + "GELUActivation", {"use_gelu_python": True})],
    "Gemma*RMSNorm": [
        (M + "gemma.modeling_gemma.GemmaRMSNorm", {"dim": 16}),
        (M + "gemma2.modeling_gemma2.Gemma2RMSNorm", {"dim": 16}),
        (M + "gemma3.modeling_gemma3.Gemma3RMSNorm", {"dim": 16}),
    ],
    "*RMSNorm": [
        (M + "llama.modeling_llama.LlamaRMSNorm", {"hidden_size": 16}),
        (M + "mistral.modeling_mistral.MistralRMSNorm", {"hidden_size": 16}),
        (M + "qwen2.modeling_qwen2.Qwen2RMSNorm", {"hidden_size": 16}),
        (M + "qwen3.modeling_qwen3.Qwen3RMSNorm", {"hidden_size": 16}),
        (M + "phi3.modeling_phi3.Phi3RMSNorm", {"hidden_size": 16}),
    ],
    "*T5LayerNorm": [
        (M + "t5.modeling_t5.T5LayerNorm", {"hidden_size": 16}),
        (M + "mt5.modeling_mt5.MT5LayerNorm", {"hidden_size": 16}),
        (M + "longt5.modeling_longt5.LongT5LayerNorm", {"hidden_size": 16}),
    ],
}
CASES = [(row, path, kw) for row, samples in SAMPLES.items() for path, kw in samples]


class Float64Throughout(TorchFunctionMode):
    """Test harness: ``.to(torch.float32)`` / ``.float()`` of a float64 tensor
    return it unchanged, so a module's math runs in float64 (transformers' norms
    upcast to float32 for half precision and thereby round float64 inputs)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (Tensor.to, Tensor.float) and isinstance(args[0], Tensor) and args[0].dtype == torch.float64:
            dtypes = [a for a in (*args[1:], *kwargs.values()) if isinstance(a, torch.dtype)]
            target = torch.float32 if func is Tensor.float else (dtypes[0] if dtypes else None)
            if target == torch.float32:
                return args[0]
        return func(*args, **kwargs)


def _random_params(module: nn.Module, seed: int) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))
    return module


def test_every_row_has_samples():
    assert set(SAMPLES) == set(MODULE_MAP), "add real classes for every MODULE_MAP row to SAMPLES"


@pytest.mark.parametrize("row,path,kwargs", CASES, ids=[f"{r}:{p.rsplit('.', 1)[1]}" for r, p, _ in CASES])
def test_row_equals_the_modules_own_forward(row, path, kwargs):
    module = _random_params(_class(path)(**kwargs), seed=1)
    assert canonical_op(module) is MODULE_MAP[row], f"{path} is not matched by the row {row!r}"
    fused = MODULE_MAP[row]
    g = torch.Generator().manual_seed(0)
    # float64: the math, to 1e-12 relative
    m64 = module.double()
    for scale in (1e-3, 1.0, 10.0):
        x = scale * torch.randn(3, 5, 16, generator=g, dtype=torch.float64)
        with torch.no_grad(), Float64Throughout():
            own = m64(x)
        new = fused(m64, x)
        assert new.dtype == torch.float64
        assert (own - new).abs().max() <= 1e-12 * own.abs().max(), (row, path, scale)
    # float32, as shipped
    m32 = module.float()
    x = torch.randn(3, 5, 16, generator=g)
    with torch.no_grad():
        own = m32(x)
    new = fused(m32, x)
    assert new.dtype == own.dtype == torch.float32
    assert (own - new).abs().max() <= 2e-6 * own.abs().max(), (row, path)


def test_a_name_match_with_other_math_is_left_alone_with_a_warning():
    class EpsOutsideRMSNorm(nn.Module):  # matches "*RMSNorm", but eps is added to the root
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(8))
            self.eps = 1e-6

        def forward(self, x):
            return self.weight * x / (x.pow(2).mean(-1, keepdim=True).sqrt() + self.eps)

    class GatedRMSNorm(nn.Module):  # matches "*RMSNorm", takes two tensors
        def __init__(self):
            super().__init__()
            self.weight = nn.Parameter(torch.ones(8))
            self.eps = 1e-6

        def forward(self, x, gate):
            return self.weight * torch.rms_norm(x, (8,), None, self.eps) * torch.sigmoid(gate)

    model = nn.Sequential(EpsOutsideRMSNorm(), nn.Linear(8, 8))
    gated = GatedRMSNorm()
    for m in (model, gated):
        with pytest.warns(cu.AttributionWarning, match=r"matches the module map's row for rms_norm but"):
            with canonize(m) as done:
                assert done == {}
                assert "forward" not in m[0].__dict__ if isinstance(m, nn.Sequential) else "forward" not in m.__dict__


def _snapshot(model: nn.Module):
    return [
        (
            name,
            type(m),
            dict(m.__dict__.get("_forward_hooks", {})),
            dict(m.__dict__.get("_forward_pre_hooks", {})),
            {k: v for k, v in m.__dict__.items() if not k.startswith("_")},
        )
        for name, m in model.named_modules()
    ], {k: v.clone() for k, v in model.state_dict().items()}


def _assert_same(before, after):
    mods_b, state_b = before
    mods_a, state_a = after
    assert mods_a == mods_b
    assert state_a.keys() == state_b.keys()
    for k in state_b:
        assert torch.equal(state_a[k], state_b[k]), k


@pytest.mark.parametrize("raises", [False, True])
def test_no_trace_on_the_model_also_when_the_block_raises(raises):
    model = llama()
    norm = model.model.norm
    seen = []
    handle = norm.register_forward_hook(lambda mod, i, o: seen.append(type(mod.__dict__.get("forward")).__name__))
    before = _snapshot(model)
    forward_before = norm.forward
    ids = torch.tensor([[1, 4, 6, 8]])
    try:
        with canonize(model) as done:
            assert "model.norm" in done and done["model.norm"] == "rms_norm"
            assert "model.layers.0.input_layernorm" in done
            model(ids)
            assert seen == ["_CanonicalForward"]  # the user's hook ran on the canonized module
            with canonize(model) as inner:  # nested: left to the outer block
                assert inner == {}
            assert type(norm.__dict__["forward"]).__name__ == "_CanonicalForward"
            if raises:
                raise RuntimeError("boom")
    except RuntimeError:
        assert raises
    _assert_same(before, _snapshot(model))
    assert "forward" not in norm.__dict__ and norm.forward == forward_before
    handle.remove()


def test_an_instance_forward_the_user_set_is_restored():
    act = transformers.activations.NewGELUActivation()
    mine = lambda x: 2 * x  # noqa: E731
    act.forward = mine
    with pytest.warns(cu.AttributionWarning, match="its forward was replaced on the instance"):
        with canonize(nn.Sequential(act)) as done:
            assert done == {}
    assert act.__dict__["forward"] is mine


def test_canonize_needs_a_module():
    with pytest.raises(TypeError, match="pass the model itself"):
        with canonize(lambda x: x):  # type: ignore[arg-type]
            pass


@pytest.mark.parametrize("make", [gpt2, llama, t5], ids=["gpt2", "llama", "t5"])
def test_the_model_computes_the_same_inside(make):
    model = make()
    ids = torch.tensor([[1, 4, 6, 8, 9]])
    kwargs = {"decoder_input_ids": torch.tensor([[3, 4, 7]])} if make is t5 else {}
    with torch.no_grad():
        plain = model(ids, **kwargs).logits
        with canonize(model) as done:
            assert done
            inside = model(ids, **kwargs).logits
    # GPT-2: the same function in float64; LLaMA / T5 norms round through float32 unless canonized
    tol = 1e-13 if make is gpt2 else 1e-6
    assert (plain - inside).abs().max() <= tol * plain.abs().max()


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lrp_gate_conserves_the_logit_once_canonized(arch):
    model = zero_biases({"gpt2": gpt2, "llama": llama}[arch]())
    f = LastLogits(model)
    layers = [model.transformer.wte, model.transformer.wpe] if arch == "gpt2" else [model.model.embed_tokens]
    ids = torch.tensor([[1, 4, 6, 8, 9, 4, 10, 5, 7]])
    with canonize(model):
        with torch.no_grad():
            out = f(ids)
        t = int(out.argmax())
        with warnings.catch_warnings():
            warnings.simplefilter("error", cu.AttributionWarning)  # canonized: no "epsilon-LRP through rsqrt"
            attrs = cu.LayerEpsilonLRP(f, layers, epsilon=1e-12, products="gate").attribute(ids, target=t)
    total = sum(a.sum() for a in attrs)
    # against the logit of the model as it runs in the block (float64 throughout)
    assert abs(total - out[0, t]) <= 1e-9 * abs(out[0, t]), (float(total), float(out[0, t]))
