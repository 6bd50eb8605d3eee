"""Ancona et al.'s IMDB panels of Figure 4, stood in for offline: Sensitivity-n
on a trained sentiment transformer.

The paper's IMDB models (an MLP and an LSTM on movie reviews, App. C.4) need a
download. In their place: the sentiment task of :mod:`captum_unified.text`
(sentences of neutral filler words and polar words of the VADER lexicon, the
label the sign of the words' summed valence) and its trained two-layer
``BertForSequenceClassification``. As in the paper: a feature is a word, its
attribution the sum of the attributions of its embedding vector's components,
and removing it sets its whole embedding vector to 0 (Occlusion-1 included,
App. C.4); the target is the correct class. The words' embeddings are the
input: the model is fed ``inputs_embeds`` (``[CLS]`` prepended, fixed; the
position embeddings are added inside the model, so a removed word keeps its
position), and only sentences of the task's longest length are explained, so
no padding enters.

:func:`text_panel` returns the rows of ``ancona_checks.csv`` and
``ancona_sensitivity_n.csv`` for it, model ``"sentiment_bert"``.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.data import stratified_sample
from captum_unified.experiments.common import (
    METHODS,
    ExperimentConfig,
    collect_attribution_warnings,
    compute_attributions,
)
from captum_unified.metrics import default_n_list, pearson, sensitivity_n

try:  # the sentiment task (issues 17/18); until it is in the package there is no text panel
    from captum_unified.text import SENTIMENT_SIZES, load_or_train_sentiment
except ImportError:  # pragma: no cover - depends on the checkout
    SENTIMENT_SIZES, load_or_train_sentiment = {}, None  # type: ignore[assignment]

__all__ = ["MODEL", "TextPanel", "text_panel", "WordEmbeddingClassifier"]

#: The (model, activation) key of the panel's rows.
MODEL = ("sentiment_bert", "none")


class WordEmbeddingClassifier(nn.Module):
    """The sentiment classifier as a function of its words' embedding vectors:
    ``forward(words)`` with ``words`` of shape ``(B, L, D)`` returns the logits
    of ``[CLS] + words`` (the ``[CLS]`` embedding fixed, every position real)."""

    def __init__(self, model: nn.Module, cls_embedding: Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("cls_embedding", cls_embedding.detach().reshape(1, 1, -1))

    cls_embedding: Tensor

    def forward(self, words: Tensor) -> Tensor:
        cls = self.cls_embedding.expand(words.shape[0], 1, -1).to(words.dtype)
        emb = torch.cat([cls, words], dim=1)
        mask = torch.ones(emb.shape[:2], dtype=torch.long, device=emb.device)
        return self.model(inputs_embeds=emb, attention_mask=mask).logits


@dataclass
class TextPanel:
    """What the panel adds to the reproduction: CSV rows, the test accuracy, the
    seconds it took, or why it did not run (``skipped``)."""

    checks: list[dict] = field(default_factory=list)
    sens: list[dict] = field(default_factory=list)
    accuracy: float = float("nan")
    seconds: float = float("nan")
    training: str = ""
    skipped: str = ""
    n_words: int = 0


def _word_pcc(a: Tensor, b: Tensor) -> tuple[float, float]:
    r = pearson(a, b, dim=1).nan_to_num(0.0)
    return float(r.mean()), (float(r.std()) if len(r) > 1 else float("nan"))


def text_panel(cfg: ExperimentConfig, size: str = "full", warned: dict | None = None) -> TextPanel:
    """Train (or load) the sentiment transformer and measure Sensitivity-n on
    ``cfg.samples`` test sentences (class-stratified, seeded) with the run's
    methods, ``cfg.subsets`` subsets per n, n log-spaced from 1 to 80% of the
    words plus n = N. Returns a :class:`TextPanel`; ``skipped`` says why when
    the text task is not available (``captum_unified.text``, ``transformers``
    or ``vaderSentiment`` missing)."""
    if load_or_train_sentiment is None:
        return TextPanel(skipped="captum_unified.text (the sentiment task) is not in this checkout")
    t0 = time.perf_counter()
    try:
        trained = load_or_train_sentiment("bert", size, seed=cfg.seed, cache_dir=cfg.cache_dir)
    except ImportError as e:
        return TextPanel(skipped=f"the sentiment task needs an optional dependency: {e}")
    model = trained.model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    test = trained.info["test"]
    full = test.attention_mask.bool().all(dim=1)  # the longest sentences: no padding
    idx_full = torch.nonzero(full).flatten()
    labels_full = test.labels[idx_full]
    n = min(cfg.samples, len(idx_full))
    pick = idx_full[torch.as_tensor(stratified_sample(labels_full, n, cfg.seed))]
    ids, target = test.input_ids[pick], test.labels[pick]
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    words = table[ids[:, 1:]].clone()  # (B, L, D)
    f = WordEmbeddingClassifier(model, table[ids[0, 0]]).eval()
    n_words, dim = words.shape[1], words.shape[2]
    mask = torch.arange(n_words).view(1, n_words, 1).expand(1, n_words, dim)
    attrs: dict[str, Tensor] = {}
    word_attrs: dict[str, Tensor] = {}
    deltas: dict[str, Tensor | None] = {}
    where = "sentiment transformer"
    for m in cfg.methods:
        with collect_attribution_warnings(warned if warned is not None else {}, f"{where} {METHODS[m][0]}"):
            if m == "occlusion1":
                # Ancona App. C.4: a word's whole embedding vector set to 0 at once; each component
                # holds 1/D of the word's output change, so a word's components sum to it
                a = cu.OcclusionPatch(f).attribute(
                    words, feature_mask=mask, baselines=0.0, target=target, divide_by_patch_size=True
                )
                attrs[m], deltas[m] = a, None
            else:
                attrs[m], deltas[m] = compute_attributions(f, m, words, target, 0.0, cfg.ig_steps)
        word_attrs[m] = attrs[m].sum(-1).double()
    ns = default_n_list(n_words, num=12) + [n_words]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-sample NaN at n = N is expected
        res = sensitivity_n(
            f, words, attrs, n=ns, baselines=0.0, target=target, feature_mask=mask, n_subsets=cfg.subsets, seed=cfg.seed
        )
    with torch.no_grad():
        rows = torch.arange(len(words))
        gap = (f(words)[rows, target] - f(torch.zeros_like(words))[rows, target]).abs()
    acc = float(trained.metrics["test_accuracy"])
    panel = TextPanel(accuracy=acc, n_words=n_words, training=_training_text(size))
    gi = word_attrs.get("gi")
    for m in cfg.methods:
        a, d = word_attrs[m], deltas[m]
        rel = None if d is None else d.abs() / gap.clamp_min(1e-12)
        row: dict[str, Any] = {
            "model": MODEL[0],
            "activation": MODEL[1],
            "test_accuracy": round(acc, 4),
            "method": m,
            "samples": len(a),
            "baseline": 0.0,
            "mean_abs_attr": float(a.abs().mean()),
            "max_abs_delta": "" if d is None else float(d.abs().max()),
            "max_rel_delta": "" if rel is None else float(rel.max()),
            "median_rel_delta": "" if rel is None else float(rel.median()),
            "negative_fraction": float((a < 0).double().mean()),
        }
        if gi is not None:
            row["max_abs_diff_vs_gi"] = float((a - gi).abs().max())
            row["rel_diff_vs_gi"] = float((a - gi).norm() / gi.norm().clamp_min(1e-300))
        if "occlusion1" in word_attrs:
            row["pcc_vs_occlusion1"], row["pcc_vs_occlusion1_sd"] = _word_pcc(a, word_attrs["occlusion1"])
        if "ig" in word_attrs:
            row["pcc_vs_ig"], row["pcc_vs_ig_sd"] = _word_pcc(a, word_attrs["ig"])
        panel.checks.append(row)
        r = res[m]
        for j, k in enumerate(r.n):
            col = r.correlations[:, j]
            defined = col[~col.isnan()]
            panel.sens.append(
                {
                    "model": MODEL[0],
                    "activation": MODEL[1],
                    "method": m,
                    "method_label": METHODS[m][0],
                    "n": k,
                    "n_fraction": round(k / n_words, 4),
                    "mean_pcc": float(r.mean[j]),
                    "pooled_pcc": float(r.pooled[j]),
                    "n_nan": int(r.n_nan[j]),
                    "samples": len(words),
                    "subsets": cfg.subsets,
                    "sd_pcc": float(defined.std()) if len(defined) > 1 else float("nan"),
                }
            )
    panel.seconds = time.perf_counter() - t0
    return panel


def _training_text(size: str) -> str:
    """How the sentiment transformer is trained (the task's own recipe, :mod:`captum_unified.text.sentiment`)."""
    z = SENTIMENT_SIZES[size]
    return (
        f"AdamW (peak lr {z.lr:g}, warm-up then cosine decay), batch {z.batch_size}, {z.steps} steps on "
        f"{z.n_train:,} generated sentences ({z.n_words} polar VADER words per polarity); "
        f"{z.n_layer} layers, width {z.width}, {z.n_head} heads"
    )
