r"""Evaluation runner: any list of attribution methods x metrics over a data set,
on one process or many (``torch.distributed``), as tidy rows that resume.

Each row is one number:

* ``{"method", "metric", "param", "sample_index", "value"}`` (:data:`FIELDS`):
  ``metric`` is the quantity (``"sensitivity_n"``, ``"infidelity"``,
  ``"region_perturbation"``, ``"aopc"``, ``"bounding_box_accuracy"``,
  ``"percentage_change"``), ``param`` its parameter (Sensitivity-n's ``n``,
  region perturbation's number of removed groups ``k``; empty otherwise),
  ``sample_index`` the position of the sample in the data;
* data-set-level values (Sensitivity-n's pooled correlation over all
  ``(sample, subset)`` pairs) with ``sample_index = "pooled"``.

The mean curve of Ancona et al. (2018, Fig. 4) is the mean of the per-sample
``sensitivity_n`` rows of one method grouped by ``param`` (NaN rows left out).

Work is done batch by batch. With ``out`` every finished batch is written to
``<out>.parts/`` (one JSON file per batch, written atomically), and the rows
file ``out`` is written from the parts when all batches are done. A rerun with
the same settings reads the finished parts and computes only what is missing
(batches, or methods / metrics added since), so an interrupted run — also a
distributed run whose process was killed — resumes where it stopped. The
settings the parts were computed with are stored in
``<out>.parts/manifest.json`` and checked, and every part holds a digest of
its batch's data (inputs, labels, extras): a finished batch whose data differ
from the batch now at its position (other samples, another order) is an
error, never reused.

Distributed (``distributed=True``, e.g. under ``torchrun``): batch ``b`` is
evaluated by rank ``b % world_size``. Random draws are seeded per sample
(:func:`~captum_unified.metrics.base.sample_seed`) and batches are the same
whatever the number of processes, so the rows are identical to a one-process
run. Rank 0 writes ``out``; every rank returns the rows.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import (
    Any,
)

import torch
from torch import Tensor, nn

from captum_unified.metrics.base import EvalBatch, Metric, MetricScores
from captum_unified.metrics.registry import make_metric

__all__ = ["evaluate", "FIELDS", "attribute_with", "read_rows", "ResumeMismatchError"]

#: Columns of the rows and of the output file, in order.
FIELDS = ("method", "metric", "param", "sample_index", "value")

Row = dict[str, Any]


class ResumeMismatchError(ValueError):
    """``out`` holds results of other settings or other data than this run's."""


_MANIFEST_VERSION = 2  # 2: every part holds the digest of its batch's data


# --------------------------------------------------------------------- data
def _is_tensor_data(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) >= 2 and all(isinstance(t, Tensor) for t in data)


def _is_map_dataset(data: Any) -> bool:
    return (
        hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
        and not isinstance(data, (tuple, list, Tensor, torch.utils.data.DataLoader))
    )


def _batches(data: Any, batch_size: int) -> Iterator[tuple[int, int, Any]]:
    """``(batch index, offset, batch)`` for every batch; a batch is a tuple
    ``(inputs, labels, *extras)``. Tensor tuples and map-style datasets are cut
    into ``batch_size`` batches (lazily: ``_take`` loads one), anything else is
    iterated as given (a DataLoader)."""
    if _is_tensor_data(data) or _is_map_dataset(data):
        n = int(data[0].shape[0]) if _is_tensor_data(data) else len(data)
        if _is_tensor_data(data) and any(int(t.shape[0]) != n for t in data):
            raise ValueError(f"the data tensors have different numbers of samples {[int(t.shape[0]) for t in data]}.")
        for b, start in enumerate(range(0, n, batch_size)):
            yield b, start, (data, start, min(start + batch_size, n))
        return
    offset = 0
    for b, item in enumerate(data):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError("each batch of `data` must be an (inputs, labels, ...) tuple.")
        yield b, offset, tuple(item)
        offset += int((item[0][0] if isinstance(item[0], (tuple, list)) else item[0]).shape[0])


def _take(item: Any) -> tuple[Any, ...]:
    """Load a lazily described batch."""
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[1], int) and isinstance(item[2], int):
        data, start, stop = item
        if _is_tensor_data(data):
            return tuple(t[start:stop] for t in data)
        samples = [data[i] for i in range(start, stop)]
        return tuple(torch.utils.data.default_collate(samples))
    return item


def _to(value: Any, device: torch.device | None) -> Any:
    if device is None:
        return value
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(_to(v, device) for v in value)
    return value


def _model_device(forward_func: Any) -> torch.device | None:
    if isinstance(forward_func, nn.Module):
        for p in forward_func.parameters():
            return p.device
    return None


def attribute_with(method: Any, inputs: Any, target: Any) -> Any:
    """Attributions of ``method``: an object with ``.attribute(inputs, target=...)``
    (Captum's or this package's) or a callable ``(inputs, target) -> attributions``."""
    if hasattr(method, "attribute"):
        return method.attribute(inputs, target=target)
    if callable(method):
        return method(inputs, target)
    raise TypeError(
        f"a method must be a callable (inputs, target) -> attributions or an object "
        f"with .attribute(inputs, target=...), got {type(method).__name__}."
    )


# ------------------------------------------------------------ distributed
class _Group:
    """The process group of a distributed evaluation (a one-process stand-in
    when not distributed)."""

    def __init__(self, distributed: bool) -> None:
        import torch.distributed as dist

        self.dist = dist
        self.owned = False
        if distributed and not (dist.is_available() and dist.is_initialized()):
            if not dist.is_available():
                raise RuntimeError("distributed=True but torch.distributed is not available in this build.")
            if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
                raise RuntimeError(
                    "distributed=True needs a process group: launch with torchrun (which sets RANK, "
                    "WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or call torch.distributed.init_process_group first."
                )
            default = "nccl" if torch.cuda.is_available() else "gloo"
            dist.init_process_group(backend=os.environ.get("CAPTUM_UNIFIED_BACKEND", default))
            self.owned = True
        self.on = bool(distributed)
        self.rank = dist.get_rank() if self.on else 0
        self.world = dist.get_world_size() if self.on else 1

    def barrier(self) -> None:
        if self.on:
            if self.dist.get_backend() == "nccl":
                self.dist.barrier(device_ids=[torch.cuda.current_device()])
            else:
                self.dist.barrier()

    def all_gather(self, obj: Any) -> list[Any]:
        if not self.on:
            return [obj]
        out: list[Any] = [None] * self.world
        self.dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self.owned:
            self.dist.destroy_process_group()


# ------------------------------------------------------------------ files
def _atomic_write_text(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _part_path(parts: str, b: int) -> str:
    return os.path.join(parts, f"batch_{b:07d}.json")


def _read_part(path: str) -> dict[str, Any] | None:
    """A finished batch, or ``None`` when the file is missing or unreadable
    (a file is complete or absent: parts are written atomically)."""
    try:
        with open(path) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _fingerprint(value: Any) -> Any:
    """A JSON-able stand-in of a setting (tensors by shape, dtype and a hash of their bytes)."""
    if isinstance(value, Tensor):
        t = value.detach().cpu().contiguous()
        digest = hashlib.blake2b(
            t.numpy().tobytes() if t.dtype != torch.bfloat16 else t.float().numpy().tobytes(), digest_size=8
        ).hexdigest()
        return {"tensor": list(t.shape), "dtype": str(t.dtype), "hash": digest}
    if isinstance(value, (tuple, list)):
        return [_fingerprint(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _batch_digest(batch: tuple[Any, ...]) -> list[str]:
    """Digests of a batch's data, one per element (inputs, labels, each extra):
    shapes, dtypes and bytes of the tensors, whatever device they are on."""
    return [
        hashlib.blake2b(json.dumps(_fingerprint(v), sort_keys=True).encode(), digest_size=16).hexdigest() for v in batch
    ]


def _same_data(stored: Any, digest: list[str]) -> bool:
    """Whether a finished batch was computed on this batch's data: the same
    inputs and labels, and the same values for every extra both have (extras
    may be added for a metric added since, e.g. bounding boxes)."""
    if not isinstance(stored, list) or len(stored) < 2:
        return False
    return all(a == b for a, b in zip(stored, digest))


def _data_changed(parts: str, b: int, offset: int) -> str:
    return (
        f"{parts} holds batch {b} (samples from {offset}) computed on other data than the batch now at "
        f"that position: the data changed (other samples, order or labels) since those results were "
        f"written. Use a new `out` (--out) or delete {parts} to start afresh."
    )


def _manifest(
    metrics: Sequence[Metric], seed: int, batch_size: int, baselines: Any, feature_mask: Any, target: str
) -> dict[str, Any]:
    return {
        "version": _MANIFEST_VERSION,
        "seed": int(seed),
        "batch_size": int(batch_size),
        "baselines": _fingerprint(baselines),
        "feature_mask": _fingerprint(feature_mask),
        "target": target,
        "metrics": {m.name: _jsonable(m.config()) for m in metrics},
    }


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=repr))


def _check_manifest(parts: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """Merge ``manifest`` into the stored one; raise if a stored setting differs."""
    path = os.path.join(parts, "manifest.json")
    stored = _read_part(path)
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


def _format_param(param: Any) -> str:
    return "" if param is None else str(int(param))


def _write_rows(path: str, rows: list[Row]) -> None:
    """Write the rows: Parquet for a ``.parquet`` path (needs pyarrow), else CSV."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if path.endswith(".parquet"):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "writing Parquet needs pyarrow (pip install pyarrow); or give `out` a .csv name."
            ) from err
        table = pa.table(
            {
                "method": [r["method"] for r in rows],
                "metric": [r["metric"] for r in rows],
                "param": pa.array([r["param"] for r in rows], type=pa.int64()),
                "sample_index": [str(r["sample_index"]) for r in rows],
                "value": pa.array([r["value"] for r in rows], type=pa.float64()),
            }
        )
        tmp = f"{path}.tmp{os.getpid()}"
        pq.write_table(table, tmp)
        os.replace(tmp, path)
        return
    import io

    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "param": _format_param(r["param"]), "value": repr(float(r["value"]))})
    _atomic_write_text(path, buf.getvalue())


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """Read rows written by :func:`evaluate` (CSV or Parquet) back, with the
    types :func:`evaluate` returns (``param`` int or None, ``sample_index`` int
    or ``"pooled"``, ``value`` float; floats round-trip exactly)."""
    path = os.fspath(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq

        records = pq.read_table(path).to_pylist()
    else:
        with open(path, newline="") as fh:
            records = list(csv.DictReader(fh))
    out = []
    for r in records:
        si = r["sample_index"]
        param = r["param"]
        out.append(
            {
                "method": r["method"],
                "metric": r["metric"],
                "param": None if param in (None, "") else int(param),
                "sample_index": si if si == "pooled" else int(si),
                "value": float(r["value"]),
            }
        )
    return out


# ----------------------------------------------------------------- evaluate
def evaluate(
    forward_func: Callable,
    methods: Mapping[str, Any],
    data: Any,
    metrics: Sequence[Any] = ("sensitivity_n",),
    *,
    out: str | os.PathLike[str] | None = None,
    seed: int = 0,
    batch_size: int = 32,
    baselines: Any = None,
    feature_mask: Any = "pixel",
    target: str = "labels",
    device: Any = None,
    distributed: bool = False,
    show_progress: bool = False,
    perturbations_per_eval: int | None = None,
    max_batch_size: int | None = None,
    max_memory_mb: float | None = None,
) -> list[Row]:
    r"""Evaluate attribution methods with any metrics on a data set, as tidy rows.

    For every batch: the attributions of every method (``target`` = the
    labels, or the model's predicted class with ``target="predicted"``), then
    each metric once with all of them
    (:meth:`~captum_unified.metrics.base.Metric.evaluate`): metrics whose
    perturbations do not depend on the method (Sensitivity-n's subsets,
    infidelity's squares) run their perturbed forward passes once per batch
    for all methods, and all metrics share the unperturbed forward pass. The
    rows of a method are the same whether it is evaluated alone or with
    others.

    Random draws are seeded per sample from ``(seed, sample index)``, so a
    sample's rows do not depend on the batch it is in, the batch size or the
    number of processes; the numbers then differ only by the floating-point
    rounding of the model on other batch shapes. With the same ``batch_size``
    (or DataLoader) the rows are bitwise identical on 1 or N processes. The
    model is used as given (call ``model.eval()`` first). The data must come
    in the same order at every call (no shuffling).

    Args:
        forward_func: the model.
        methods: ``name -> method`` (names are the ``method`` column); a
            method is a callable ``(inputs, target) -> attributions`` or an
            attribution object (Captum's or this package's) whose
            ``.attribute(inputs, target=...)`` is called.
        data: a DataLoader (or any iterable) of ``(inputs, labels, *extras)``
            batches, a map-style dataset of ``(input, label, *extras)``
            samples, or a tuple of tensors ``(inputs, labels, *extras)``; the
            last two are cut into ``batch_size`` batches. ``extras`` are for
            metrics that need them (bounding boxes).
        metrics: registry names (:data:`~captum_unified.metrics.registry.METRICS`:
            ``"sensitivity_n"``, ``"infidelity"``, ``"region_perturbation"``,
            ``"bounding_box_accuracy"``) or metric objects with their settings,
            e.g. ``SensitivityN(n=[1, 8, 64], n_subsets=100)``; percentage
            change has no default references: ``PercentageChange(references)``.
        out: file for the rows: ``.csv`` (the ``csv`` module) or ``.parquet``
            (needs pyarrow); finished batches are kept in ``<out>.parts/`` and
            a rerun resumes from them. ``None``: rows returned only, no resume.
        seed: seed of the random draws (private generators; global RNG untouched).
        batch_size: batch size when ``data`` is a tensor tuple or a dataset.
        baselines: value of removed features (Captum format), default 0.
        feature_mask: ``"pixel"`` (default): for ``(B, C, H, W)`` inputs a
            feature is a pixel with all its channels, otherwise a scalar;
            ``None``: every scalar; or a Captum-style mask
            (:class:`~captum_unified.feature_groups.FeatureGroups`).
        target: ``"labels"`` (default) or ``"predicted"``.
        device: move each batch there (default: the model's parameters' device).
        distributed: shard the batches over the ``torch.distributed`` ranks
            (initialised from torchrun's environment when needed: NCCL with
            CUDA, else gloo; ``CAPTUM_UNIFIED_BACKEND`` overrides).
        show_progress: tqdm bar over the batches (rank 0).
        perturbations_per_eval, max_batch_size, max_memory_mb: bounds of the
            perturbation engine (see :func:`~captum_unified.perturbation.choose_chunk`).

    Returns:
        The rows (dicts with the keys :data:`FIELDS`): per method (in the order
        of ``methods``), per metric (in the order of ``metrics``), per quantity
        and ``param``, the per-sample rows in data order, then the pooled
        rows. ``value`` is a float, NaN where undefined.

    Raises:
        ValueError: ``methods``, ``metrics`` or ``data`` is empty, the data
            tensors differ in length, ``out`` holds results of other settings
            or of other data (a finished batch whose data differ from the
            batch now at its position), or a metric rejects a batch.
        TypeError: a batch is not an ``(inputs, labels, ...)`` tuple, or a
            method is neither callable nor has ``.attribute``.
    """
    if not methods:
        raise ValueError("methods is empty: give at least one name -> method.")
    metric_objs = [make_metric(m) for m in metrics]
    if not metric_objs:
        raise ValueError("metrics is empty: give at least one metric.")
    names = [m.name for m in metric_objs]
    if len(set(names)) != len(names):
        raise ValueError(f"each metric may appear once, got {names}.")
    if int(batch_size) < 1:
        raise ValueError("batch_size must be >= 1.")
    if target not in ("labels", "predicted"):
        raise ValueError(f"target must be 'labels' or 'predicted', got {target!r}.")
    device = torch.device(device) if device is not None else _model_device(forward_func)
    engine_options = dict(
        perturbations_per_eval=perturbations_per_eval, max_batch_size=max_batch_size, max_memory_mb=max_memory_mb
    )
    group = _Group(distributed)
    try:
        path = None if out is None else os.fspath(out)
        parts = None if path is None else path + ".parts"
        if parts is not None:
            manifest = _manifest(metric_objs, seed, batch_size, baselines, feature_mask, target)
            if group.rank == 0:
                os.makedirs(parts, exist_ok=True)
                merged = _check_manifest(parts, manifest)
                _atomic_write_text(os.path.join(parts, "manifest.json"), json.dumps(merged, indent=1))
            group.barrier()
            if group.rank != 0:
                _check_manifest(parts, manifest)
        records = _run(
            forward_func,
            methods,
            data,
            metric_objs,
            parts,
            group,
            seed,
            batch_size,
            baselines,
            feature_mask,
            target,
            device,
            show_progress,
            engine_options,
        )
        rows = _assemble(records, list(methods), metric_objs)
        if path is not None and group.rank == 0:
            _write_rows(path, rows)
        group.barrier()
        return rows
    finally:
        group.close()


def _mask_of(feature_mask: Any, x: Any) -> Any:
    if isinstance(feature_mask, str):
        if feature_mask != "pixel":
            raise ValueError(f"feature_mask must be 'pixel', None or a Captum mask, got {feature_mask!r}.")
        if isinstance(x, Tensor) and x.dim() == 4:
            return torch.arange(x.shape[2] * x.shape[3], device=x.device).reshape(1, 1, x.shape[2], x.shape[3])
        return None
    return feature_mask


def _run(
    forward_func,
    methods,
    data,
    metrics,
    parts,
    group,
    seed,
    batch_size,
    baselines,
    feature_mask,
    target,
    device,
    show_progress,
    engine_options,
) -> list[dict[str, Any]]:
    """Evaluate this rank's batches (resuming from ``parts``) and return every
    batch's record, in batch order, from all ranks."""
    bar = None
    if show_progress and group.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(desc="Evaluation", unit="batch")
    mine: list[dict[str, Any]] = []
    n_batches = 0
    changed = None
    try:
        for b, offset, item in _batches(data, int(batch_size)):
            n_batches = b + 1
            if b % group.world != group.rank:
                continue
            loaded = _take(item)
            digest = None if parts is None else _batch_digest(loaded)
            record = None if parts is None else _read_part(_part_path(parts, b))
            if record is not None and digest is not None:
                if not _same_data(record.get("data"), digest):
                    changed = _data_changed(str(parts), b, offset)
                    break
                if len(digest) > len(record["data"]):
                    record["data"] = digest
            todo = _missing(record, methods, metrics)
            if todo:
                record = _evaluate_batch(
                    forward_func,
                    methods,
                    metrics,
                    todo,
                    record,
                    b,
                    offset,
                    loaded,
                    digest,
                    seed,
                    baselines,
                    feature_mask,
                    target,
                    device,
                    engine_options,
                )
                if parts is not None:
                    _atomic_write_text(_part_path(parts, b), json.dumps(record))
            assert record is not None  # without a stored part everything is to do (methods, metrics non-empty)
            mine.append(record)
            if bar is not None:
                bar.update(group.world)
    finally:
        if bar is not None:
            bar.close()
    # every rank learns whether one found changed data (no rank is left waiting at a barrier)
    changes = [c for c in group.all_gather(changed) if c is not None]
    if changes:
        raise ResumeMismatchError(changes[0])
    if n_batches == 0:
        raise ValueError("data is empty.")
    if parts is not None:  # the other ranks' batches are on disk
        group.barrier()
        records = []
        for b in range(n_batches):
            rec = _read_part(_part_path(parts, b))
            if rec is None:
                raise RuntimeError(f"batch {b} is missing from {parts} after every rank finished.")
            records.append(rec)
        return records
    gathered = group.all_gather(mine)
    return sorted((r for part in gathered for r in part), key=lambda r: r["batch"])


def _missing(
    record: dict[str, Any] | None, methods: Mapping[str, Any], metrics: Sequence[Metric]
) -> dict[str, list[str]]:
    """``metric name -> methods still to score`` for one batch."""
    done = set() if record is None else {tuple(p) for p in record["done"]}
    todo = {}
    for m in metrics:
        need = [name for name in methods if (name, m.name) not in done]
        if need:
            todo[m.name] = need
    return todo


def _evaluate_batch(
    forward_func,
    methods,
    metrics,
    todo,
    record,
    b,
    offset,
    item,
    digest,
    seed,
    baselines,
    feature_mask,
    target,
    device,
    engine_options,
) -> dict[str, Any]:
    x, y, extras = _to(item[0], device), _to(item[1], device), tuple(_to(e, device) for e in item[2:])
    if isinstance(x, list):
        x = tuple(x)
    rows_in_batch = int((x[0] if isinstance(x, tuple) else x).shape[0])
    if target == "predicted":
        with torch.no_grad():
            y = forward_func(*(x if isinstance(x, tuple) else (x,))).argmax(1)
    batch = EvalBatch.make(
        forward_func,
        x,
        baselines,
        y,
        None,
        _mask_of(feature_mask, x),
        torch.arange(offset, offset + rows_in_batch),
        seed,
        extras,
        **engine_options,
    )
    needed = [name for name in methods if any(name in v for v in todo.values())]
    attrs = {
        name: batch.attributions(attribute_with(methods[name], x, y), f"attributions of {name!r}") for name in needed
    }
    if record is None:
        record = {
            "batch": b,
            "offset": offset,
            "size": rows_in_batch,
            "data": digest,
            "done": [],
            "values": [],
            "stats": [],
        }
    for metric in metrics:
        if metric.name not in todo:
            continue
        scores: dict[str, MetricScores] = metric.evaluate(batch, {name: attrs[name] for name in todo[metric.name]})
        for name in todo[metric.name]:
            s = scores.get(name)
            if s is not None:
                for (quantity, param), v in s.values.items():
                    record["values"].append([name, metric.name, quantity, param, v.detach().cpu().double().tolist()])
                if s.stats is not None:
                    record["stats"].append([name, metric.name, s.stats])
            record["done"].append([name, metric.name])
    return record


def _assemble(records: list[dict[str, Any]], methods: list[str], metrics: Sequence[Metric]) -> list[Row]:
    """The rows of all batches: method, metric, quantity order; samples in data order; pooled last."""
    series: dict[tuple[str, str], dict[tuple[str, Any], list[tuple[int, float]]]] = {}
    stats: dict[tuple[str, str], list[Any]] = {}
    for rec in records:
        for name, metric, quantity, param, values in rec["values"]:
            per = series.setdefault((name, metric), {}).setdefault((quantity, param), [])
            per.extend((rec["offset"] + i, float(v)) for i, v in enumerate(values))
        for name, metric, st in rec["stats"]:
            stats.setdefault((name, metric), []).append(st)
    rows: list[Row] = []
    for name in methods:
        for metric in metrics:
            for (quantity, param), values in series.get((name, metric.name), {}).items():
                rows.extend(
                    {"method": name, "metric": quantity, "param": param, "sample_index": i, "value": v}
                    for i, v in values
                )
            pooled = metric.pool(stats.get((name, metric.name), []))
            rows.extend(
                {"method": name, "metric": quantity, "param": param, "sample_index": "pooled", "value": float(v)}
                for (quantity, param), v in pooled.items()
            )
    return rows
