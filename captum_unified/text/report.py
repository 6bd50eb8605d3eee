"""Measure the shipped text models: held-out quality, attention peakedness, training cost.

``python3 -m captum_unified.text [--sizes quick full]`` trains what is not cached and prints
one row per model (the table in :doc:`/api/65_text` comes from it). Attention statistics
(:func:`~captum_unified.text.attention.attention_statistics`, zero-embedding baseline) are
taken on fixed held-out inputs: 16 validation windows of the context's length for the
character models, the first 64 test sentences (padding rows dropped) for the classifiers.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

import torch

from captum_unified.text.attention import attention_statistics
from captum_unified.text.char_lm import CHAR_LM_ARCHS, encode_text, load_or_train_char_lm
from captum_unified.text.corpus import load_corpus
from captum_unified.text.sentiment import load_or_train_sentiment
from captum_unified.text.tokenization import CHAR_SPECIAL_TOKENS, char_vocab

__all__ = ["describe", "main"]


def describe(kind: str, arch: str, size: str, baseline: str = "zero") -> dict[str, Any]:
    """One row of the table: ``kind`` is ``"char_lm"`` or ``"sentiment"``."""
    if kind == "char_lm":
        r = load_or_train_char_lm(arch, size)
        ids = encode_text(load_corpus(r.info["corpus"]).validation)
        n = r.info["size"].context - 1
        bos = char_vocab()[CHAR_SPECIAL_TOKENS["bos_token"]]
        step = (len(ids) - n) // 16
        x = torch.stack([torch.cat([torch.tensor([bos]), ids[i * step : i * step + n]]) for i in range(16)])
        mask = None
    elif kind == "sentiment":
        r = load_or_train_sentiment(arch, size)
        test = r.info["test"]
        x, mask = test.input_ids[:64], test.attention_mask[:64]
    else:
        raise ValueError(f"kind must be 'char_lm' or 'sentiment', got {kind!r}.")
    stats = attention_statistics(r.model, x, baseline, attention_mask=mask).summary()
    return {
        "model": f"{kind}-{arch}",
        "size": size,
        "parameters": sum(p.numel() for p in r.model.parameters() if p.requires_grad),
        **{k: round(v, 4) for k, v in r.metrics.items()},
        **{f"attn_{k}": round(v, 3) for k, v in stats.items()},
        "train_cpu_s": round(r.train_cpu_seconds, 1),
        "train_wall_s": round(r.train_seconds, 1),
        "threads": torch.get_num_threads(),
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python3 -m captum_unified.text", description=__doc__)
    parser.add_argument("--sizes", nargs="+", default=["quick"], choices=["quick", "full"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (part of the cache key)")
    parser.add_argument("--baseline", default="zero", choices=["zero", "pad"])
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    for size in args.sizes:
        for kind, arch in [("char_lm", a) for a in CHAR_LM_ARCHS] + [("sentiment", "bert")]:
            print(json.dumps(describe(kind, arch, size, args.baseline)), flush=True)
