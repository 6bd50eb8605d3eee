"""DeepLIFT's completeness on random-initialised transformers models, measured
from forward passes of the untouched models.

Two-layer configs of width 32 (language models: 7 token embeddings, the log
probability of token 2 at the last position; classifiers: logit 2; vision
models: 3-channel images), float32 and float64, a zero and a ``500 * randn``
baseline. Prints one row per (model, dtype, baseline): whether the
attributions are finite, ``max |sum(attr) - (f(x) - f(b))| / max |f(x) - f(b)|``
and ``sum |attr| / sum |f(x) - f(b)|``. Needs transformers (the test extra).

Run: ``python3 scripts/zoo_completeness.py [model ...]`` (default: all).
"""

from __future__ import annotations

import sys
import warnings

import torch
import transformers as T

import captum_unified as cu

warnings.simplefilter("ignore")
V = 40
#: the shared sizes: two layers of width 32 (decoders with grouped-query attention where they have it)
DECODER = {"vocab_size": V, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2}
HEADS = {"num_attention_heads": 4, "max_position_embeddings": 64}
GQA = {**DECODER, **HEADS, "num_key_value_heads": 2}
ENCODER = {**DECODER, "num_attention_heads": 4, "num_labels": 3}
VISION = {
    "image_size": 16,
    "patch_size": 4,
    "num_channels": 3,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "num_labels": 5,
}


def cfgs():
    """(name, model builder) for every architecture of the run."""
    yield "gpt2", lambda: T.GPT2LMHeadModel(T.GPT2Config(vocab_size=V, n_embd=32, n_layer=2, n_head=4, n_positions=64))
    yield "llama", lambda: T.LlamaForCausalLM(T.LlamaConfig(**GQA))
    yield "mistral", lambda: T.MistralForCausalLM(T.MistralConfig(**GQA))
    yield "qwen2", lambda: T.Qwen2ForCausalLM(T.Qwen2Config(**GQA))
    yield "gemma", lambda: T.GemmaForCausalLM(T.GemmaConfig(**GQA, head_dim=8))
    yield "phi", lambda: T.PhiForCausalLM(T.PhiConfig(**DECODER, **HEADS))
    yield "gptneox", lambda: T.GPTNeoXForCausalLM(T.GPTNeoXConfig(**DECODER, **HEADS))
    opt = {"ffn_dim": 64, "word_embed_proj_dim": 32, "num_hidden_layers": 2, **HEADS}
    yield "opt", lambda: T.OPTForCausalLM(T.OPTConfig(vocab_size=V, hidden_size=32, **opt))
    yield "bert", lambda: T.BertForSequenceClassification(T.BertConfig(**ENCODER))
    distil = {"vocab_size": V, "dim": 32, "hidden_dim": 64, "n_layers": 2, "n_heads": 4, "num_labels": 3}
    yield "distilbert", lambda: T.DistilBertForSequenceClassification(T.DistilBertConfig(**distil))
    roberta = {**ENCODER, "max_position_embeddings": 70}
    yield "roberta", lambda: T.RobertaForSequenceClassification(T.RobertaConfig(**roberta))
    yield "electra", lambda: T.ElectraForSequenceClassification(T.ElectraConfig(**ENCODER, embedding_size=32))
    t5 = {"vocab_size": V, "d_model": 32, "d_kv": 8, "d_ff": 64, "num_layers": 2, "num_heads": 4}
    yield "t5enc", lambda: T.T5EncoderModel(T.T5Config(**t5))
    yield "vit", lambda: T.ViTForImageClassification(T.ViTConfig(**VISION))
    yield "deit", lambda: T.DeiTForImageClassification(T.DeiTConfig(**VISION))
    swin = {"image_size": 32, "patch_size": 4, "num_channels": 3, "embed_dim": 16, "window_size": 4}
    yield (
        "swin",
        lambda: T.SwinForImageClassification(T.SwinConfig(**swin, depths=[1, 1], num_heads=[2, 2], num_labels=5)),
    )
    stages = {"num_channels": 3, "hidden_sizes": [8, 16], "depths": [1, 1], "num_labels": 5}
    yield "convnext", lambda: T.ConvNextForImageClassification(T.ConvNextConfig(**stages, num_stages=2))
    yield "resnet", lambda: T.ResNetForImageClassification(T.ResNetConfig(**stages, embedding_size=8))


class Wrap(torch.nn.Module):
    def __init__(self, m, kind):
        super().__init__()
        self.m, self.kind = m, kind

    def forward(self, x):
        if self.kind == "img":
            return self.m(pixel_values=x).logits
        out = self.m(inputs_embeds=x)
        if hasattr(out, "logits"):
            lg = out.logits
            return torch.log_softmax(lg[:, -1], -1) if lg.dim() == 3 else lg
        return out.last_hidden_state[:, -1]


def main() -> None:
    want = set(sys.argv[1:])
    for name, make in cfgs():
        if want and name not in want:
            continue
        try:
            torch.manual_seed(0)
            m = make().eval()
            img = name in ("vit", "deit", "swin", "convnext", "resnet")
            for dt in (torch.float32, torch.float64):
                mm = Wrap(m.to(dt), "img" if img else "txt")
                g = torch.Generator().manual_seed(1)
                if img:
                    side = 16 if name in ("vit", "deit") else 32
                    x = torch.randn(2, 3, side, side, generator=g).to(dt)
                else:
                    x = (torch.randn(2, 7, 32, generator=g) * 0.5).to(dt)
                for bname, b in (
                    ("zero", torch.zeros_like(x)),
                    ("500randn", 500 * torch.randn(x.shape, generator=g).to(dt)),
                ):
                    with torch.no_grad():
                        d = mm(x)[:, 2] - mm(b)[:, 2]
                    a = cu.DeepLiftRescale(mm).attribute(x, baselines=b, target=2)
                    fin = bool(torch.isfinite(a).all())
                    err = float((a.flatten(1).sum(1) - d).abs().max() / d.abs().max().clamp_min(1e-30))
                    size = float(a.abs().sum() / d.abs().sum())
                    row = f"{name:10s} {str(dt)[6:]:8s} {bname:9s} finite={fin} completeness={err:.2e}"
                    print(f"{row} |attr|/|df|={size:.2f}", flush=True)
        except Exception as e:
            print(f"{name:10s} ERROR {type(e).__name__}: {str(e)[:300]}", flush=True)


if __name__ == "__main__":
    main()
