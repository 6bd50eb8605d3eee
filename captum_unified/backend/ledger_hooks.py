r"""The autograd hooks of the relevance ledger (:mod:`~captum_unified.backend.ledger`).

For one op of the pass, :func:`hook_op` registers a pre-hook on each output's
node, which reads the gradient of the output, :math:`g_{out}`, and so the
relevance at the output, :math:`\sum g_{out} \odot out` (with the bias and
stabiliser columns); and, walking the nodes the op created (their sequence
numbers are above a marker taken just before the op) from its outputs down to
the edges that reach its inputs, a post-hook on each such node, which reads
the part of an input's gradient this op sends, :math:`g_{op \to x_j}`, and so
the relevance it passes on, :math:`\sum g_{op \to x_j} \odot x_j`. The hooks
live on the graph of the one call and go with it; nothing is registered on
the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from captum_unified.backend.ledger import LedgerRow

__all__ = ["OpRecord", "hook_op", "edge", "dot"]


@dataclass
class OpRecord:
    """One op's values and running sums while the pass runs."""

    index: int
    name: str
    kind: str
    inputs: list[Tensor]
    outputs: list[Tensor]
    constants: list[Tensor | None]
    eps: float | None  # epsilon-LRP's stabiliser at an element-wise op
    in_versions: list[int] = field(default_factory=list)
    out_versions: list[int] = field(default_factory=list)
    r_out: list[Tensor] = field(default_factory=list)
    r_in: list[Tensor] = field(default_factory=list)
    bias: list[Tensor] = field(default_factory=list)
    stab: list[Tensor] = field(default_factory=list)
    broken: bool = False  # a value could not be paired or was overwritten

    def row(self) -> LedgerRow:
        def total(xs: list[Tensor]) -> float:
            return float(torch.stack(xs).sum()) if xs else 0.0

        if self.broken:
            return LedgerRow(self.index, self.name, self.kind, math.nan, math.nan, math.nan, math.nan)
        return LedgerRow(
            self.index, self.name, self.kind, total(self.r_out), total(self.r_in), total(self.bias), total(self.stab)
        )


def dot(g: Tensor, v: Tensor) -> Tensor:
    if g.shape != v.shape:
        v = v.expand(g.shape) if v.dim() <= g.dim() else v.sum_to_size(g.shape)
    return (g.detach().double() * v.double()).sum()


def edge(t: Tensor) -> tuple[Any, int] | None:
    """The autograd edge a tensor's gradient arrives by."""
    if t.grad_fn is not None:
        return t.grad_fn, t.output_nr
    if t.requires_grad:  # a leaf: its gradient accumulator
        view = t.view_as(t).grad_fn
        assert view is not None
        return view.next_functions[0][0], 0
    return None


def hook_op(op: OpRecord, outs: list[Tensor], edges: dict[tuple[Any, int], int], floor: int) -> None:
    """Register a pre-hook on each output's node (it reads the output's
    gradient) and a post-hook on each node the op created that sends gradient
    to one of its inputs (``edges``: input edge -> input position; the op's nodes
    are numbered ``floor`` or above)."""
    starts = []
    for k, o in enumerate(outs):
        node = o.grad_fn
        if node is None:
            continue
        if (node, o.output_nr) in edges:  # the op returned its input (``x.contiguous()``)
            op.outputs[k] = op.outputs[k][:0]
            continue
        node.register_prehook(_out_hook(op, k, o.output_nr))
        starts.append(node)
    found: dict[Any, list[tuple[int, int]]] = {}
    seen: set[Any] = set()
    stack = [n for n in starts if n._sequence_nr() >= floor]
    while stack:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for i, (nxt, nr) in enumerate(node.next_functions):
            if nxt is None:
                continue
            j = edges.get((nxt, nr))
            if j is not None:
                found.setdefault(node, []).append((i, j))
            elif nxt not in seen and nxt._sequence_nr() >= floor:
                stack.append(nxt)
    for node, slots in found.items():
        node.register_hook(_in_hook(op, slots))


def _out_hook(op: OpRecord, k: int, nr: int) -> Callable:
    def hook(grad_outputs: Sequence[Tensor | None]) -> None:
        g = grad_outputs[nr]
        if g is None or op.broken:
            return
        v = op.outputs[k]
        if v.numel() == 0:  # the op returned its input: nothing changes here
            return
        if v._version != op.out_versions[k] or (op.eps is not None and op.inputs[0]._version != op.in_versions[0]):
            op.broken = (
                True  # overwritten in place by a write the ledger did not see: no number rather than a wrong one
            )
            return
        op.r_out.append(dot(g, v))
        c = op.constants[k]
        if c is not None:
            op.bias.append(dot(g, c))
        if op.eps is not None:
            z = op.inputs[0].double()
            s = torch.where(z >= 0, 1.0, -1.0).to(z.dtype) * op.eps
            op.stab.append(dot(g, v.double() * s / (z + s)))

    return hook


def _in_hook(op: OpRecord, slots: list[tuple[int, int]]) -> Callable:
    def hook(grad_inputs: Sequence[Tensor | None], grad_outputs: Sequence[Tensor | None]) -> None:
        if op.broken:
            return
        for i, j in slots:
            g = grad_inputs[i]
            if g is None:
                continue
            if op.inputs[j]._version != op.in_versions[j]:
                op.broken = True  # overwritten in place by a write the ledger did not see
                return
            op.r_in.append(dot(g, op.inputs[j]))

    return hook
