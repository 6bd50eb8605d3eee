r"""The op table: how the backend classifies every torch op a model calls.

See :mod:`captum_unified.ops.table` for the classes and the
:class:`OpTable` value, :mod:`~captum_unified.ops.elementwise`,
:mod:`~captum_unified.ops.linear` and :mod:`~captum_unified.ops.composites`
for what the default table holds. :func:`default_op_table` returns it; it is
built once and never changes.
"""

from __future__ import annotations

from functools import lru_cache

import torch
import torch.nn.functional as F

from captum_unified.ops.composites import COMPOSITES, NOT_DECOMPOSED, TRANSPARENT
from captum_unified.ops.elementwise import elementwise_entries
from captum_unified.ops.linear import linear_entries, meta_entries
from captum_unified.ops.table import OpEntry, OpKind, OpTable, op_name

__all__ = ["OpKind", "OpEntry", "OpTable", "default_op_table", "op_name", "NOT_DECOMPOSED", "PRODUCT_OPS"]

#: Bilinear ops: (name, function names, has_bias). Factors are arguments 0 and 1.
PRODUCT_OPS = [
    (
        "mul",
        (
            torch.mul,
            torch.multiply,
            torch.Tensor.mul,
            torch.Tensor.multiply,
            torch.Tensor.__mul__,
            torch.Tensor.__rmul__,
        ),
        False,
    ),
    ("mul_", (torch.Tensor.mul_, torch.Tensor.multiply_, torch.Tensor.__imul__), False),
    (
        "matmul",
        (
            torch.matmul,
            torch.Tensor.matmul,
            torch.Tensor.__matmul__,
            torch.mm,
            torch.Tensor.mm,
            torch.bmm,
            torch.Tensor.bmm,
            torch.mv,
            torch.Tensor.mv,
            torch.dot,
            torch.Tensor.dot,
            torch.inner,
            torch.Tensor.inner,
            torch.outer,
            torch.Tensor.outer,
            torch.ger,
            torch.Tensor.ger,
            torch.vdot,
            torch.Tensor.vdot,
            torch.kron,
            torch.Tensor.kron,
            torch.tensordot,
        ),
        False,
    ),
    ("rmatmul", (torch.Tensor.__rmatmul__,), False),
    ("einsum", (torch.einsum,), False),
    ("linear", (F.linear,), True),
    ("conv", (F.conv1d, F.conv2d, F.conv3d, F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d), True),
]


@lru_cache(maxsize=1)
def default_op_table() -> OpTable:
    """The shipped op table (built on first use, immutable)."""
    entries = {}
    entries.update(meta_entries())
    entries.update(linear_entries())
    entries.update(elementwise_entries())
    for name, fns, _ in PRODUCT_OPS:
        inplace = name.endswith("_")
        for f in fns:
            function = torch.mul if inplace else f
            entries[f] = OpEntry(name.rstrip("_"), OpKind.PRODUCT, function, inplace=inplace)
    from captum_unified.ops.fused import (
        fused_layer_norm,
        fused_log_softmax,
        fused_lstm,
        fused_rms_norm,
        fused_softmax,
    )

    fused = {
        "lstm": fused_lstm,
        "softmax": fused_softmax,
        "log_softmax": fused_log_softmax,
        "layer_norm": fused_layer_norm,
        "rms_norm": fused_rms_norm,
    }
    for name, decompose, functions, constants, applies, gate in COMPOSITES:
        for f in functions:
            inplace = (
                getattr(f, "__name__", "").endswith("_")
                and not getattr(f, "__name__", "").endswith("__")
                or getattr(f, "__name__", "") in ("__itruediv__", "__ipow__", "__idiv__")
            )
            entries[f] = OpEntry(
                name,
                OpKind.COMPOSITE,
                f,
                inplace=inplace,
                decompose=decompose,
                constants=constants,
                applies=applies,
                gate=gate,
                fused=fused.get(name),
            )
    for f in TRANSPARENT:
        entries[f] = OpEntry(op_name(f), OpKind.TRANSPARENT, f)
    return OpTable(entries)


def has_bias(entry: OpEntry) -> bool:
    """Product ops whose third argument is an additive bias."""
    return entry.name in ("linear", "conv")
