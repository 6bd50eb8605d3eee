r"""The rows of the shipped op table, one labelled row per op.

A row names an op once and lists every function object through which a model
can reach it; :meth:`entries` expands it to the :class:`~captum_unified.ops.table.OpEntry`
of each. :func:`~captum_unified.ops.default_op_table` collects the rows of
:mod:`~captum_unified.ops.elementwise`, :mod:`~captum_unified.ops.products`
and :mod:`~captum_unified.ops.composites` (plus the linear and meta lists of
:mod:`~captum_unified.ops.linear`). Adding an op is adding its row (and its
test).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from captum_unified.ops.table import Derivative, OpEntry, OpKind, ProductCall

__all__ = ["ElementwiseOp", "ProductOp", "CompositeOp"]


@dataclass(frozen=True)
class ElementwiseOp:
    """An element-wise nonlinearity :math:`y = f(z)`.

    Attributes:
        name: short name (warnings, :class:`~captum_unified.rules.OpCall`).
        names: function names looked up as ``torch.<n>``, ``Tensor.<n>``,
            ``F.<n>``, ``torch.special.<n>`` and their in-place ``<n>_``.
        derivative: closed-form :math:`f'(z)` from ``(z, out)``, or ``None``
            (autograd).
        gate: the output acts as a gate (sigmoid-like).
        fallback: a decomposition for calls in which another argument depends
            on the inputs (``clamp`` with an input-dependent bound).
    """

    name: str
    names: tuple[str, ...]
    derivative: Derivative | None = None
    gate: bool = False
    fallback: Callable[..., Any] | None = None

    def entries(self, namespaces: tuple[tuple[str, Any], ...]) -> dict[Callable, OpEntry]:
        canonical: Callable | None = None
        found: list[tuple[Callable, bool]] = []
        for fname in self.names:
            for ns_name, ns in namespaces:
                for candidate, inplace in ((fname, False), (fname + "_", True)):
                    if ns_name == "special" and inplace:
                        continue
                    f = getattr(ns, candidate, None)
                    if f is None or not callable(f):
                        continue
                    found.append((f, inplace))
                    if canonical is None and not inplace and ns_name in ("torch", "F"):
                        canonical = f
        if canonical is None and found:
            canonical = found[0][0]
        out: dict[Callable, OpEntry] = {}
        for f, inplace in found:
            # out-of-place twin of an in-place variant: the canonical function
            function = canonical if inplace else f
            out[f] = OpEntry(
                self.name,
                OpKind.ELEMENTWISE,
                function,
                inplace=inplace,
                derivative=self.derivative,
                gate=self.gate,
                fallback=self.fallback,
            )
        return out


@dataclass(frozen=True)
class ProductOp:
    """A bilinear op of two factors (the rule's product policy applies when
    both depend on the inputs; otherwise it is linear).

    Attributes:
        name: short name; a trailing ``_`` marks in-place variants (computed
            by ``function`` out of place and copied back).
        functions: the function objects.
        function: the out-of-place function to call (default: each function
            object itself).
        factors: positions of the two factors.
        factor_keyword: keyword of the second factor.
        bias: position of an additive bias (keyword ``"bias"``), or ``None``.
        add_bias: ``add_bias(out, bias)``.
        closed_form: ``"mul"`` / ``"matmul"``: the backward has a closed form.
        split: ``split(entry, args, kwargs) -> ProductCall`` for calls whose
            factors are not at fixed positions (``einsum``).
    """

    name: str
    functions: tuple[Callable, ...]
    function: Callable | None = None
    factors: tuple[int, int] = (0, 1)
    factor_keyword: str = "other"
    bias: int | None = None
    add_bias: Callable[[Tensor, Tensor], Tensor] | None = None
    closed_form: str = ""
    split: Callable[..., ProductCall] | None = None

    def entries(self) -> dict[Callable, OpEntry]:
        inplace = self.name.endswith("_")
        return {
            f: OpEntry(
                self.name.rstrip("_"),
                OpKind.PRODUCT,
                self.function or f,
                inplace=inplace,
                factors=self.factors,
                factor_keyword=self.factor_keyword,
                bias=self.bias,
                add_bias=self.add_bias,
                closed_form=self.closed_form,
                split=self.split,
            )
            for f in self.functions
        }


def _composite_inplace(f: Callable) -> bool:
    name = getattr(f, "__name__", "")
    return name.endswith("_") and not name.endswith("__") or name in ("__itruediv__", "__ipow__", "__idiv__")


@dataclass(frozen=True)
class CompositeOp:
    """An op computed by its decomposition into the other kinds.

    Attributes:
        name: short name.
        decompose: ``decompose(ctx, func, args, kwargs, consts)``, run with the
            backend's mode active (see :mod:`captum_unified.ops.composites`).
        functions: the function objects.
        constants: ``constants(args, kwargs, ref_args, ref_kwargs) -> dict``
            shared by both passes (softmax's shift), or ``None``.
        applies: ``applies(rule) -> bool``: whether the rule decomposes the op
            (else it keeps its gradient), or ``None`` (always).
        gate: the output acts as a gate (softmax).
        fused: a closed-form kernel computing the same for any rule, or
            ``None`` (see :mod:`captum_unified.ops.fused`).
    """

    name: str
    decompose: Callable[..., Any]
    functions: tuple[Callable, ...]
    constants: Callable[..., dict[str, Any]] | None = None
    applies: Callable[[Any], bool] | None = None
    gate: bool = False
    fused: Callable[..., Any] | None = None

    def entries(self) -> dict[Callable, OpEntry]:
        return {
            f: OpEntry(
                self.name,
                OpKind.COMPOSITE,
                f,
                inplace=_composite_inplace(f),
                decompose=self.decompose,
                constants=self.constants,
                applies=self.applies,
                gate=self.gate,
                fused=self.fused,
            )
            for f in self.functions
        }
