r"""Evaluation runner: Sensitivity-n of several attribution methods over a data
set, as tidy rows (and a resumable CSV file).

Each row is one number:

* ``{"method", "n", "sample_index", "correlation"}`` with ``sample_index`` the
  position of the sample in the data: the per-sample Pearson correlation
  :math:`\rho_n(x)` of :func:`~captum_unified.metrics.sensitivity_n`;
* the same with ``sample_index = "pooled"``: the correlation over all
  ``(sample, subset)`` pairs of the whole data set together, defined also at
  ``n = N`` where the per-sample one is not.

The mean curve of the paper (Ancona et al. 2018, Fig. 4) is the mean of the
per-sample rows of one method grouped by ``n`` (NaN rows left out).
"""
from __future__ import annotations

import csv
import math
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_unified.metrics.sensitivity_n import pearson, sensitivity_n

__all__ = ["evaluate", "FIELDS"]

#: Columns of the rows and of the CSV file, in order.
FIELDS = ("method", "n", "sample_index", "correlation")

Row = Dict[str, Any]


def _batches(data: Any, batch_size: int) -> Iterator[Tuple[Tensor, Tensor]]:
    """``(inputs, labels)`` batches from a DataLoader-like iterable or a tensor pair."""
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        x, y = data
        if x.shape[0] != y.shape[0]:
            raise ValueError(f"inputs have {x.shape[0]} samples but labels have {y.shape[0]}.")
        if int(batch_size) < 1:
            raise ValueError("batch_size must be >= 1.")
        for s in range(0, x.shape[0], int(batch_size)):
            yield x[s : s + batch_size], y[s : s + batch_size]
        return
    for item in data:
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError("each batch of `data` must be an (inputs, labels) pair.")
        yield item[0], item[1]


def _attribute(method: Any, inputs: Tensor, target: Tensor) -> Any:
    if hasattr(method, "attribute"):
        return method.attribute(inputs, target=target)
    if callable(method):
        return method(inputs, target)
    raise TypeError(
        f"a method must be a callable (inputs, target) -> attributions or an object "
        f"with .attribute(inputs, target=...), got {type(method).__name__}."
    )


def _pixel_mask(x: Tensor) -> Optional[Tensor]:
    """For ``(B, C, H, W)`` images a pixel (all channels) is one feature."""
    if x.dim() == 4:
        return torch.arange(x.shape[2] * x.shape[3], device=x.device).reshape(1, 1, x.shape[2], x.shape[3])
    return None


def _parse(row: Mapping[str, str]) -> Row:
    si = row["sample_index"]
    return {
        "method": row["method"],
        "n": int(row["n"]),
        "sample_index": si if si == "pooled" else int(si),
        "correlation": float(row["correlation"]),
    }


def _read_done(csv_path: str) -> Tuple[Dict[str, List[Row]], bool]:
    """Rows of the finished methods (those with their pooled rows, written last)
    and whether the file holds rows of an unfinished method."""
    with open(csv_path, newline="") as fh:
        reader = csv.DictReader(fh)
        if reader.fieldnames is None:
            return {}, True
        if tuple(reader.fieldnames) != FIELDS:
            raise ValueError(
                f"{csv_path} has columns {reader.fieldnames}, expected {list(FIELDS)}; "
                "it was not written by evaluate() (use another csv_path)."
            )
        by_method: Dict[str, List[Row]] = {}
        for raw in reader:
            if None in raw.values() or None in raw:
                continue  # a truncated last line
            row = _parse(raw)
            by_method.setdefault(row["method"], []).append(row)
    done = {m: rows for m, rows in by_method.items() if any(r["sample_index"] == "pooled" for r in rows)}
    return done, len(done) != len(by_method)


def _write(csv_path: str, rows: Iterable[Row], header: bool) -> None:
    mode = "w" if header else "a"
    with open(csv_path, mode, newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(FIELDS))
        if header:
            writer.writeheader()
        writer.writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())


def evaluate(
    forward_func: Callable,
    methods: Mapping[str, Any],
    data: Any,
    n_list: Optional[Sequence[int]] = None,
    n_subsets: int = 100,
    seed: int = 0,
    csv_path: Optional[Union[str, "os.PathLike[str]"]] = None,
    batch_size: int = 32,
    show_progress: bool = False,
    baselines: Any = None,
    feature_mask: Any = "pixel",
    max_batch_size: Optional[int] = None,
    max_memory_mb: Optional[float] = None,
) -> List[Row]:
    r"""Sensitivity-n of several attribution methods on a data set, as tidy rows.

    For every method and batch: attributions of the labels (``target = labels``),
    then :func:`~captum_unified.metrics.sensitivity_n` with ``n_subsets``
    subsets per sample and size. Per method and ``n`` the rows hold the
    per-sample correlations :math:`\rho_n(x_i)` and one pooled correlation
    over all :math:`(x_i, S_t)` pairs of the data set,

    .. math::

        \rho_n^{\text{pooled}} = \operatorname{PCC}_{i, t}\Big(\sum_{j \in S_{i,t}} R_j(x_i),\;
        S_c(x_i) - S_c(x_{i,[x_{S_{i,t}} = \bar x_{S_{i,t}}]})\Big).

    Batch ``b`` is scored with ``sensitivity_n(..., seed=seed * 1_000_003 + b)``:
    the subsets depend on ``seed``, the batch index and the batch shape, never
    on the method, so all methods are scored on the same subsets (and another
    ``batch_size`` gives other subsets). The model is used as given (call
    ``model.eval()`` first).

    Resuming: with ``csv_path`` the rows of each method are appended to the
    file as soon as the method is done (its pooled rows last, then flush and
    ``fsync``). When the file exists, a method with a pooled row in it counts
    as finished and is not recomputed: its rows are read back (floats
    round-trip exactly; ``nan`` stays NaN) and returned in place. The rows of a
    method without pooled rows (a run stopped during its block) are dropped
    from the file and recomputed, as is every method not in the file. The
    settings (``n_list``, ``n_subsets``, ``seed``, data) are not stored:
    resume with the same ones. A file with other columns raises
    ``ValueError``.

    Args:
        forward_func: the model.
        methods: ``name -> method`` (names are the ``method`` column); a
            method is a callable
            ``(inputs, target) -> attributions`` or an attribution object
            (Captum's or this package's) whose ``.attribute(inputs, target=...)``
            is called.
        data: a DataLoader (or any iterable) of ``(inputs, labels)`` batches, or
            an ``(inputs, labels)`` pair of tensors cut into ``batch_size`` batches.
        n_list: subset sizes; default
            :func:`~captum_unified.metrics.default_n_list` of the number of features.
        n_subsets: subsets per sample and size (paper: 100).
        seed: seed of the subsets (private generators; global RNG untouched).
        csv_path: CSV file to write (``csv`` module, columns :data:`FIELDS`)
            and resume from; ``None``: no file.
        batch_size: batch size when ``data`` is a tensor pair.
        show_progress: tqdm bar over (method, batch).
        baselines: value of removed features (Captum format), default 0.
        feature_mask: ``"pixel"`` (default): for ``(B, C, H, W)`` inputs a
            feature is a pixel with all its channels, otherwise a scalar;
            ``None``: every scalar; or a Captum-style mask.
        max_batch_size: bound on rows per forward pass of the perturbation engine.
        max_memory_mb: bound on the memory of one perturbed batch.

    Returns:
        The rows (dicts with the keys :data:`FIELDS`), per method in the order
        of ``methods``: per ``n``, the per-sample rows in data order, then the
        pooled rows, one per ``n``. ``correlation`` is a float, NaN where
        undefined (e.g. every per-sample row at ``n = N``).

    Raises:
        ValueError: ``methods`` or ``data`` is empty, a tensor pair has
            different numbers of inputs and labels, or ``csv_path`` holds
            other columns.
        TypeError: a batch of ``data`` is not an ``(inputs, labels)`` pair,
            or a method is neither callable nor has ``.attribute``.
    """
    if not methods:
        raise ValueError("methods is empty: give at least one name -> method.")
    done: Dict[str, List[Row]] = {}
    path = None if csv_path is None else os.fspath(csv_path)
    if path is not None and os.path.exists(path) and os.path.getsize(path) > 0:
        done, dirty = _read_done(path)
        if dirty:  # drop the rows of an unfinished method
            _write(path, [r for name in done for r in done[name]], header=True)
    elif path is not None:
        _write(path, [], header=True)

    todo = [name for name in methods if name not in done]
    bar = None
    if show_progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(desc="Sensitivity-n", unit="batch")
    rows: List[Row] = []
    try:
        for name, method in methods.items():
            if name in done:
                rows.extend(done[name])
                continue
            per_sample: Dict[int, List[Row]] = {}
            sums: List[Tensor] = []
            changes: List[Tensor] = []
            ns: Optional[List[int]] = None
            rtol = None
            offset = 0
            for b, (x, y) in enumerate(_batches(data, batch_size)):
                attr = _attribute(method, x, y)
                mask = _pixel_mask(x) if isinstance(feature_mask, str) and feature_mask == "pixel" else feature_mask
                res = sensitivity_n(
                    forward_func, x, attr, n=n_list, baselines=baselines, target=y,
                    feature_mask=mask, n_subsets=n_subsets, seed=int(seed) * 1_000_003 + b,
                    max_batch_size=max_batch_size, max_memory_mb=max_memory_mb,
                )
                ns = res.n
                if rtol is None:  # same tolerance as sensitivity_n's pooled value
                    dt = x.dtype if x.is_floating_point() else torch.float32
                    rtol = 100 * torch.finfo(dt).eps
                for j, n in enumerate(res.n):
                    per_sample.setdefault(n, []).extend(
                        {"method": name, "n": int(n), "sample_index": offset + i,
                         "correlation": float(res.correlations[i, j])}
                        for i in range(x.shape[0])
                    )
                sums.append(res.attribution_sums)
                changes.append(res.output_changes)
                offset += x.shape[0]
                if bar is not None:
                    bar.update(1)
            if ns is None:
                raise ValueError("data is empty.")
            S = torch.cat(sums, dim=2).reshape(len(ns), -1)
            D = torch.cat(changes, dim=2).reshape(len(ns), -1)
            pooled = pearson(S, D, dim=1, rtol=rtol)
            block = [r for n in ns for r in per_sample[n]]
            block += [
                {"method": name, "n": int(n), "sample_index": "pooled", "correlation": float(pooled[j])}
                for j, n in enumerate(ns)
            ]
            if path is not None:
                _write(path, block, header=False)
            rows.extend(block)
    finally:
        if bar is not None:
            bar.close()
    return rows
