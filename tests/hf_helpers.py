"""Tiny Hugging Face language models and a word-level tokenizer, built in code.

Nothing is downloaded: the tokenizer is a ``tokenizers`` word-level model over
a fixed vocabulary, the models are random-initialised from configs (width 32,
two layers). Tests that use them skip with the reason when transformers is
missing (it comes with the ``dev`` / ``test`` extras).
"""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers", reason="needs transformers (the dev / test extras)")
tokenizers = pytest.importorskip("tokenizers", reason="needs tokenizers (comes with transformers)")

WORDS = "the a cat dog sat on mat and ran to house big small red blue".split()
VOCAB = {"<unk>": 0, "<s>": 1, "</s>": 2, "<pad>": 3, **{w: i + 4 for i, w in enumerate(WORDS)}}
SPECIAL = {"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 3}


def tokenizer(bos: bool = True):
    """A whitespace word-level tokenizer over :data:`VOCAB`; ``bos`` prepends ``<s>``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tk = Tokenizer(models.WordLevel(VOCAB, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def gpt2(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    config = transformers.GPT2Config(vocab_size=len(VOCAB), n_embd=32, n_layer=2, n_head=4, n_positions=64, **SPECIAL)
    return transformers.GPT2LMHeadModel(config).eval().to(dtype)


#: LLaMA-style decoders' sizes (grouped-query attention)
GQA = {
    "vocab_size": len(VOCAB),
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 64,
}


def llama(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    return transformers.LlamaForCausalLM(transformers.LlamaConfig(**GQA, **SPECIAL)).eval().to(dtype)


def qwen2(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    return transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**GQA, **SPECIAL)).eval().to(dtype)


def gemma(seed: int = 0, dtype=torch.float64):
    """Its RMS norms scale by ``1 + weight`` (in float32): their weights are drawn
    away from the zero initialisation so that the scale matters."""
    torch.manual_seed(seed)
    model = transformers.GemmaForCausalLM(transformers.GemmaConfig(**GQA, head_dim=8, **SPECIAL)).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.normal_(0, 0.5)
    return model.to(dtype)


def t5(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    config = transformers.T5Config(
        vocab_size=len(VOCAB),
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        decoder_start_token_id=3,
        **SPECIAL,
    )
    return transformers.T5ForConditionalGeneration(config).eval().to(dtype)


def bart(seed: int = 0, dtype=torch.float64):
    torch.manual_seed(seed)
    config = transformers.BartConfig(
        vocab_size=len(VOCAB),
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        decoder_start_token_id=2,
        forced_eos_token_id=None,
        **SPECIAL,
    )
    return transformers.BartForConditionalGeneration(config).eval().to(dtype)


def zero_biases(model):
    """Set every bias parameter to zero (LRP's conservation holds for bias-free models)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


class LastLogits(torch.nn.Module):
    """``ids -> logits of the last position`` (shape ``(batch, vocab)``)."""

    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, ids):
        return self.model(ids).logits[:, -1]
