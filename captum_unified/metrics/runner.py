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

The runner's jobs, one file each: :mod:`~captum_unified.metrics.batches`
(the data adapters), :mod:`captum_unified._utils.distributed` (the process
group, shared with the command line), :mod:`~captum_unified.metrics.resume`
(the finished batches on disk and their checks), :mod:`~captum_unified.metrics.rows`
(the rows and their files); this module is the public API and the loop over
batches, driven by one :class:`EvaluationSettings`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_unified._utils.distributed import ProcessGroup
from captum_unified.metrics.base import EvalBatch, Metric, MetricScores, attribute_with
from captum_unified.metrics.batches import batches, model_device, take, to_device
from captum_unified.metrics.registry import make_metric
from captum_unified.metrics.resume import (
    ResumeMismatchError,
    atomic_write_text,
    batch_digest,
    check_manifest,
    data_changed,
    make_manifest,
    part_path,
    read_part,
    same_data,
)
from captum_unified.metrics.rows import FIELDS, Row, assemble, read_rows, write_rows

__all__ = ["evaluate", "EvaluationSettings", "FIELDS", "attribute_with", "read_rows", "ResumeMismatchError"]


@dataclass(frozen=True)
class EvaluationSettings:
    """What one evaluation is, the same for every batch (see :func:`evaluate`
    for each setting).

    Attributes:
        forward_func: the model.
        methods: ``name -> method``.
        metrics: the metric objects.
        seed: seed of the random draws.
        batch_size: batch size of tensor tuples and datasets.
        baselines: value of removed features (Captum format).
        feature_mask: ``"pixel"``, ``None`` or a Captum-style mask.
        target: ``"labels"`` or ``"predicted"``.
        device: where each batch goes (``None``: where it is).
        show_progress: a tqdm bar over the batches (rank 0).
        engine_options: bounds of the perturbation engine.
    """

    forward_func: Callable
    methods: Mapping[str, Any]
    metrics: tuple[Metric, ...]
    seed: int = 0
    batch_size: int = 32
    baselines: Any = None
    feature_mask: Any = "pixel"
    target: str = "labels"
    device: torch.device | None = None
    show_progress: bool = False
    engine_options: Mapping[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The settings stored with the finished batches (checked on resume)."""
        return make_manifest(self.metrics, self.seed, self.batch_size, self.baselines, self.feature_mask, self.target)


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
    metric_objs = tuple(make_metric(m) for m in metrics)
    if not metric_objs:
        raise ValueError("metrics is empty: give at least one metric.")
    names = [m.name for m in metric_objs]
    if len(set(names)) != len(names):
        raise ValueError(f"each metric may appear once, got {names}.")
    if int(batch_size) < 1:
        raise ValueError("batch_size must be >= 1.")
    if target not in ("labels", "predicted"):
        raise ValueError(f"target must be 'labels' or 'predicted', got {target!r}.")
    settings = EvaluationSettings(
        forward_func,
        methods,
        metric_objs,
        seed=seed,
        batch_size=int(batch_size),
        baselines=baselines,
        feature_mask=feature_mask,
        target=target,
        device=torch.device(device) if device is not None else model_device(forward_func),
        show_progress=show_progress,
        engine_options=dict(
            perturbations_per_eval=perturbations_per_eval, max_batch_size=max_batch_size, max_memory_mb=max_memory_mb
        ),
    )
    group = ProcessGroup(distributed)
    try:
        path = None if out is None else os.fspath(out)
        parts = None if path is None else path + ".parts"
        if parts is not None:
            manifest = settings.manifest()
            if group.rank == 0:
                os.makedirs(parts, exist_ok=True)
                merged = check_manifest(parts, manifest)
                atomic_write_text(os.path.join(parts, "manifest.json"), json.dumps(merged, indent=1))
            group.barrier()
            if group.rank != 0:
                check_manifest(parts, manifest)
        records = _run(settings, data, parts, group)
        rows = assemble(records, list(methods), metric_objs)
        if path is not None and group.rank == 0:
            write_rows(path, rows)
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


def _run(settings: EvaluationSettings, data: Any, parts: str | None, group: ProcessGroup) -> list[dict[str, Any]]:
    """Evaluate this rank's batches (resuming from ``parts``) and return every
    batch's record, in batch order, from all ranks."""
    bar = None
    if settings.show_progress and group.rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(desc="Evaluation", unit="batch")
    mine: list[dict[str, Any]] = []
    n_batches = 0
    changed = None
    try:
        for b, offset, item in batches(data, settings.batch_size):
            n_batches = b + 1
            if b % group.world != group.rank:
                continue
            loaded = take(item)
            digest = None if parts is None else batch_digest(loaded)
            record = None if parts is None else read_part(part_path(parts, b))
            if record is not None and digest is not None:
                if not same_data(record.get("data"), digest):
                    changed = data_changed(str(parts), b, offset)
                    break
                if len(digest) > len(record["data"]):
                    record["data"] = digest
            todo = _missing(record, settings.methods, settings.metrics)
            if todo:
                record = _evaluate_batch(settings, todo, record, b, offset, loaded, digest)
                if parts is not None:
                    atomic_write_text(part_path(parts, b), json.dumps(record))
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
            rec = read_part(part_path(parts, b))
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
    settings: EvaluationSettings,
    todo: dict[str, list[str]],
    record: dict[str, Any] | None,
    b: int,
    offset: int,
    item: tuple[Any, ...],
    digest: list[str] | None,
) -> dict[str, Any]:
    """Score the methods still to do on one batch; the batch's record with their values added."""
    device, forward_func, methods = settings.device, settings.forward_func, settings.methods
    x, y, extras = to_device(item[0], device), to_device(item[1], device), tuple(to_device(e, device) for e in item[2:])
    if isinstance(x, list):
        x = tuple(x)
    rows_in_batch = int((x[0] if isinstance(x, tuple) else x).shape[0])
    if settings.target == "predicted":
        with torch.no_grad():
            y = forward_func(*(x if isinstance(x, tuple) else (x,))).argmax(1)
    batch = EvalBatch.make(
        forward_func,
        x,
        settings.baselines,
        y,
        None,
        _mask_of(settings.feature_mask, x),
        torch.arange(offset, offset + rows_in_batch),
        settings.seed,
        extras,
        **settings.engine_options,
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
    for metric in settings.metrics:
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
