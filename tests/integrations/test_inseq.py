"""captum_unified.integrations.inseq: the package's methods inside inseq.

Completeness is measured from plain forward passes of the Hugging Face model:
inseq's default attributed function (the target token's probability) with the
input ids minus the same with inseq's baseline ids (UNK), per generation step.
"""

from __future__ import annotations

import warnings

import pytest
import torch

inseq = pytest.importorskip("inseq", reason="needs inseq (pip install 'captum_unified[inseq]'; in the dev/test extras)")
from hf_helpers import bart, gpt2, t5, tokenizer, zero_biases

from captum_unified.canonizers import canonize

NAMES = [
    "unified_deeplift",
    "unified_lrp",
    "unified_lrp_gate",
    "unified_lrp_gradient",
    "unified_gradient_x_input",
    "unified_layer_deeplift",
    "unified_layer_lrp",
    "unified_layer_lrp_gate",
    "unified_layer_lrp_gradient",
    "unified_layer_gradient_x_input",
]
PROMPT, TEXT = "the cat sat", "the cat sat on the mat"
SOURCE, TARGET = "the cat sat", "the dog ran"
QUIET = {"show_progress": False}

pytestmark = pytest.mark.filterwarnings("ignore")  # transformers' and inseq's notes on tiny random models


def _registers():
    import captum_unified.integrations.inseq as integration

    return integration


def test_importing_registers_every_method():
    _registers()
    available = set(inseq.list_feature_attribution_methods())
    assert set(NAMES) <= available
    assert "unifiedattribution" not in {n.lower() for n in available}  # the base is not a method


def _decoder_only_reference(im, model, n_steps):
    """Per step: p(token | prefix) - p(token | baseline prefix), plain forward passes."""
    enc = im.encode(TEXT, return_baseline=True)
    ids, base = enc.input_ids, enc.baseline_ids
    start = ids.shape[1] - n_steps
    out = []
    with torch.no_grad():
        for k in range(n_steps):
            n = start + k

            def p(x, n=n):
                return torch.softmax(model(x[:, :n]).logits[0, -1], -1)[ids[0, n]]

            out.append(p(ids) - p(base))
    return torch.stack(out)


@pytest.mark.parametrize("method", ["unified_deeplift", "unified_layer_deeplift"])
def test_deeplift_is_complete_on_a_decoder_only_model(method):
    _registers()
    model = gpt2()
    im = inseq.load_model(model, method, tokenizer=tokenizer())
    out = im.attribute(PROMPT, TEXT, attribution_args={"return_convergence_delta": True}, **QUIET)
    sa = out.sequence_attributions[0]
    rows = sa.target_attributions.nansum((0, 2)).double()  # (prefix, steps, hidden) -> steps
    ref = _decoder_only_reference(im, model, rows.shape[0])
    # inseq stores the attributions in float32
    assert (rows - ref).abs().max() <= 1e-6 * ref.abs().max(), (rows, ref)
    assert sa.step_scores["deltas"].abs().max() <= 1e-12


def test_inseqs_own_layer_route_compares_the_input_with_itself():
    # What LayerRouteForward fixes (docs/upstream/inseq_layer_baselines.md). If
    # this fails, inseq has fixed its layer route: update that write-up and the
    # integration's docstring.
    model = gpt2()
    im = inseq.load_model(model, "layer_integrated_gradients", tokenizer=tokenizer())
    out = im.attribute(PROMPT, TEXT, **QUIET)
    assert torch.all(out.sequence_attributions[0].target_attributions.nan_to_num() == 0)


def test_the_fix_makes_captums_layer_ig_complete_inside_inseq():
    from captum.attr import LayerIntegratedGradients

    integration = _registers()
    model = gpt2()
    im = inseq.load_model(model, "unified_layer_deeplift", tokenizer=tokenizer())
    method = im.attribution_method
    method.method = LayerIntegratedGradients(integration.LayerRouteForward(im), method.target_layer)
    out = im.attribute(PROMPT, TEXT, attribution_args={"n_steps": 128}, **QUIET)
    rows = out.sequence_attributions[0].target_attributions.nansum((0, 2)).double()
    ref = _decoder_only_reference(im, model, rows.shape[0])
    assert (rows - ref).abs().max() <= 1e-4 * ref.abs().max()


def _encoder_decoder_reference(im, model, n_steps, attribute_target):
    src = im.encode(SOURCE, return_baseline=True, as_targets=False)
    tgt = im.encode(TARGET, return_baseline=True, as_targets=True)
    out = []
    with torch.no_grad():
        for k in range(n_steps):

            def p(s, t, k=k):
                logits = model(input_ids=s, decoder_input_ids=t[:, : k + 1]).logits
                return torch.softmax(logits[0, -1], -1)[tgt.input_ids[0, k + 1]]

            base_t = tgt.baseline_ids if attribute_target else tgt.input_ids
            out.append(p(src.input_ids, tgt.input_ids) - p(src.baseline_ids, base_t))
    return torch.stack(out)


@pytest.mark.parametrize("make", [t5, bart], ids=["t5", "bart"])
@pytest.mark.parametrize(
    "method,attribute_target",
    [("unified_deeplift", False), ("unified_deeplift", True), ("unified_layer_deeplift", False)],
)
def test_deeplift_is_complete_on_encoder_decoder_models(make, method, attribute_target):
    _registers()
    model = make()
    im = inseq.load_model(model, method, tokenizer=tokenizer(bos=False))
    with canonize(model):  # T5LayerNorm computes its variance in float32; canonized: float64
        out = im.attribute(
            SOURCE,
            TARGET,
            attribute_target=attribute_target,
            attribution_args={"return_convergence_delta": True},
            **QUIET,
        )
        sa = out.sequence_attributions[0]
        rows = sa.source_attributions.nansum((0, 2)).double()
        if attribute_target:
            rows = rows + sa.target_attributions.nansum((0, 2)).double()
        ref = _encoder_decoder_reference(im, model, rows.shape[0], attribute_target)
    assert (rows - ref).abs().max() <= 1e-6 * ref.abs().max(), (rows, ref)
    # float64 rounding of the norms' secant rule (its exact rank-one correction): 2e-10 measured on T5,
    # within the 1e-8 relative that DeepLIFT's completeness asks in float64
    assert sa.step_scores["deltas"].abs().max() <= 1e-8 * max(1.0, float(ref.abs().max()))


@pytest.mark.parametrize("name,products", [("lrp", "uniform"), ("lrp_gate", "gate"), ("lrp_gradient", "gradient")])
@pytest.mark.parametrize("layer", [False, True], ids=["embeddings", "layer"])
def test_each_lrp_name_is_its_product_policy_and_kwargs_reach_the_method(name, products, layer):
    _registers()
    full = f"unified_{'layer_' if layer else ''}{name}"
    im = inseq.load_model(gpt2(), full, tokenizer=tokenizer(), epsilon=1e-3)
    rule = im.attribution_method.method.rule
    assert rule.products == products and rule.epsilon == 1e-3
    out = im.attribute(PROMPT, TEXT, **QUIET)
    assert torch.isfinite(out.sequence_attributions[0].target_attributions.nan_to_num()).all()


def test_lrp_gate_conserves_the_logit_inside_inseq():
    _registers()
    model = zero_biases(gpt2())
    model.transformer.wpe.weight.data.zero_()  # relevance would also flow into the position embeddings
    tok = tokenizer()
    im = inseq.load_model(model, "unified_lrp_gate", tokenizer=tok, epsilon=1e-12)
    with canonize(model):
        out = im.attribute(PROMPT, TEXT, attributed_fn="logit", step_scores=["logit"], **QUIET)
    sa = out.sequence_attributions[0]
    rows = sa.target_attributions.nansum((0, 2)).double()
    logits = sa.step_scores["logit"].double()
    assert (rows - logits).abs().max() <= 1e-5 * logits.abs().max(), (rows, logits)


def test_gradient_x_input_layer_and_embeddings_agree():
    _registers()
    model = gpt2()
    tok = tokenizer()
    a = inseq.load_model(model, "unified_gradient_x_input", tokenizer=tok).attribute(PROMPT, TEXT, **QUIET)
    b = inseq.load_model(model, "unified_layer_gradient_x_input", tokenizer=tok).attribute(PROMPT, TEXT, **QUIET)
    ta = a.sequence_attributions[0].target_attributions.nan_to_num()
    tb = b.sequence_attributions[0].target_attributions.nan_to_num()
    torch.testing.assert_close(ta, tb, rtol=1e-5, atol=1e-9)


def test_nothing_of_inseq_is_patched():
    from inseq.models.decoder_only import DecoderOnlyAttributionModel, DecoderOnlyInputFormatter
    from inseq.models.encoder_decoder import EncoderDecoderAttributionModel, EncoderDecoderInputFormatter

    owners = (DecoderOnlyAttributionModel, DecoderOnlyInputFormatter, EncoderDecoderAttributionModel)
    owners += (EncoderDecoderInputFormatter,)
    before = [dict(vars(c)) for c in owners]
    _registers()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        im = inseq.load_model(gpt2(), "unified_layer_deeplift", tokenizer=tokenizer())
        im.attribute(PROMPT, TEXT, **QUIET)
    assert [dict(vars(c)) for c in owners] == before
