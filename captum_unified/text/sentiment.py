r"""A sentiment task whose token attributions have a ground truth, and a small classifier for it.

Sentences are drawn from a vocabulary of polar words of the VADER sentiment lexicon
(Hutto & Gilbert 2014; ``vader_lexicon.txt`` inside the ``vaderSentiment`` package: each
word's mean valence from ten raters, on -4 to 4) and of neutral filler words
(:data:`NEUTRAL_WORDS`, none in the lexicon). A sentence has ``min_len`` to ``max_len``
words, 1 to ``max_polar`` of them polar, at random positions. Its label is a known
function of the words' valences,

.. math:: y = \mathbb{1}\Big[\sum_i v(w_i) > 0\Big],

and sentences with :math:`|\sum_i v(w_i)| <` ``margin`` are not drawn, so every label is
clear and the classes are balanced. Each token's ground-truth contribution to the
positive class is its word's valence :math:`v(w_i)` (0 for fillers, ``[CLS]`` and
padding); :func:`ground_truth_rank_correlation` scores token attributions against it.

The classifier is an unmodified Hugging Face ``BertForSequenceClassification`` (default;
post-norm encoder, GELU, ``[CLS]`` pooler with tanh) or ``GPT2ForSequenceClassification``
(reads the last word), two layers, no dropout, reading
:func:`~captum_unified.text.tokenization.word_tokenizer`'s tokens. It is trained and
cached by :func:`load_or_train_sentiment` (key: architecture, size, seed, torch threads,
transformers version and a digest of the training data). Measured accuracies:
:doc:`/api/65_text`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_unified.models import _data_digest
from captum_unified.text._training import TrainedTextModel, fit, load_or_fit, seeded_build, transformers_version
from captum_unified.text.tokenization import WORD_SPECIAL_TOKENS, word_tokenizer

__all__ = [
    "NEUTRAL_WORDS",
    "SENTIMENT_ARCHS",
    "SENTIMENT_SIZES",
    "SentimentData",
    "SentimentSize",
    "build_sentiment_model",
    "generate_sentiment_data",
    "ground_truth_rank_correlation",
    "load_or_train_sentiment",
    "polar_words",
    "vader_lexicon",
]

#: The sentiment classifier's architectures.
SENTIMENT_ARCHS = ("bert", "gpt2")

#: Filler words of the sentences, valence 0 (none is in the VADER lexicon; no negations or
#: intensifiers, which carry sentiment in real text).
NEUTRAL_WORDS: tuple[str, ...] = tuple(
    "the a an this that movie film story plot actor actress director scene script ending music "
    "camera cast character dialogue book show episode season it was is felt seemed looked and "
    "with of in on at for from about by its his her their my our to as".split()
)


@functools.lru_cache(maxsize=1)
def _lexicon() -> tuple[tuple[str, float, float], ...]:
    # function-level import: vaderSentiment is an optional dependency (the ``text`` extra)
    try:
        import vaderSentiment
    except ImportError as e:
        raise ImportError(
            "The sentiment task needs the VADER lexicon of the optional dependency 'vaderSentiment': "
            "pip install vaderSentiment  (or pip install 'captum_unified[text]')"
        ) from e
    path = os.path.join(os.path.dirname(vaderSentiment.__file__), "vader_lexicon.txt")
    rows = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3:
                rows.append((parts[0], float(parts[1]), float(parts[2])))
    return tuple(rows)


def vader_lexicon() -> dict[str, float]:
    """The VADER lexicon shipped in ``vaderSentiment``: entry -> mean valence (-4 to 4)."""
    return {w: v for w, v, _ in _lexicon()}


def polar_words(n_per_polarity: int, seed: int = 0, min_abs: float = 0.8, max_std: float = 1.0) -> dict[str, float]:
    """A seeded choice of polar VADER words with their valences.

    Eligible: lower-case alphabetic entries with ``|valence| >= min_abs`` on which the raters
    agree (standard deviation ``<= max_std``); ``n_per_polarity`` positive and as many negative
    ones are drawn without replacement (``numpy.random.RandomState(seed)``) from the eligible
    words in alphabetical order.

    Returns:
        dict: word -> valence, positive words first, each half in alphabetical order.
    """
    eligible = sorted(
        (w, v) for w, v, s in _lexicon() if w.isalpha() and w.islower() and abs(v) >= min_abs and s <= max_std
    )
    rng = np.random.RandomState(seed)
    chosen: dict[str, float] = {}
    for sign in (1, -1):
        pool = [(w, v) for w, v in eligible if v * sign > 0]
        if n_per_polarity > len(pool):
            raise ValueError(f"only {len(pool)} eligible words of sign {sign:+d}, asked for {n_per_polarity}.")
        idx = np.sort(rng.choice(len(pool), n_per_polarity, replace=False))
        chosen.update(pool[i] for i in idx)
    return chosen


@dataclass
class SentimentData:
    """Generated sentences with labels and per-token ground truth.

    Attributes:
        sentences (list of str): the sentences (words joined by single spaces).
        input_ids (Tensor): ``[CLS]`` and the words' ids, padded with ``[PAD]``, shape ``(N, L)``;
            what the tokenizer gives with ``padding=True``.
        attention_mask (Tensor): 1 at real tokens, 0 at padding.
        labels (Tensor): 1 (positive) when the valences sum above 0, else 0.
        contributions (Tensor): float64, shape ``(N, L)``: each token's valence (0 for fillers,
            ``[CLS]``, padding); ``labels == (contributions.sum(1) > 0)``.
    """

    sentences: list[str]
    input_ids: Tensor
    attention_mask: Tensor
    labels: Tensor
    contributions: Tensor

    def __len__(self) -> int:
        return len(self.sentences)


def generate_sentiment_data(
    n: int,
    lexicon: dict[str, float],
    seed: int = 0,
    min_len: int = 4,
    max_len: int = 12,
    max_polar: int = 3,
    margin: float = 0.5,
    words: tuple[str, ...] | None = None,
) -> SentimentData:
    """Draw ``n`` sentences (half of each label; see the module docstring).

    Args:
        n (int): number of sentences (even).
        lexicon (dict): polar word -> valence (:func:`polar_words`).
        seed (int): seed of the draw (``numpy.random.RandomState``).
        min_len, max_len (int): words per sentence.
        max_polar (int): the most polar words in a sentence (at least one).
        margin (float): sentences with ``|sum of valences| < margin`` are redrawn.
        words (tuple of str, optional): the token vocabulary after the special tokens
            (default: the lexicon's words, then :data:`NEUTRAL_WORDS`).

    Returns:
        :class:`SentimentData`.
    """
    if n < 2 or n % 2:
        raise ValueError(f"n must be a positive even number (half of each label), got {n}.")
    if not 1 <= max_polar <= min_len <= max_len:
        raise ValueError(f"need 1 <= max_polar <= min_len <= max_len, got {max_polar}, {min_len}, {max_len}.")
    polar = list(lexicon)
    if words is None:
        words = tuple(polar) + NEUTRAL_WORDS
    specials = list(WORD_SPECIAL_TOKENS.values())
    vocab = {t: i for i, t in enumerate(specials + list(words))}
    valence = np.array([lexicon[w] for w in polar])
    rng = np.random.RandomState(seed)
    per_label: list[list[list[str]]] = [[], []]
    while min(len(per_label[0]), len(per_label[1])) < n // 2:
        length = rng.randint(min_len, max_len + 1)
        k = rng.randint(1, max_polar + 1)
        chosen = rng.randint(0, len(polar), size=k)
        # VADER's valences have at most two decimals: rounding makes the margin test exact
        total = round(float(valence[chosen].sum()), 6)
        if abs(total) < margin:
            continue
        sentence = [NEUTRAL_WORDS[i] for i in rng.randint(0, len(NEUTRAL_WORDS), size=length)]
        for pos, w in zip(rng.choice(length, k, replace=False), chosen):
            sentence[pos] = polar[w]
        label = int(total > 0)
        if len(per_label[label]) < n // 2:
            per_label[label].append(sentence)
    # interleave the labels so any prefix is balanced
    ordered = [s for pair in zip(per_label[0], per_label[1]) for s in pair]
    width = 1 + max(len(s) for s in ordered)
    ids = torch.full((n, width), vocab[WORD_SPECIAL_TOKENS["pad_token"]], dtype=torch.long)
    contributions = torch.zeros(n, width, dtype=torch.float64)
    ids[:, 0] = vocab[WORD_SPECIAL_TOKENS["cls_token"]]
    for i, sentence in enumerate(ordered):
        ids[i, 1 : 1 + len(sentence)] = torch.tensor([vocab[w] for w in sentence])
        contributions[i, 1 : 1 + len(sentence)] = torch.tensor(
            [lexicon.get(w, 0.0) for w in sentence], dtype=torch.float64
        )
    mask = (ids != vocab[WORD_SPECIAL_TOKENS["pad_token"]]).long()
    labels = (contributions.sum(1) > 0).long()
    return SentimentData([" ".join(s) for s in ordered], ids, mask, labels, contributions)


def ground_truth_rank_correlation(attributions: Tensor, data: SentimentData, target: int = 1) -> Tensor:
    """Spearman rank correlation, per sentence, between token attributions and the ground truth.

    Compared over each sentence's words (``[CLS]`` and padding left out), ties given their
    average rank. For ``target=1`` (the positive class) the ground truth is the valence,
    for ``target=0`` its negative.

    Args:
        attributions (Tensor): one score per token, shape ``(N, L)`` like ``data.input_ids``
            (sum a layer attribution over the embedding dimension first).
        data (SentimentData): the sentences explained.
        target (int): the class explained.

    Returns:
        Tensor: float64, shape ``(N,)``; NaN where either side is constant over the sentence.
    """
    if attributions.shape != data.input_ids.shape:
        raise ValueError(
            f"attributions must have one score per token, shape {tuple(data.input_ids.shape)}, "
            f"got {tuple(attributions.shape)}; sum a layer attribution over its last dimension first."
        )
    if target not in (0, 1):
        raise ValueError(f"target must be 0 or 1, got {target}.")
    truth = data.contributions * (1.0 if target == 1 else -1.0)
    out = torch.full((len(data),), float("nan"), dtype=torch.float64)
    for i in range(len(data)):
        keep = data.attention_mask[i].bool().clone()
        keep[0] = False
        a, t = _ranks(attributions[i][keep].double()), _ranks(truth[i][keep])
        a, t = a - a.mean(), t - t.mean()
        denom = (a.square().sum() * t.square().sum()).sqrt()
        if denom > 0:
            out[i] = (a * t).sum() / denom
    return out


def _ranks(x: Tensor) -> Tensor:
    # average ranks (ties share the mean of their positions)
    order = x.argsort()
    sorted_x = x[order]
    ranks = torch.empty_like(x)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0
        i = j + 1
    return ranks


@dataclass(frozen=True)
class SentimentSize:
    """Task and model size of the sentiment classifier (part of its cache key).

    Args:
        n_words (int): polar words per polarity.
        n_train (int): training sentences.
        n_test (int): test sentences.
        width (int): hidden size.
        n_layer (int): transformer blocks.
        n_head (int): attention heads.
        batch_size (int): sentences per step.
        steps (int): optimiser steps.
        lr (float): peak learning rate.
        min_len, max_len, max_polar (int), margin (float): the sentences
            (:func:`generate_sentiment_data`).
    """

    n_words: int = 300
    n_train: int = 20000
    n_test: int = 2000
    width: int = 64
    n_layer: int = 2
    n_head: int = 4
    batch_size: int = 64
    steps: int = 1500
    lr: float = 2e-3
    min_len: int = 4
    max_len: int = 12
    max_polar: int = 3
    margin: float = 0.5

    def replace(self, **changes: Any) -> SentimentSize:
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """Short text for cache file names (the data itself is keyed by its digest)."""
        return (
            f"w{self.n_words}-n{self.n_train}-L{self.n_layer}-d{self.width}-h{self.n_head}"
            f"-b{self.batch_size}-n{self.steps}-lr{self.lr:g}"
        )


#: ``"quick"``: the tests' size (seconds of training); ``"full"``: the reproductions'.
SENTIMENT_SIZES: dict[str, SentimentSize] = {
    "quick": SentimentSize(n_words=40, n_train=4000, n_test=1000, batch_size=32, steps=300, lr=3e-3),
    "full": SentimentSize(),
}


def _size(size: str | SentimentSize) -> SentimentSize:
    if isinstance(size, SentimentSize):
        return size
    if size not in SENTIMENT_SIZES:
        raise ValueError(f"Unknown size {size!r}; choose from {sorted(SENTIMENT_SIZES)} or pass a SentimentSize.")
    return SENTIMENT_SIZES[size]


def build_sentiment_model(arch: str, vocab_size: int, size: str | SentimentSize = "quick", seed: int = 0) -> nn.Module:
    """An untrained two-class classifier (seeded; the caller's random state is left alone).

    Args:
        arch (str): ``"bert"`` or ``"gpt2"``.
        vocab_size (int): the word tokenizer's vocabulary size.
        size (str or SentimentSize): a key of :data:`SENTIMENT_SIZES` or a size.
        seed (int): seed of the initial weights.
    """
    if arch not in SENTIMENT_ARCHS:
        raise ValueError(f"Unknown architecture {arch!r}; choose from {list(SENTIMENT_ARCHS)}.")
    s = _size(size)
    # function-level import: transformers is an optional dependency (the ``text`` extra)
    import transformers

    pad = list(WORD_SPECIAL_TOKENS.values()).index(WORD_SPECIAL_TOKENS["pad_token"])
    # two classes (through **: transformers 5's typed config signatures leave num_labels to **kwargs)
    two_labels: dict[str, Any] = {"num_labels": 2}
    config: Any
    if arch == "bert":
        config = transformers.BertConfig(
            vocab_size=vocab_size,
            hidden_size=s.width,
            num_hidden_layers=s.n_layer,
            num_attention_heads=s.n_head,
            intermediate_size=4 * s.width,
            max_position_embeddings=s.max_len + 1,
            type_vocab_size=1,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            **two_labels,
            pad_token_id=pad,
        )
        cls: Any = transformers.BertForSequenceClassification
    else:
        config = transformers.GPT2Config(
            vocab_size=vocab_size,
            n_positions=s.max_len + 1,
            n_embd=s.width,
            n_layer=s.n_layer,
            n_head=s.n_head,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
            summary_first_dropout=0.0,
            **two_labels,
            pad_token_id=pad,
            bos_token_id=None,
            eos_token_id=None,
        )
        cls = transformers.GPT2ForSequenceClassification
    return seeded_build(lambda: cls(config), seed).eval()


@torch.no_grad()
def _evaluate(model: nn.Module, data: SentimentData, batch_size: int = 256) -> dict[str, float]:
    model.eval()
    correct, total = 0, 0.0
    for i in range(0, len(data), batch_size):
        sl = slice(i, i + batch_size)
        logits = model(input_ids=data.input_ids[sl], attention_mask=data.attention_mask[sl]).logits
        total += float(F.cross_entropy(logits.float(), data.labels[sl], reduction="sum"))
        correct += int((logits.argmax(-1) == data.labels[sl]).sum())
    return {"test_accuracy": correct / len(data), "test_loss": total / len(data)}


def load_or_train_sentiment(
    arch: str = "bert",
    size: str | SentimentSize = "quick",
    seed: int = 0,
    cache_dir: str | Path | None = None,
) -> TrainedTextModel:
    """Generate the sentiment task, train the classifier once and cache its state dict.

    Args:
        arch (str): ``"bert"`` (default) or ``"gpt2"``.
        size (str or SentimentSize): ``"quick"`` (tests, seconds), ``"full"`` or a size.
        seed (int): seed of the vocabulary, the sentences (test: ``seed + 1``), the weights
            and the batches.
        cache_dir (str or Path, optional): defaults to ``$CAPTUM_UNIFIED_CACHE`` or
            ``~/.cache/captum_unified``.

    Returns:
        :class:`~captum_unified.text.TrainedTextModel`: the model (eval mode, float32), its
        :func:`~captum_unified.text.tokenization.word_tokenizer`, ``metrics`` (test accuracy and
        loss, the 0.5 majority baseline), and ``info`` with ``"lexicon"`` (word -> valence) and
        ``"test"`` (the :class:`SentimentData` of the test sentences).
    """
    s = _size(size)
    lexicon = polar_words(s.n_words, seed)
    words = tuple(lexicon) + NEUTRAL_WORDS
    gen_kw: dict[str, Any] = dict(
        min_len=s.min_len, max_len=s.max_len, max_polar=s.max_polar, margin=s.margin, words=words
    )
    train = generate_sentiment_data(s.n_train, lexicon, seed, **gen_kw)
    test = generate_sentiment_data(s.n_test, lexicon, seed + 1, **gen_kw)
    tokenizer = word_tokenizer(words, model_max_length=s.max_len + 1)
    model = build_sentiment_model(arch, len(tokenizer), s, seed)
    key = (
        f"sentiment-{arch}-{s.key()}-s{seed}-t{torch.get_num_threads()}-tf{transformers_version()}"
        f"-d{_data_digest(train.input_ids, train.labels)}"
    )

    def batch_loss(m: nn.Module, gen: torch.Generator) -> Tensor:
        idx = torch.randint(0, len(train), (s.batch_size,), generator=gen)
        logits = m(input_ids=train.input_ids[idx], attention_mask=train.attention_mask[idx]).logits
        return F.cross_entropy(logits, train.labels[idx])

    path, from_cache, record = load_or_fit(key, model, lambda m: fit(m, batch_loss, s.steps, s.lr, seed), cache_dir)
    metrics = {**_evaluate(model, test), "majority_accuracy": 0.5}
    return TrainedTextModel(
        model,
        tokenizer,
        metrics,
        path,
        from_cache,
        record["train_seconds"],
        record["train_cpu_seconds"],
        {"lexicon": lexicon, "test": test},
    )
