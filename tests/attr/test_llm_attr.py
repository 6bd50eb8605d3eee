"""captum_unified.LLMGradientAttribution: Captum's LLM wrapper for every layer attribution.

Completeness is measured from forward passes of the untouched Hugging Face
model: for each generated token, the model's log-probability (or logit) of it
with the prompt, minus the same with every prompt token replaced by the
baseline token (Captum's baseline), the already generated tokens kept.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest
import torch
from captum.attr import LLMAttributionResult, TextTokenInput
from hf_helpers import gpt2, llama, tokenizer, zero_biases

import captum_unified as cu
from captum_unified.canonizers import canonize

PROMPT = "the cat sat on the"
TARGET = "mat and ran"

pytestmark = pytest.mark.filterwarnings("ignore::captum_unified.AttributionWarning")


def explained_change(model, tok, explain: str, baseline_id: int = 0) -> torch.Tensor:
    """``S_k(x) - S_k(baseline)`` for each target token, from plain forward passes."""
    ids = tok.encode(PROMPT, return_tensors="pt")
    base = torch.full_like(ids, baseline_id)
    target = tok.encode(TARGET, add_special_tokens=False)
    out = []
    with torch.no_grad():
        for k, t in enumerate(target):
            prefix = torch.tensor([target[:k]], dtype=ids.dtype)

            def s(x, k=k, t=t, prefix=prefix):
                z = model(torch.cat([x, prefix], 1)).logits[0, -1]
                return (torch.log_softmax(z, -1) if explain == "log_prob" else z)[t]

            out.append(s(ids) - s(base))
    return torch.stack(out)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
@pytest.mark.parametrize("explain", ["log_prob", "logit"])
def test_deeplift_rows_sum_to_the_change_of_the_explained_quantity(arch, explain):
    tok = tokenizer()
    model = {"gpt2": gpt2, "llama": llama}[arch]()
    llm = cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tok, explain=explain)
    # LlamaRMSNorm rounds through float32 also for float64 inputs; canonized, the
    # model computes F.rms_norm in float64 (the forward passes below included)
    with canonize(model):
        ref = explained_change(model, tok, explain)
        result, deltas = llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET, return_convergence_delta=True)
    assert isinstance(result, LLMAttributionResult)
    assert result.token_attr.shape == (3, len(tok.encode(PROMPT)))
    rows = result.token_attr.sum(1)
    scale = ref.abs().max()
    assert (rows - ref).abs().max() <= 1e-10 * scale + 1e-14, (rows, ref)
    # the wrapped method's delta: sum of attributions - change (the generated tokens' share is 0)
    assert deltas.shape == (3,)
    assert (deltas - (rows - ref)).abs().max() <= 1e-10 * scale + 1e-14
    assert torch.allclose(result.seq_attr, result.token_attr.sum(0))


def test_llama_without_canonizers_is_complete_to_its_own_float32_rounding():
    # The untouched LlamaRMSNorm rounds through float32: rows agree with the
    # model's own forward passes to float32 precision, not float64's.
    tok = tokenizer()
    model = llama()
    llm = cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tok)
    result = llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET)
    ref = explained_change(model, tok, "log_prob")
    assert (result.token_attr.sum(1) - ref).abs().max() <= 1e-5 * ref.abs().max()


def test_log_prob_route_equals_captums_own_wrapper():
    # Captum's LLMGradientAttribution accepts LayerIntegratedGradients: with
    # explain="log_prob" our forward must explain exactly what Captum's does.
    from captum.attr import LayerIntegratedGradients
    from captum.attr import LLMGradientAttribution as CaptumLLM

    tok = tokenizer()
    model = gpt2()
    emb = model.get_input_embeddings()
    inp = TextTokenInput(PROMPT, tok)
    theirs = CaptumLLM(LayerIntegratedGradients(model, emb), tok).attribute(inp, target=TARGET, n_steps=16)
    ours = cu.LLMGradientAttribution(LayerIntegratedGradients(model, emb), tok).attribute(
        inp, target=TARGET, n_steps=16
    )
    torch.testing.assert_close(ours.token_attr, theirs.token_attr, rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(ours.seq_attr, theirs.seq_attr, rtol=1e-12, atol=1e-15)
    assert ours.input_tokens == theirs.input_tokens and ours.output_tokens == theirs.output_tokens


def test_captums_layer_methods_work_and_their_deltas_match_forward_passes():
    from captum.attr import LayerDeepLift, LayerGradientXActivation, LayerIntegratedGradients

    tok = tokenizer()
    model = gpt2()
    emb = model.get_input_embeddings()
    inp = TextTokenInput(PROMPT, tok)
    ref = explained_change(model, tok, "logit")
    # Captum's LayerDeepLift runs model.forward directly (not forward_func): the
    # wrapper points it at the LLM forward too. Its delta is its own
    # incompleteness, which must equal what the forward passes say.
    res, deltas = cu.LLMGradientAttribution(LayerDeepLift(model, emb), tok, explain="logit").attribute(
        inp, target=TARGET, return_convergence_delta=True
    )
    assert (deltas - (res.token_attr.sum(1) - ref)).abs().max() < 1e-10
    # many-step IG is complete
    res, deltas = cu.LLMGradientAttribution(LayerIntegratedGradients(model, emb), tok, explain="logit").attribute(
        inp, target=TARGET, n_steps=256, return_convergence_delta=True
    )
    assert (res.token_attr.sum(1) - ref).abs().max() < 1e-6 * ref.abs().max()
    # Captum's Gradient*Activation and ours agree
    a = cu.LLMGradientAttribution(LayerGradientXActivation(model, emb), tok).attribute(inp, target=TARGET)
    b = cu.LLMGradientAttribution(cu.LayerGradientXInput(model, emb), tok).attribute(inp, target=TARGET)
    torch.testing.assert_close(a.token_attr, b.token_attr, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_lrp_gate_conserves_the_logit_on_a_bias_free_canonized_model(arch):
    # One generated token: the row covers every position the layer sees. LRP's
    # conservation is about the logit (sum R = z for a bias-free model).
    tok = tokenizer()
    model = zero_biases({"gpt2": gpt2, "llama": llama}[arch]())
    layer = model.get_input_embeddings()
    inp = TextTokenInput(PROMPT, tok)
    target = tok.encode("mat", add_special_tokens=False)[0]
    ids = tok.encode(PROMPT, return_tensors="pt")
    if arch == "gpt2":  # relevance would also flow into the position embeddings: none here
        model.transformer.wpe.weight.data.zero_()
    method = cu.LayerEpsilonLRP(model, layer, epsilon=1e-12, products="gate")
    with canonize(model):
        with torch.no_grad():
            logit = model(ids).logits[0, -1, target]
        res, delta = cu.LLMGradientAttribution(method, tok, explain="logit").attribute(
            inp, target="mat", return_convergence_delta=True
        )
    assert abs(res.token_attr.sum() - logit) <= 1e-9 * abs(logit)
    assert abs(delta) <= 1e-9 * abs(logit)  # LayerEpsilonLRP's own delta: S(x) - sum R


def test_result_plots_with_captums_plotting():
    tok = tokenizer()
    model = gpt2()
    llm = cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tok)
    result = llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET)
    fig, ax = result.plot_token_attr()
    assert [t.get_text() for t in ax.get_yticklabels()] == result.output_tokens
    plt.close(fig)
    fig, ax = result.plot_seq_attr()
    plt.close(fig)


def test_target_generated_by_the_model():
    tok = tokenizer()
    model = gpt2()
    llm = cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tok)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # transformers' generation-config notes
        result = llm.attribute(TextTokenInput(PROMPT, tok), gen_args={"max_new_tokens": 2, "do_sample": False})
    assert result.token_attr.shape == (2, len(tok.encode(PROMPT)))


def test_the_users_method_and_the_wrapper_are_unchanged_by_a_call():
    tok = tokenizer()
    model = gpt2()
    method = cu.LayerDeepLiftRescale(model, model.get_input_embeddings())
    llm = cu.LLMGradientAttribution(method, tok, explain="logit")
    before = dict(vars(llm))
    llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET, return_convergence_delta=True)
    assert method.forward_func is model  # Captum's wrapper works on a copy
    assert dict(vars(llm)) == before
    again = llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET)  # no delta: the plain result
    assert isinstance(again, LLMAttributionResult)


def test_bad_arguments_say_what_to_do():
    tok = tokenizer()
    model = gpt2()
    emb = model.get_input_embeddings()
    with pytest.raises(TypeError, match="layer attribution on the model's token-embedding layer"):
        cu.LLMGradientAttribution(cu.DeepLiftRescale(model), tok)
    with pytest.raises(ValueError, match="one layer"):
        cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, [emb, model.transformer.wpe]), tok)
    with pytest.raises(ValueError, match="explain must be one of"):
        cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, emb), tok, explain="prob")
    llm = cu.LLMGradientAttribution(cu.LayerGradientXInput(model, emb), tok)
    with pytest.raises(ValueError, match="has no convergence delta"):
        llm.attribute(TextTokenInput(PROMPT, tok), target=TARGET, return_convergence_delta=True)
