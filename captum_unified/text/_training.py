"""What the text models share: the optimiser loop, seeded construction and the cache.

The cache is :mod:`captum_unified.models`' (``cache_file``, ``save_state_atomic``,
``$CAPTUM_UNIFIED_CACHE`` or ``~/.cache/captum_unified``): a state dict per key, written
atomically.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_unified.models import cache_file, save_state_atomic

__all__ = ["TrainedTextModel", "fit", "seeded_build", "load_or_fit", "training_record", "transformers_version"]


@dataclass
class TrainedTextModel:
    """A trained text model with its tokenizer.

    Attributes:
        model (nn.Module): the Hugging Face model, in eval mode, float32.
        tokenizer: its ``transformers.PreTrainedTokenizerFast``.
        metrics (dict): held-out quality, measured on every load (the character models:
            ``val_loss`` and the ``unigram_loss`` / ``bigram_loss`` baselines in nats per
            character; the sentiment model: ``test_accuracy``, ``test_loss`` and the
            ``majority_accuracy`` baseline).
        path (Path): the cache file of the state dict.
        from_cache (bool): whether the weights were loaded from the cache (else trained now).
        train_seconds (float): wall-clock seconds the training took (recorded beside the
            cached weights; NaN if that record is missing).
        train_cpu_seconds (float): CPU seconds of the training process (what the training
            costs on one free core with one thread, whatever else the machine was running).
        info (dict): what else the model's task needs (e.g. the sentiment task's lexicon).
    """

    model: nn.Module
    tokenizer: Any
    metrics: dict[str, float]
    path: Path
    from_cache: bool
    train_seconds: float = float("nan")
    train_cpu_seconds: float = float("nan")
    info: dict[str, Any] = field(default_factory=dict)


def transformers_version() -> str:
    """``major.minor`` of the installed transformers (part of the cache keys: its modules'
    parameter names and numerics may change between releases)."""
    # function-level import: transformers is an optional dependency (the ``text`` extra)
    import transformers

    return ".".join(transformers.__version__.split(".")[:2])


def seeded_build(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` with torch's global generator seeded for the initialisation and restored after,
    so building a model leaves no trace on the caller's random state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _lr_factor(step: int, steps: int, warmup: int) -> float:
    # linear warm-up, then cosine decay to a tenth of the peak
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress))


def fit(
    model: nn.Module,
    loss_of_batch: Callable[[nn.Module, torch.Generator], Tensor],
    steps: int,
    lr: float,
    seed: int,
    warmup_fraction: float = 0.05,
    weight_decay: float = 0.01,
    clip: float = 1.0,
) -> list[float]:
    """Train ``model`` for ``steps`` AdamW steps (warm-up, cosine decay, gradient clipping).

    ``loss_of_batch(model, generator)`` draws a batch with the private ``generator``
    (seeded with ``seed``) and returns its mean loss; nothing else draws random numbers,
    so training is deterministic for a fixed number of torch threads.

    Returns:
        list of float: the loss of every step.
    """
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.98), weight_decay=weight_decay)
    warmup = max(1, int(round(warmup_fraction * steps)))
    losses: list[float] = []
    model.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * _lr_factor(step, steps, warmup)
        loss = loss_of_batch(model, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        losses.append(float(loss.detach()))
    model.eval()
    return losses


def load_or_fit(
    key: str, model: nn.Module, train: Callable[[nn.Module], Any], cache_dir: str | Path | None
) -> tuple[Path, bool, dict[str, float]]:
    """Load ``model``'s state dict cached under ``key``, or ``train(model)`` and cache it.

    Returns:
        ``(path, from_cache, record)``: ``record`` holds the training's wall and CPU seconds
        (``train_seconds``, ``train_cpu_seconds``; also when loaded: they are cached beside
        the weights).
    """
    path = cache_file(key, cache_dir)
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        return path, True, training_record(path)
    start, cpu = time.perf_counter(), time.process_time()
    train(model)
    record = {"train_seconds": time.perf_counter() - start, "train_cpu_seconds": time.process_time() - cpu}
    model.eval()
    # the record first: a reader that finds the weights finds their record
    _write_atomic(path.with_suffix(".json"), json.dumps(record))
    save_state_atomic(model.state_dict(), path)
    return path, False, record


def _write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def training_record(path: Path) -> dict[str, float]:
    """How long the model cached at ``path`` took to train (wall and CPU seconds of this
    process), from the record written beside it; NaN where there is none."""
    nan = {"train_seconds": float("nan"), "train_cpu_seconds": float("nan")}
    try:
        return {**nan, **json.loads(path.with_suffix(".json").read_text())}
    except (OSError, ValueError):
        return nan
