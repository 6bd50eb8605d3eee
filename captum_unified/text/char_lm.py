r"""Small character-level language models on shipped text, trained on the CPU and cached.

Two unmodified Hugging Face architectures of the same size:

* ``"gpt2"``: ``GPT2LMHeadModel`` (learned positions, LayerNorm, GELU MLP
  (``NewGELUActivation``), tied input/output embeddings).
* ``"llama"``: ``LlamaForCausalLM`` (rotary position embeddings, ``LlamaRMSNorm``,
  SiLU-gated MLP, grouped-query attention with two key/value heads).

Both read :func:`~captum_unified.text.tokenization.char_tokenizer`'s tokens: ``<bos>``
then characters, as the tokenizer encodes a text. They are trained with next-character
cross-entropy on random windows of a :func:`~captum_unified.text.corpus.load_corpus`
corpus (each window starts with ``<bos>``), AdamW with warm-up and cosine decay, no
dropout, batches drawn with a private seeded generator (deterministic for a fixed thread
count), and cached by :func:`load_or_train_char_lm` (key: architecture, size, corpus and
its text digest, seed, torch threads, transformers version).

Sizes (:data:`CHAR_LM_SIZES`): ``"quick"`` trains in seconds for the tests (it beats
the unigram and bigram baselines but has not learned much more); ``"full"`` trains in a
few minutes for the reproductions. Measured numbers: :doc:`/api/65_text`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_unified.text._training import TrainedTextModel, fit, load_or_fit, seeded_build, transformers_version
from captum_unified.text.corpus import Corpus, load_corpus
from captum_unified.text.tokenization import CHAR_SPECIAL_TOKENS, char_tokenizer, char_vocab

__all__ = [
    "CHAR_LM_ARCHS",
    "CHAR_LM_SIZES",
    "CharLMSize",
    "build_char_lm",
    "encode_text",
    "evaluate_char_lm",
    "ngram_baselines",
    "load_or_train_char_lm",
]

#: The character-model architectures.
CHAR_LM_ARCHS = ("gpt2", "llama")


@dataclass(frozen=True)
class CharLMSize:
    """Size and training budget of a character model (part of its cache key).

    Args:
        n_layer (int): transformer blocks.
        width (int): hidden size.
        n_head (int): attention heads (LLaMA: ``n_head // 2`` key/value heads).
        context (int): tokens per training window (``<bos>`` and ``context - 1``
            characters); the models' position range.
        batch_size (int): windows per step.
        steps (int): optimiser steps.
        lr (float): peak learning rate.
        weight_decay (float): AdamW's decoupled weight decay.
    """

    n_layer: int = 2
    width: int = 128
    n_head: int = 4
    context: int = 128
    batch_size: int = 32
    steps: int = 400
    lr: float = 3e-3
    weight_decay: float = 0.01

    def __post_init__(self) -> None:
        if min(self.n_layer, self.width, self.n_head, self.batch_size, self.steps) < 1 or self.context < 2:
            raise ValueError(f"every size must be positive and context >= 2, got {self}.")
        if self.width % self.n_head:
            raise ValueError(f"width {self.width} is not a multiple of n_head {self.n_head}.")

    def replace(self, **changes: Any) -> CharLMSize:
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """Short text for cache file names."""
        return (
            f"L{self.n_layer}-d{self.width}-h{self.n_head}-c{self.context}-b{self.batch_size}"
            f"-n{self.steps}-lr{self.lr:g}-wd{self.weight_decay:g}"
        )


#: ``"quick"``: the tests' size (seconds of training); ``"full"``: the reproductions' (minutes).
CHAR_LM_SIZES: dict[str, CharLMSize] = {
    "quick": CharLMSize(n_layer=2, width=64, n_head=4, context=32, batch_size=16, steps=300, lr=5e-3),
    "full": CharLMSize(n_layer=2, width=128, n_head=4, context=128, batch_size=32, steps=400, lr=3e-3),
}


def _size(size: str | CharLMSize) -> CharLMSize:
    if isinstance(size, CharLMSize):
        return size
    if size not in CHAR_LM_SIZES:
        raise ValueError(f"Unknown size {size!r}; choose from {sorted(CHAR_LM_SIZES)} or pass a CharLMSize.")
    return CHAR_LM_SIZES[size]


def build_char_lm(arch: str = "gpt2", size: str | CharLMSize = "quick", seed: int = 0) -> nn.Module:
    """An untrained character model (seeded initialisation; the caller's random state is left alone).

    Args:
        arch (str): ``"gpt2"`` or ``"llama"``.
        size (str or CharLMSize): a key of :data:`CHAR_LM_SIZES` or a size.
        seed (int): seed of the initial weights.

    Returns:
        ``GPT2LMHeadModel`` or ``LlamaForCausalLM`` in float32, eval mode, no dropout.
    """
    if arch not in CHAR_LM_ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; choose from {list(CHAR_LM_ARCHS)}.")
    s = _size(size)
    # function-level import: transformers is an optional dependency (the ``text`` extra)
    import transformers

    vocab = char_vocab()
    ids = {k: vocab[v] for k, v in CHAR_SPECIAL_TOKENS.items()}
    common: dict[str, Any] = dict(
        vocab_size=len(vocab),
        bos_token_id=ids["bos_token"],
        eos_token_id=ids["eos_token"],
        pad_token_id=ids["pad_token"],
    )
    config: Any
    if arch == "gpt2":
        config = transformers.GPT2Config(
            n_positions=s.context,
            n_embd=s.width,
            n_layer=s.n_layer,
            n_head=s.n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            **common,
        )
        cls: Any = transformers.GPT2LMHeadModel
    else:
        # SiLU-gated MLP of about 8/3 the width (LLaMA's ratio), a multiple of 8
        inner = 8 * math.ceil(8 * s.width / 3 / 8)
        config = transformers.LlamaConfig(
            hidden_size=s.width,
            intermediate_size=inner,
            num_hidden_layers=s.n_layer,
            num_attention_heads=s.n_head,
            num_key_value_heads=max(1, s.n_head // 2),
            max_position_embeddings=s.context,
            attention_dropout=0.0,
            **common,
        )
        cls = transformers.LlamaForCausalLM
    model = seeded_build(lambda: cls(config), seed)
    return model.eval()


def encode_text(text: str) -> Tensor:
    """Token ids of ``text`` without ``<bos>`` (int64): what
    ``char_tokenizer().encode(text, add_special_tokens=False)`` gives, computed directly."""
    vocab = char_vocab()
    unk = vocab[CHAR_SPECIAL_TOKENS["unk_token"]]
    return torch.tensor([vocab.get(c, unk) for c in text], dtype=torch.long)


def _bos() -> int:
    return char_vocab()[CHAR_SPECIAL_TOKENS["bos_token"]]


def _windows(ids: Tensor, context: int) -> Tensor:
    # non-overlapping windows of context - 1 characters, each behind <bos>; the tail that
    # does not fill a window is left out
    n = (len(ids) // (context - 1)) * (context - 1)
    body = ids[:n].view(-1, context - 1)
    return torch.cat([torch.full((len(body), 1), _bos(), dtype=torch.long), body], dim=1)


def _lm_loss(model: nn.Module, x: Tensor) -> Tensor:
    logits = model(input_ids=x).logits
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))


@torch.no_grad()
def evaluate_char_lm(model: nn.Module, text: str, context: int | None = None, batch_size: int = 64) -> float:
    """Mean next-character cross-entropy (nats per character) of ``model`` on ``text``, read in
    non-overlapping windows of ``context - 1`` characters behind ``<bos>`` (``context`` defaults
    to the model's position range)."""
    if context is None:
        config: Any = model.config
        context = int(getattr(config, "n_positions", None) or config.max_position_embeddings)
    windows = _windows(encode_text(text), context)
    if not len(windows):
        raise ValueError(f"text of {len(text)} characters is shorter than one window of {context - 1}.")
    model.eval()
    total = 0.0
    for i in range(0, len(windows), batch_size):
        chunk = windows[i : i + batch_size]
        total += float(_lm_loss(model, chunk)) * len(chunk)
    return total / len(windows)


def ngram_baselines(corpus: Corpus) -> dict[str, float]:
    """Validation cross-entropy (nats per character) of add-one-smoothed unigram and bigram
    character models counted on the training text: what a language model must beat."""
    vocab_size = len(char_vocab())
    train, val = encode_text(corpus.train), encode_text(corpus.validation)
    uni = torch.bincount(train, minlength=vocab_size).double() + 1.0
    uni_logp = (uni / uni.sum()).log()
    big = torch.zeros(vocab_size * vocab_size, dtype=torch.float64)
    big.index_add_(0, train[:-1] * vocab_size + train[1:], torch.ones(len(train) - 1, dtype=torch.float64))
    big = big.view(vocab_size, vocab_size) + 1.0
    big_logp = (big / big.sum(1, keepdim=True)).log()
    return {
        "unigram_loss": float(-uni_logp[val].mean()),
        "bigram_loss": float(-big_logp[val[:-1], val[1:]].mean()),
    }


def load_or_train_char_lm(
    arch: str = "gpt2",
    size: str | CharLMSize = "quick",
    corpus: str | Corpus = "pydoc",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> TrainedTextModel:
    """Train a character model once and cache its state dict (see the module docstring).

    Args:
        arch (str): ``"gpt2"`` or ``"llama"``.
        size (str or CharLMSize): ``"quick"`` (tests, seconds), ``"full"`` (minutes) or a size.
        corpus (str or Corpus): a corpus name of :data:`~captum_unified.text.corpus.CORPORA`
            or a loaded corpus.
        seed (int): seed of the initial weights and of the batches.
        cache_dir (str or Path, optional): defaults to ``$CAPTUM_UNIFIED_CACHE`` or
            ``~/.cache/captum_unified``.

    Returns:
        :class:`~captum_unified.text.TrainedTextModel`: the model (eval mode, float32), its
        :func:`~captum_unified.text.tokenization.char_tokenizer`, and ``metrics`` with the
        validation loss and the unigram / bigram baselines (nats per character).
    """
    s = _size(size)
    data = corpus if isinstance(corpus, Corpus) else load_corpus(corpus)
    model = build_char_lm(arch, s, seed)
    key = (
        f"charlm-{arch}-{data.name}-{s.key()}-s{seed}-t{torch.get_num_threads()}"
        f"-tf{transformers_version()}-d{data.digest}"
    )
    train_ids = encode_text(data.train)
    if len(train_ids) < s.context:
        raise ValueError(f"the corpus' training text ({len(train_ids)} characters) is shorter than the context.")

    def batch_loss(m: nn.Module, gen: torch.Generator) -> Tensor:
        starts = torch.randint(0, len(train_ids) - s.context + 2, (s.batch_size,), generator=gen)
        body = torch.stack([train_ids[i : i + s.context - 1] for i in starts.tolist()])
        x = torch.cat([torch.full((s.batch_size, 1), _bos(), dtype=torch.long), body], dim=1)
        return _lm_loss(m, x)

    path, from_cache, record = load_or_fit(
        key, model, lambda m: fit(m, batch_loss, s.steps, s.lr, seed, weight_decay=s.weight_decay), cache_dir
    )
    metrics = {"val_loss": evaluate_char_lm(model, data.validation, s.context), **ngram_baselines(data)}
    return TrainedTextModel(
        model,
        char_tokenizer(model_max_length=s.context),
        metrics,
        path,
        from_cache,
        record["train_seconds"],
        record["train_cpu_seconds"],
        {"corpus": data.name, "corpus_digest": data.digest, "size": s},
    )
