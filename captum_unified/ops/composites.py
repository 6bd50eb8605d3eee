r"""Composite ops: decomposed into linear ops, element-wise functions,
products and max (docs: *What the backend does with each op*).

Each row (:class:`~captum_unified.ops.rows.CompositeOp`) names an op, the
function objects that reach it, and ``decompose(ctx, func, args, kwargs,
consts)``, which computes the op from other torch ops. The backend runs it
with its mode active, so every op it calls is classified in turn: an
element-wise function gets the rule's :math:`g`, a product the rule's product
policy, and so on. DeepLIFT (Rescale with the Shapley product split and the
max rule) is then exactly complete through the op, because every piece
satisfies its own summation-to-delta.

The decompositions live by family: :mod:`~captum_unified.ops.arithmetic`
(quotients, powers, ``addmm`` & co.), :mod:`~captum_unified.ops.maxima`,
:mod:`~captum_unified.ops.norms`, :mod:`~captum_unified.ops.softmax`,
:mod:`~captum_unified.ops.recurrent`, :mod:`~captum_unified.ops.attention`;
this module collects their rows into :data:`COMPOSITES`.

``ctx`` is the backend's context; decompositions use only:

* ``ctx.rule`` -- the rule (its ``maxima`` / ``norm`` / ``softmax`` fields);
* ``ctx.tainted(t)`` -- whether ``t`` depends on the explained inputs;
* ``ctx.elementwise(name, f, z)`` -- apply an element-wise function ``f`` that
  is not a single torch op (``z ** 2.5``) with the rule;
* ``ctx.kmax(v, minimum=False)`` -- the maximum (minimum) over the last
  dimension with the rule's max policy; ``ctx.pooled_max(x, pool)``.

A decomposition returns :data:`~captum_unified.ops.table.NOT_DECOMPOSED` for
call forms it does not cover (packed sequences, ``rounding_mode``, ...); the op
is then reported as unknown and keeps its gradient.
:data:`~captum_unified.ops.table.AS_LINEAR` says the call is linear in its
input-dependent arguments (a division by a constant).

One trap: a value the decomposition treats as a constant must be the
same in both passes. Softmax's stabilising shift is therefore computed once
from both passes (the row's ``constants``) and passed to both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch.nn.functional as F

from captum_unified.ops import arithmetic, attention, maxima, norms, recurrent, softmax
from captum_unified.ops.calls import functions
from captum_unified.ops.maxima import max2, max_tree, min2
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import AS_LINEAR, NOT_DECOMPOSED

__all__ = ["COMPOSITES", "TRANSPARENT", "NOT_DECOMPOSED", "AS_LINEAR", "max2", "min2", "max_tree"]

#: Every composite row of the shipped table (a later row wins for a function object listed twice).
COMPOSITES: tuple[CompositeOp, ...] = (
    *arithmetic.QUOTIENT_ROWS,
    *maxima.ROWS,
    *norms.ROWS,
    *softmax.ROWS,
    *arithmetic.PRODUCT_ROWS,
    *recurrent.ROWS,
    *attention.ROWS,
)

#: Python-level torch functions whose body is followed op by op.
TRANSPARENT: tuple[Callable, ...] = functions((F, "multi_head_attention_forward softmin normalize local_response_norm"))
