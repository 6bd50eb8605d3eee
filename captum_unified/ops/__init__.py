r"""The op table: how the backend classifies every torch op a model calls.

See :mod:`captum_unified.ops.table` for the classes and the
:class:`OpTable` value. The shipped table is built from labelled rows
(:mod:`~captum_unified.ops.rows`): :mod:`~captum_unified.ops.elementwise`,
:mod:`~captum_unified.ops.products` and :mod:`~captum_unified.ops.composites`
(whose decompositions live by family), plus the linear and meta lists of
:mod:`~captum_unified.ops.linear`. :func:`default_op_table` returns it; it
is built once and never changes.

Adding an op: its row in the fitting module (for a composite, its
decomposition next to the others of its family), and its test (the tests in
``tests/ops`` iterate over the rows and fail for a row without one).
"""

from __future__ import annotations

from functools import lru_cache

from captum_unified.ops.composites import COMPOSITES, TRANSPARENT
from captum_unified.ops.elementwise import elementwise_entries
from captum_unified.ops.linear import linear_entries, meta_entries
from captum_unified.ops.products import PRODUCT_OPS, product_entries
from captum_unified.ops.table import AS_LINEAR, NOT_DECOMPOSED, OpEntry, OpKind, OpTable, ProductCall, op_name

__all__ = [
    "OpKind",
    "OpEntry",
    "OpTable",
    "ProductCall",
    "default_op_table",
    "op_name",
    "has_bias",
    "NOT_DECOMPOSED",
    "AS_LINEAR",
    "PRODUCT_OPS",
    "COMPOSITES",
]


@lru_cache(maxsize=1)
def default_op_table() -> OpTable:
    """The shipped op table (built on first use, immutable)."""
    entries = {}
    entries.update(meta_entries())
    entries.update(linear_entries())
    entries.update(elementwise_entries())
    entries.update(product_entries())
    for row in COMPOSITES:
        entries.update(row.entries())
    for f in TRANSPARENT:
        entries[f] = OpEntry(op_name(f), OpKind.TRANSPARENT, f)
    return OpTable(entries)


def has_bias(entry: OpEntry) -> bool:
    """Whether a product op's call carries an additive bias (``F.linear``, convolutions)."""
    return entry.bias is not None
