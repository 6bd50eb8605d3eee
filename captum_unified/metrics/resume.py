"""Resuming an evaluation: finished batches on disk, checked before reuse.

With ``out``, every finished batch is written to ``<out>.parts/`` as one JSON
file (written atomically: a file is complete or absent). A rerun reads them
back and computes only what is missing. Two checks keep a resumed run honest:

* the **manifest** (``<out>.parts/manifest.json``): the settings the parts were
  computed with (seed, batch size, baselines, feature mask, target, each
  metric's settings); a rerun with other settings is a
  :class:`ResumeMismatchError`;
* the **data digest** in every part: a finished batch whose data differ from
  the batch now at its position (other samples, another order) is an error,
  never reused.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captum_unified.metrics.base import Metric

__all__ = [
    "ResumeMismatchError",
    "atomic_write_text",
    "batch_digest",
    "check_manifest",
    "data_changed",
    "make_manifest",
    "part_path",
    "read_part",
    "same_data",
]

MANIFEST_VERSION = 2  # 2: every part holds the digest of its batch's data


class ResumeMismatchError(ValueError):
    """``out`` holds results of other settings or other data than this run's."""


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file (readers see the old or the new file)."""
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def part_path(parts: str, b: int) -> str:
    """The file of finished batch ``b``."""
    return os.path.join(parts, f"batch_{b:07d}.json")


def read_part(path: str) -> dict[str, Any] | None:
    """A finished batch, or ``None`` when the file is missing or unreadable
    (a file is complete or absent: parts are written atomically)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def fingerprint(value: Any) -> Any:
    """A JSON-able stand-in of a setting (tensors by shape, dtype and a hash of their bytes)."""
    if isinstance(value, Tensor):
        t = value.detach().cpu().contiguous()
        digest = hashlib.blake2b(
            t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes(), digest_size=8
        ).hexdigest()
        return {"tensor": list(t.shape), "dtype": str(t.dtype), "hash": digest}
    if isinstance(value, (tuple, list)):
        return [fingerprint(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def batch_digest(batch: tuple[Any, ...]) -> list[str]:
    """Digests of a batch's data, one per element (inputs, labels, each extra):
    shapes, dtypes and bytes of the tensors, whatever device they are on."""
    return [
        hashlib.blake2b(json.dumps(fingerprint(v), sort_keys=True).encode(), digest_size=16).hexdigest() for v in batch
    ]


def same_data(stored: Any, digest: list[str]) -> bool:
    """Whether a finished batch was computed on this batch's data: the same
    inputs and labels, and the same values for every extra both have (extras
    may be added for a metric added since, e.g. bounding boxes)."""
    if not isinstance(stored, list) or len(stored) < 2:
        return False
    return all(a == b for a, b in zip(stored, digest))


def data_changed(parts: str, b: int, offset: int) -> str:
    """The message of a finished batch computed on other data."""
    return (
        f"{parts} holds batch {b} (samples from {offset}) computed on other data than the batch now at "
        f"that position: the data changed (other samples, order or labels) since those results were "
        f"written. Use a new `out` (--out) or delete {parts} to start afresh."
    )


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def make_manifest(
    metrics: Sequence[Metric], seed: int, batch_size: int, baselines: Any, feature_mask: Any, target: str
) -> dict[str, Any]:
    """The settings a run's parts are computed with."""
    return {
        "version": MANIFEST_VERSION,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "baselines": fingerprint(baselines),
        "feature_mask": fingerprint(feature_mask),
        "target": target,
        "metrics": {m.name: _jsonable(m.config()) for m in metrics},
    }


def check_manifest(parts: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Merge ``manifest`` into the stored one; raise if a stored setting differs.

    Raises:
        ResumeMismatchError: a setting, or a metric's settings, differ from the stored ones.
    """
    path = os.path.join(parts, "manifest.json")
    stored = read_part(path)
    if stored is None:
        return manifest
    for key in ("version", "seed", "batch_size", "baselines", "feature_mask", "target"):
        if stored.get(key) != manifest[key]:
            raise ResumeMismatchError(
                f"{parts} holds results computed with {key}={stored.get(key)!r}, but this run has "
                f"{key}={manifest[key]!r}; resume with the same settings or use another `out`."
            )
    merged = dict(stored)
    merged["metrics"] = dict(stored.get("metrics", {}))
    for name, cfg in manifest["metrics"].items():
        if name in merged["metrics"] and merged["metrics"][name] != cfg:
            raise ResumeMismatchError(
                f"{parts} holds {name} results computed with {merged['metrics'][name]}, but this run asks "
                f"for {cfg}; resume with the same settings or use another `out`."
            )
        merged["metrics"][name] = cfg
    return merged
