# %% [markdown]
# # Explaining language models
#
# A trained character-level GPT-2 (an unmodified Hugging Face `GPT2LMHeadModel`, trained on
# the standard library's `help()` prose and cached) explained the ways Captum users explain
# language models:
#
# 1. Captum's LLM API with any layer method: `captum_unified.LLMGradientAttribution`
#    around this package's layer DeepLIFT, with convergence deltas;
# 2. the same DeepLIFT called directly on the token embeddings, checked against forward passes;
# 3. Captum's perturbation route (`LLMAttribution(FeatureAblation)`) beside it;
# 4. the module map (`captum_unified.canonizers`): GELU and RMS norms as one op each for LRP;
# 5. the inseq route, if inseq is installed.
#
# `python tutorials/04_language_models.py` trains the models on first use (a few minutes on
# one CPU core for the full sizes; `CAPTUM_UNIFIED_QUICK=1`: the small ones, seconds) and
# caches them under `$CAPTUM_UNIFIED_CACHE`. The measured comparison of the methods on these
# models is `captum-unified reproduce transformers` (see *Explaining language models* in the
# docs).

# %%
import contextlib
import os
import warnings

import matplotlib

matplotlib.use("Agg")  # no display: the figures are written to files
import torch
from captum.attr import FeatureAblation, LLMAttribution, TextTokenInput

import captum_unified as cu
from captum_unified.canonizers import canonize
from captum_unified.text import load_or_train_char_lm

QUICK = os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"
SIZE = "quick" if QUICK else "full"
FIGURES = "tutorial04_figures"
os.makedirs(FIGURES, exist_ok=True)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")

gpt2 = load_or_train_char_lm("gpt2", SIZE)
model, tokenizer = gpt2.model, gpt2.tokenizer
m = gpt2.metrics
print(
    f"char GPT-2 ({SIZE}): validation loss {m['val_loss']:.3f} nats per character "
    f"(bigram baseline {m['bigram_loss']:.3f})"
)

# %% [markdown]
# ## 1. Captum's LLM API with this package's layer DeepLIFT
#
# Captum's own `LLMGradientAttribution` accepts only three Captum layer methods. The
# subclass `cu.LLMGradientAttribution` takes any layer attribution on the token-embedding
# layer and returns Captum's `LLMAttributionResult` (so Captum's plots work), and with
# `return_convergence_delta=True` one delta per generated token. Each row explains
# $\log p(y_k \mid x, y_{<k})$; the baseline is Captum's, every prompt token replaced by
# token id 0, the characters generated before kept.

# %%
prompt, target = 'The "if" statement is', " used"
llm_attr = cu.LLMGradientAttribution(cu.LayerDeepLiftRescale(model, model.get_input_embeddings()), tokenizer)
inp = TextTokenInput(prompt, tokenizer, skip_tokens=[tokenizer.bos_token])
result, deltas = llm_attr.attribute(inp, target=target, return_convergence_delta=True)
print("prompt tokens:", len(result.input_tokens), " generated:", result.output_tokens)
print("DeepLIFT deltas per generated token:", [f"{float(d):.1e}" for d in deltas])
fig, ax = result.plot_token_attr()
fig.savefig(f"{FIGURES}/token_attr.png", dpi=90, bbox_inches="tight")

# %% [markdown]
# The deltas are the method's own bookkeeping. Completeness is checked independently:
# each row's sum against the change of $\log p$ measured with two forward passes of the
# model (the prompt, and the prompt with every attributed character replaced by id 0).

# %%
ids = torch.tensor([tokenizer.encode(prompt)])
base = ids.clone()
base[:, 1:] = 0  # <bos> is skipped (not attributed): it stays
out_ids = tokenizer.encode(target, add_special_tokens=False)
worst = 0.0
with torch.no_grad():
    for k, token in enumerate(out_ids):
        done = torch.tensor([out_ids[:k]], dtype=torch.long)

        def log_p(x, done=done, token=token):
            return torch.log_softmax(model(torch.cat([x, done], 1)).logits[0, -1], -1)[token]

        change = float(log_p(ids) - log_p(base))
        worst = max(worst, abs(float(result.token_attr[k].sum()) - change))
print(f"largest |row sum - (log p(x) - log p(baseline))| over {len(out_ids)} tokens: {worst:.1e}")
assert worst < 1e-4

# %% [markdown]
# ## 2. Layer DeepLIFT on the token embeddings, directly
#
# Without the wrapper: a function of the ids returning the next character's log-probability,
# and `LayerDeepLiftRescale` on GPT-2's token-embedding layer (the baseline ids give the
# baseline embeddings; the position embeddings are the same in both passes).


# %%
class NextCharLogProb(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, ids):
        return torch.log_softmax(self.lm(ids).logits[:, -1], dim=-1)


f = NextCharLogProb(model)
text = "The value is stored in the"
x = torch.tensor([tokenizer.encode(text)])
x_base = torch.zeros_like(x)
with torch.no_grad():
    t = int(f(x).argmax())
dl = cu.LayerDeepLiftRescale(f, model.get_input_embeddings())
attr, delta = dl.attribute(x, baselines=x_base, target=t, return_convergence_delta=True)
with torch.no_grad():
    change = f(x)[0, t] - f(x_base)[0, t]
print(
    f"predicted next character {tokenizer.decode([t])!r}: sum of attributions {float(attr.sum()):+.6f}, "
    f"forward passes {float(change):+.6f}, delta {float(delta.abs().max()):.1e}"
)
assert abs(float(attr.sum() - change)) < 1e-4
top = attr.sum(-1)[0].abs().topk(3).indices.tolist()
print("most relevant characters:", [(i, tokenizer.decode([int(x[0, i])])) for i in sorted(top)])

# %% [markdown]
# ## 3. Captum's perturbation route beside it
#
# Captum's `LLMAttribution(FeatureAblation)` removes one character at a time. With
# transformers 5 it needs `use_cached_outputs=False` (Captum 0.9's cached route does not
# advance transformers 5's cache positions).

# %%
fa = LLMAttribution(FeatureAblation(model), tokenizer)
fa_result = fa.attribute(inp, target=target, use_cached_outputs=False)
corr = torch.corrcoef(torch.stack([fa_result.token_attr.flatten(), result.token_attr.flatten().float()]))[0, 1]
print(f"FeatureAblation vs DeepLIFT token attributions: Pearson {float(corr):.2f}")

# %% [markdown]
# ## 4. The module map: GELU and RMS norms as one op each
#
# GPT-2's `NewGELUActivation` spells GELU out as `0.5 * x * (1 + tanh(...))`; LLaMA's
# `LlamaRMSNorm` is `x * rsqrt(mean(x^2) + eps)`. DeepLIFT is exact through either form,
# but epsilon-LRP's rules mean one nonlinearity and a constant norm scale. Inside
# `with canonize(model):` the modules of `captum_unified.canonizers.MODULE_MAP` compute the
# fused `F.gelu` / `F.rms_norm`, and nothing is left behind on exit. On the trained LLaMA
# twin, epsilon-LRP with the `"gate"` product policy, explaining the predicted character's
# logit, as shipped and inside the block:

# %%
from captum_unified.canonizers import MODULE_MAP  # noqa: E402

print("module map:", ", ".join(sorted(MODULE_MAP)))
llama = load_or_train_char_lm("llama", SIZE).model


class NextCharLogit(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def forward(self, ids):
        return self.lm(ids).logits[:, -1]


g = NextCharLogit(llama)
with torch.no_grad():
    logits = g(x)
t = int(logits.argmax())
lrp = cu.LayerEpsilonLRP(g, llama.get_input_embeddings(), products="gate")
for canonized in (False, True):
    with canonize(llama) if canonized else contextlib.nullcontext(), warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = lrp.attribute(x, target=t)
    said = sorted({str(m.message).split(";")[0][:60] for m in w if issubclass(m.category, cu.AttributionWarning)})
    rel = abs(float(r.sum()) / float(logits[0, t]) - 1)
    print(
        f"{'canonized' if canonized else 'as shipped':10}: |sum R / logit - 1| = {rel:.1e}; warnings: {said or 'none'}"
    )
modules = {type(mod).__name__ for mod in llama.modules()}
print(
    "after the block the model's modules compute as shipped:",
    "LlamaRMSNorm" in modules and all("forward" not in vars(mod) for mod in llama.modules()),
)

# %% [markdown]
# LLaMA has no biases and rotary positions (nothing added to the token embeddings), so the
# relevance of the token embeddings is all of the logit (conservation); the shipped
# `LlamaRMSNorm` makes the backend apply LRP through `rsqrt` (the warning), inside the block
# it is one `F.rms_norm`. The *Explaining language models* page shows the same on bias-free
# GPT-2 and LLaMA in float64.
#
# ## 5. The inseq route
#
# Importing `captum_unified.integrations.inseq` registers this package's methods with inseq
# (`unified_deeplift`, `unified_lrp`, `unified_lrp_gate`, ..., and their `unified_layer_*`
# versions). inseq is an optional extra: this cell is skipped without it.

# %%
try:
    import inseq
except ImportError:
    inseq = None
    print("inseq is not installed: pip install 'captum_unified[inseq]'")
if inseq is not None:
    import captum_unified.integrations.inseq  # noqa: F401  (registers the methods)

    names = sorted(n for n in inseq.list_feature_attribution_methods() if n.startswith("unified_"))
    print("inseq methods:", ", ".join(names))
    im = inseq.load_model(model, "unified_layer_deeplift", tokenizer=tokenizer)
    out = im.attribute(
        prompt, prompt + target, show_progress=False, attribution_args={"return_convergence_delta": True}
    )
    seq = out.sequence_attributions[0]
    d = seq.step_scores["deltas"].abs().max()
    print(f"inseq unified_layer_deeplift: {len(out.sequence_attributions)} sequence, largest |delta| {float(d):.1e}")

# %% [markdown]
# ## Where to go next
#
# `captum-unified reproduce transformers` runs DeepLIFT, LRP (both product policies),
# Gradient*Input, Captum's LayerIntegratedGradients (16, 64, 256 steps) and FeatureAblation
# on the char GPT-2, the LLaMA twin and a sentiment BERT, and measures completeness, token
# deletion, Sensitivity-n, the rank correlation with known word valences and the time as a
# multiple of a plain gradient.

# %%
print(f"1 figures written to {FIGURES}/ (no display)")
