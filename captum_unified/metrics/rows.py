"""The evaluation's output: tidy rows, one number each, and their files.

A row is ``{"method", "metric", "param", "sample_index", "value"}``
(:data:`FIELDS`); :func:`assemble` makes them from the per-batch records of the
runner, :func:`write_rows` writes them as CSV or Parquet, :func:`read_rows`
reads them back with the same types.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from typing import Any

from captum_unified.metrics.base import Metric
from captum_unified.metrics.resume import atomic_write_text

__all__ = ["FIELDS", "Row", "assemble", "read_rows", "write_rows"]

#: Columns of the rows and of the output file, in order.
FIELDS = ("method", "metric", "param", "sample_index", "value")

Row = dict[str, Any]


def assemble(records: list[dict[str, Any]], methods: list[str], metrics: Sequence[Metric]) -> list[Row]:
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


def _format_param(param: Any) -> str:
    return "" if param is None else str(int(param))


def write_rows(path: str, rows: list[Row]) -> None:
    """Write the rows: Parquet for a ``.parquet`` path (needs pyarrow), else CSV
    (values as ``repr`` of the float: they read back exactly)."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    if path.endswith(".parquet"):
        try:
            import pyarrow as pa  # optional: only for Parquet output
            import pyarrow.parquet as pq  # optional: only for Parquet output
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
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(FIELDS), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({**r, "param": _format_param(r["param"]), "value": repr(float(r["value"]))})
    atomic_write_text(path, buf.getvalue())


def read_rows(path: str | os.PathLike[str]) -> list[Row]:
    """Read rows written by :func:`~captum_unified.metrics.evaluate` (CSV or
    Parquet) back, with the types it returns (``param`` int or None,
    ``sample_index`` int or ``"pooled"``, ``value`` float; floats round-trip exactly)."""
    path = os.fspath(path)
    if path.endswith(".parquet"):
        import pyarrow.parquet as pq  # optional: only for Parquet input

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
