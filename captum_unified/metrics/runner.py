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
import io
import itertools
import os
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from captum_unified.metrics.sensitivity_n import _n_features, _pooled, default_n_list, sensitivity_n

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


def _parse(record: Sequence[str]) -> Optional[Row]:
    """A CSV record as a row, or ``None`` when it is not a complete, valid row."""
    if len(record) != len(FIELDS):
        return None
    method, n, si, corr = record
    try:
        n_val = int(n)
        si_val: Union[int, str] = si if si == "pooled" else int(si)
        corr_val = float(corr)
    except ValueError:
        return None
    if n_val < 1 or (isinstance(si_val, int) and si_val < 0):
        return None
    return {"method": method, "n": n_val, "sample_index": si_val, "correlation": corr_val}


def _read_rows(csv_path: str) -> Tuple[Dict[str, List[Row]], bool]:
    """Rows of the file per method (file order), and whether every line was a
    complete row ending with a newline.

    A file that does not end with a newline was cut while a line was written:
    its last line is dropped even when it parses (``0.998982031`` may be the
    start of ``0.9989820312...``). A line with too few or too many fields or
    an unreadable value is dropped too, and its method gets no rows (it is
    then incomplete, dropped from the file and recomputed).
    """
    with open(csv_path, newline="") as fh:
        text = fh.read()
    ended = text.endswith("\n")
    try:
        records = list(csv.reader(io.StringIO(text)))
    except csv.Error:  # e.g. cut inside a quoted field
        records = list(csv.reader(io.StringIO(text[: text.rfind("\n") + 1])))
        ended = False
    header_line = ",".join(FIELDS)
    if not records or (len(records) == 1 and not ended and header_line.startswith(text.strip())):
        return {}, False  # empty, or cut inside the header
    if tuple(records[0]) != FIELDS:
        raise ValueError(
            f"{csv_path} has columns {records[0]}, expected {list(FIELDS)}; "
            "it was not written by evaluate() (use another csv_path)."
        )
    body = records[1:]
    clean = True
    if not ended and body:
        body = body[:-1]  # a line cut short
        clean = False
    by_method: Dict[str, List[Row]] = {}
    bad = set()
    for record in body:
        row = _parse(record)
        if row is None:
            clean = False
            if record:
                bad.add(record[0])
            continue
        by_method.setdefault(row["method"], []).append(row)
    for name in bad:
        by_method[name] = []  # incomplete: recomputed
    return by_method, clean


def _block_status(rows: List[Row]) -> Optional[Tuple[List[int], int]]:
    """``(n list, number of samples)`` of a complete block, ``None`` if incomplete.

    Complete: every per-sample row ``(n, 0..M-1)`` for every ``n`` of the
    block, each once, and one pooled row for each of these ``n`` (written
    last, so a block cut anywhere lacks some).
    """
    per: Dict[int, List[int]] = {}
    pooled: List[int] = []
    for r in rows:
        if r["sample_index"] == "pooled":
            pooled.append(r["n"])
        else:
            per.setdefault(r["n"], []).append(r["sample_index"])
    if not pooled or len(set(pooled)) != len(pooled) or set(pooled) != set(per):
        return None
    sizes = {len(v) for v in per.values()}
    if len(sizes) != 1:
        return None
    m = sizes.pop()
    if any(sorted(v) != list(range(m)) for v in per.values()):
        return None
    return pooled, m


def _settings_error(csv_path: Optional[str], what: str) -> ValueError:
    return ValueError(
        f"{csv_path} holds finished rows {what}; resume with the settings the file was "
        "written with (n_list, data), or use another csv_path."
    )


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

    For every batch: attributions of the labels (``target = labels``) by every
    method still to compute, then *one*
    :func:`~captum_unified.metrics.sensitivity_n` call with the dict of these
    attributions: the perturbed forward passes, which do not depend on the
    method, run once per batch for all methods (``len(n) * n_subsets``
    perturbed copies of the batch, whatever the number of methods). Per method
    and ``n`` the rows hold the per-sample correlations :math:`\rho_n(x_i)`
    and one pooled correlation over all :math:`(x_i, S_t)` pairs of the data
    set,

    .. math::

        \rho_n^{\text{pooled}} = \operatorname{PCC}_{i, t}\Big(\sum_{j \in S_{i,t}} R_j(x_i),\;
        S_c(x_i) - S_c(x_{i,[x_{S_{i,t}} = \bar x_{S_{i,t}}]})\Big),

    with the constant-side tolerance of ``sensitivity_n`` (``100 * eps`` of
    the model output's dtype).

    Batch ``b`` is scored with ``sensitivity_n(..., seed=seed * 1_000_003 + b)``:
    the subsets depend on ``seed``, the batch index and the batch shape, never
    on the method, so all methods are scored on the same subsets (and another
    ``batch_size`` gives other subsets); the rows of a method are the same
    whether it is evaluated alone or with others. The model is used as given
    (call ``model.eval()`` first).

    Resuming: with ``csv_path`` the rows are appended to the file once the
    data set is done, method after method (each block: per ``n`` the
    per-sample rows, then the pooled rows), then flushed and ``fsync``-ed.
    When the file exists, a method counts as finished only when its block is
    complete: a row for every sample and every ``n`` and a pooled row for
    every ``n``, each a complete line (a last line without its newline was
    cut while written and is discarded, even if it parses). Finished methods
    are not recomputed: their rows are read back (floats round-trip exactly;
    ``nan`` stays NaN) and returned in place. The partial rows of an
    unfinished method (a run stopped while writing) are dropped from the file
    and the method is recomputed, with every method not in the file, in one
    pass over the data. The settings (``n_list``, ``n_subsets``, ``seed``,
    data) are not stored: resume with the same ones. A finished block for
    other subset sizes or another number of samples raises ``ValueError``, as
    does a file with other columns.

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
            :func:`~captum_unified.metrics.default_n_list` of the number of
            features (of the first batch).
        n_subsets: subsets per sample and size (paper: 100).
        seed: seed of the subsets (private generators; global RNG untouched).
        csv_path: CSV file to write (``csv`` module, columns :data:`FIELDS`)
            and resume from; ``None``: no file.
        batch_size: batch size when ``data`` is a tensor pair.
        show_progress: tqdm bar over the batches.
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
            different numbers of inputs and labels, ``csv_path`` holds other
            columns, or it holds finished rows for other ``n`` or another
            number of samples.
        TypeError: a batch of ``data`` is not an ``(inputs, labels)`` pair,
            or a method is neither callable nor has ``.attribute``.
    """
    if not methods:
        raise ValueError("methods is empty: give at least one name -> method.")

    def mask_of(x: Tensor) -> Any:
        return _pixel_mask(x) if isinstance(feature_mask, str) and feature_mask == "pixel" else feature_mask

    batches = _batches(data, batch_size)
    first = next(batches, None)
    if first is None:
        raise ValueError("data is empty.")
    if n_list is not None:
        ns = [int(v) for v in n_list]
    else:
        ns = default_n_list(_n_features(first[0], mask_of(first[0])))
    known_samples: Optional[int] = None
    if isinstance(data, (tuple, list)) and len(data) == 2 and isinstance(data[0], Tensor):
        known_samples = int(data[0].shape[0])

    done: Dict[str, List[Row]] = {}
    file_samples: Optional[int] = None
    path = None if csv_path is None else os.fspath(csv_path)
    if path is not None and os.path.exists(path) and os.path.getsize(path) > 0:
        by_method, clean = _read_rows(path)
        for name, method_rows in by_method.items():
            status = _block_status(method_rows)
            if status is None:
                clean = False  # a block cut short: dropped, recomputed
                continue
            block_ns, m = status
            if block_ns != ns:
                raise _settings_error(path, f"of method {name!r} for n = {block_ns}, but n_list is {ns}")
            expected = known_samples if known_samples is not None else file_samples
            if expected is not None and m != expected:
                raise _settings_error(path, f"of method {name!r} for {m} samples, but the data has {expected}")
            file_samples = m
            done[name] = method_rows
        if not clean:  # rewrite without the partial rows
            _write(path, [r for name in done for r in done[name]], header=True)
    elif path is not None:
        _write(path, [], header=True)

    todo = [name for name in methods if name not in done]
    new: Dict[str, List[Row]] = {}
    if todo:
        new = _evaluate_methods(
            forward_func, {name: methods[name] for name in todo}, itertools.chain([first], batches), ns,
            n_subsets, seed, show_progress, baselines, mask_of, max_batch_size, max_memory_mb,
            file_samples, path,
        )
        if path is not None:
            _write(path, [r for name in todo for r in new[name]], header=False)
    rows: List[Row] = []
    for name in methods:
        rows.extend(done[name] if name in done else new[name])
    return rows


def _evaluate_methods(forward_func, methods, batches, ns, n_subsets, seed, show_progress, baselines,
                      mask_of, max_batch_size, max_memory_mb, file_samples, path) -> Dict[str, List[Row]]:
    """The blocks of rows of ``methods``: one pass over the data, one
    :func:`sensitivity_n` call (shared forwards) per batch."""
    per_sample: Dict[str, Dict[int, List[Row]]] = {name: {n: [] for n in ns} for name in methods}
    results: Dict[str, list] = {name: [] for name in methods}
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc="Sensitivity-n", unit="batch")
    offset = 0
    try:
        for b, (x, y) in enumerate(batches):
            attrs = {name: _attribute(method, x, y) for name, method in methods.items()}
            res = sensitivity_n(
                forward_func, x, attrs, n=ns, baselines=baselines, target=y,
                feature_mask=mask_of(x), n_subsets=n_subsets, seed=int(seed) * 1_000_003 + b,
                max_batch_size=max_batch_size, max_memory_mb=max_memory_mb,
            )
            for name, r in res.items():
                corr = r.correlations.tolist()  # (batch, len(n))
                for j, n in enumerate(ns):
                    per_sample[name][n].extend(
                        {"method": name, "n": int(n), "sample_index": offset + i, "correlation": c[j]}
                        for i, c in enumerate(corr)
                    )
                results[name].append(r)
            offset += x.shape[0]
            if file_samples is not None and offset > file_samples:
                raise _settings_error(path, f"for {file_samples} samples, but the data has more")
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if file_samples is not None and offset != file_samples:
        raise _settings_error(path, f"for {file_samples} samples, but the data has {offset}")
    blocks: Dict[str, List[Row]] = {}
    for name in methods:
        pooled = _pooled(results[name]).tolist()
        blocks[name] = [r for n in ns for r in per_sample[name][n]] + [
            {"method": name, "n": int(n), "sample_index": "pooled", "correlation": pooled[j]}
            for j, n in enumerate(ns)
        ]
    return blocks
