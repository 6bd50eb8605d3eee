"""The trained models and the seeded samples of ``reproduce transformers``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_unified.data import stratified_sample
from captum_unified.experiments.ancona_text import WordEmbeddingClassifier
from captum_unified.experiments.common import (
    ExperimentConfig,
)
from captum_unified.experiments.findings import TRAINED_ACCURACY
from captum_unified.experiments.token_models import NextTokenLogProb, TokenModel
from captum_unified.text import load_corpus, load_or_train_char_lm, load_or_train_sentiment
from captum_unified.text.char_lm import encode_text
from captum_unified.text.sentiment import SENTIMENT_SIZES

#: Characters of context explained per window (``<bos>`` in front), per model size.
CONTEXT = {"full": 48, "quick": 16}


# ----------------------------------------------------------------- models and samples
@dataclass
class _Task:
    model: str  # the CSV's model name
    label: str
    f: TokenModel
    x: Tensor  # (B, L, D) token embeddings
    target: Tensor
    quality: dict[str, float]  # the trained model's numbers
    trained: bool
    quality_text: str
    explained: str
    tokens: list[list[str]]
    truth: Tensor | None = None  # (B, L) valence for the target class (sentiment)
    arch: str = ""  # the Hugging Face model's architecture (the LXT worker rebuilds it)
    builder: dict[str, Any] = field(default_factory=dict)  # how: kind, size fields, seed, vocab size
    hf: nn.Module | None = None  # the Hugging Face model inside f
    prefix: Tensor | None = None  # the fixed <bos> / [CLS] embedding in front of x


#: The models of a run: name -> (label, architecture).
MODELS = {
    "char_gpt2": ("char GPT-2", "gpt2"),
    "char_llama": ("char LLaMA", "llama"),
    "sentiment_bert": ("sentiment BERT", "bert"),
}


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _char_task(name: str, arch: str, cfg: ExperimentConfig, size: str) -> _Task:
    trained = load_or_train_char_lm(arch, size, seed=cfg.seed, cache_dir=cfg.cache_dir)
    model = _frozen(trained.model)
    corpus = load_corpus(trained.info["corpus"])
    ids = encode_text(corpus.validation)
    ctx = CONTEXT[size]
    rng = np.random.RandomState(cfg.seed)
    starts = rng.choice(len(ids) - ctx - 1, size=cfg.samples, replace=False)
    windows = torch.stack([ids[s : s + ctx] for s in starts.tolist()])
    target = torch.stack([ids[s + ctx] for s in starts.tolist()])
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    bos = trained.tokenizer.bos_token_id
    f = TokenModel(NextTokenLogProb(model, table[bos])).eval()
    m = trained.metrics
    beats = m["val_loss"] < m["bigram_loss"]
    quality_text = (
        f"validation loss {m['val_loss']:.3f} nats per character (bigram baseline {m['bigram_loss']:.3f}, "
        f"unigram {m['unigram_loss']:.3f})"
    )
    vocab = {i: t for t, i in trained.tokenizer.get_vocab().items()}
    return _Task(
        name,
        MODELS[name][0],
        f,
        table[windows].clone(),
        target,
        {k: float(v) for k, v in m.items()},
        bool(beats),
        quality_text,
        f"log p(true next character | <bos> + {ctx} characters of the validation text)",
        [[vocab[int(i)] for i in w] for w in windows],
        arch=arch,
        builder={"kind": "char_lm", "size": asdict(trained.info["size"]), "seed": cfg.seed},
        hf=model,
        prefix=table[bos],
    )


def _sentiment_task(cfg: ExperimentConfig, size: str) -> _Task:
    trained = load_or_train_sentiment("bert", size, seed=cfg.seed, cache_dir=cfg.cache_dir)
    model = _frozen(trained.model)
    test = trained.info["test"]
    full = torch.nonzero(test.attention_mask.bool().all(dim=1)).flatten()  # no padding
    n = min(cfg.samples, len(full))
    pick = full[torch.as_tensor(stratified_sample(test.labels[full], n, cfg.seed))]
    ids, target = test.input_ids[pick], test.labels[pick]
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    f = TokenModel(WordEmbeddingClassifier(model, table[ids[0, 0]])).eval()
    sign = target.double() * 2 - 1
    truth = test.contributions[pick][:, 1:] * sign[:, None]
    m = trained.metrics
    vocab = {i: t for t, i in trained.tokenizer.get_vocab().items()}
    return _Task(
        "sentiment_bert",
        MODELS["sentiment_bert"][0],
        f,
        table[ids[:, 1:]].clone(),
        target,
        {k: float(v) for k, v in m.items()},
        m["test_accuracy"] >= TRAINED_ACCURACY,
        f"test accuracy {m['test_accuracy']:.1%} (majority 50%), test loss {m['test_loss']:.3f}",
        f"the true class's logit of [CLS] + {ids.shape[1] - 1} words",
        [[vocab[int(i)] for i in row[1:]] for row in ids],
        truth,
        arch="bert",
        builder={
            "kind": "sentiment",
            "size": asdict(SENTIMENT_SIZES[size]),
            "seed": cfg.seed,
            "vocab_size": int(table.shape[0]),
        },
        hf=model,
        prefix=table[ids[0, 0]],
    )


def check_samples(cfg: ExperimentConfig) -> None:
    """``--samples`` more than the pipeline can draw (the sentiment test set's full-length
    sentences bound it)."""
    if cfg.samples < 3:
        raise ValueError(f"{cfg.samples} is too few: rank correlations need at least 3 samples; give 3 or more.")
