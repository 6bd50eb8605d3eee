r"""The op table: which class every torch op a model calls falls in.

The modified chain rule (Ancona et al. 2018, §3) only changes what happens at
the ops that are not linear. To apply it to *any* model the backend must
know, for every torch function the model calls, what kind of op it is. That
knowledge is one value, an :class:`OpTable`, that maps function objects (as
they reach a :class:`torch.overrides.TorchFunctionMode`: ``torch.tanh``,
``torch.Tensor.relu_``, ``F.layer_norm``, ...) to an :class:`OpEntry`.

Every op falls in exactly one :class:`OpKind`:

========================  ==================================================
``META``                  no numeric dependence on its tensor arguments that
                          a gradient could follow (sizes, dtypes,
                          ``zeros_like``, comparisons, ``detach``)
``LINEAR``                linear in its input-dependent arguments: ordinary
                          gradient (views, sums, convolutions, ``F.linear``
                          with a constant weight, average pooling, ...)
``ELEMENTWISE``           :math:`y = f(z)` element by element: the rule's
                          :math:`g(z)` replaces :math:`f'(z)`
``PRODUCT``               bilinear in two input-dependent factors
                          (``mul``, ``matmul``, ``bmm``, ``einsum``, ...):
                          the rule's product policy
``COMPOSITE``             decomposed into the other kinds (quotients, max and
                          max-pooling, LayerNorm, softmax, LSTM/GRU/RNN,
                          attention, ...)
``TRANSPARENT``           a Python-level torch function (e.g.
                          ``F.multi_head_attention_forward``): its body is
                          followed op by op
========================  ==================================================

An op that is in no class is *unknown*: it keeps its ordinary gradient and the
call warns once, naming it. Ops whose tensor arguments do not depend on the
explained inputs never matter and are not looked at.

The table is immutable. :func:`default_op_table` returns the shipped one;
``table.with_elementwise(...)``, ``table.with_linear(...)``,
``table.with_composite(...)`` return *new* tables. Pass a table to a method
(``DeepLiftRescale(model, op_table=...)``) or to
:class:`~captum_unified.backend.RuleContext`; nothing global ever changes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from torch import Tensor

__all__ = ["OpKind", "OpEntry", "OpTable", "ProductCall", "op_name", "NOT_DECOMPOSED", "AS_LINEAR"]


class _NotDecomposed:
    def __repr__(self) -> str:
        return "NOT_DECOMPOSED"


#: Returned by a decomposition (or a fused kernel) for a call form it does not
#: handle: the backend falls back (to the decomposition, or to "unknown").
NOT_DECOMPOSED: Any = _NotDecomposed()


class _AsLinear:
    def __repr__(self) -> str:
        return "AS_LINEAR"


#: Returned by a decomposition when, for this call, the op is linear in its
#: input-dependent arguments (e.g. a division by a constant): the backend calls
#: the original op and keeps its gradient.
AS_LINEAR: Any = _AsLinear()


class OpKind(enum.Enum):
    """The classes of ops (see the module docstring)."""

    META = "meta"
    LINEAR = "linear"
    ELEMENTWISE = "elementwise"
    PRODUCT = "product"
    COMPOSITE = "composite"
    TRANSPARENT = "transparent"


#: ``derivative(z, out) -> f'(z)`` in closed form (optional; autograd otherwise).
Derivative = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class OpEntry:
    """What the backend knows about one torch function.

    Attributes:
        name: short name used in warnings and by rules (``"relu"``, ``"mul"``).
        kind: its :class:`OpKind`.
        function: the out-of-place function to call (for in-place variants
            such as ``Tensor.relu_`` the out-of-place twin ``torch.relu``).
        inplace: the original call writes into its first argument; the backend
            computes ``function`` out of place and copies the result back.
        derivative: ELEMENTWISE only: closed-form :math:`f'(z)` from
            ``(z, out)``; ``None`` means autograd computes it.
        gate: ELEMENTWISE / COMPOSITE: the output acts as a gate or weight
            (sigmoid, softmax) for product policies that treat gates as
            constants (Arras et al. 2017; Ali et al. 2022).
        factors: PRODUCT only: positions of the two factors in the call.
        decompose: COMPOSITE only: ``decompose(ctx, args, kwargs, consts)``
            computes the op from other ops (run with the backend's mode active,
            so every op it calls is classified in turn).
        constants: COMPOSITE only, optional: ``constants(args, kwargs,
            ref_args, ref_kwargs) -> dict``: values the decomposition treats as
            constants, computed once from both passes so that they are equal
            in both (e.g. softmax's shift).
        applies: COMPOSITE only, optional: ``applies(rule) -> bool``; when it
            returns ``False`` the op keeps its ordinary gradient for that rule
            (e.g. max-pooling for epsilon-LRP).
        fused: COMPOSITE only, optional: ``fused(ctx, func, args, kwargs,
            ref_args, ref_kwargs)`` computes the same as the decomposition in
            closed form with the context's rule, or returns ``NOT_DECOMPOSED``
            (:mod:`captum_unified.ops.fused`). A composite with ``constants`` or
            ``fused`` is *paired*: the baseline pass records its arguments and
            the input pass computes the baseline side itself.
        keeps_gate: LINEAR only: a gate (sigmoid / softmax output) stays a gate
            through this op (views, reshapes, dropout, ...).
        fallback: ELEMENTWISE only, optional: a decomposition (as
            ``decompose``) for calls in which an argument other than the first
            depends on the inputs (``clamp`` with an input-dependent bound).
        factor_keyword: PRODUCT only: the keyword of the second factor
            (``"other"``; ``"weight"`` for ``F.linear`` and convolutions).
        bias: PRODUCT only: position of an additive bias (keyword ``"bias"``),
            or ``None``; ``add_bias(out, bias)`` adds it.
        closed_form: PRODUCT only: ``"mul"`` or ``"matmul"`` when the factors'
            partial derivatives have a closed form (matmul: when both factors
            are at least 2-d), else ``""`` (autograd computes them).
        split: PRODUCT only, optional: ``split(entry, args, kwargs) ->
            ProductCall`` for calls whose factors do not sit at ``factors``
            (``einsum``); default :func:`captum_unified.ops.products.split_factors`.
    """

    name: str
    kind: OpKind
    function: Callable | None = None
    inplace: bool = False
    derivative: Derivative | None = None
    gate: bool = False
    factors: tuple[int, int] = (0, 1)
    decompose: Callable[..., Any] | None = None
    constants: Callable[..., dict[str, Any]] | None = None
    applies: Callable[[Any], bool] | None = None
    fused: Callable[..., Any] | None = None
    keeps_gate: bool = False
    fallback: Callable[..., Any] | None = None
    factor_keyword: str = "other"
    bias: int | None = None
    add_bias: Callable[[Tensor, Tensor], Tensor] | None = None
    closed_form: str = ""
    split: Callable[..., ProductCall] | None = None

    @property
    def paired(self) -> bool:
        return self.constants is not None or self.fused is not None


@dataclass(frozen=True)
class ProductCall:
    """A product op's call split into its factors (what the backend needs).

    Attributes:
        operands: the tensors multiplied (two for a product the rule treats;
            ``einsum`` may have any number).
        bilinear: ``bilinear(u, v)`` recomputes the op with ``u``, ``v`` in
            place of the two operands and without the bias (``None`` unless
            there are exactly two operands).
        bias: the additive bias (added after the product), or ``None``.
    """

    operands: tuple[Any, ...]
    bilinear: Callable[[Tensor, Tensor], Tensor] | None
    bias: Any = None


def op_name(func: Callable) -> str:
    """A readable name of a torch function object (``torch.tanh``,
    ``Tensor.relu_``, ``F.layer_norm``)."""
    name = getattr(func, "__name__", None) or repr(func)
    qual = getattr(func, "__qualname__", name)
    if "__get__" in qual:
        owner = getattr(func, "__self__", None)
        attr = getattr(owner, "__name__", None) if owner is not None else None
        return f"Tensor.{attr}" if attr else qual
    module = getattr(func, "__module__", None) or ""
    if qual.startswith(("TensorBase.", "Tensor.", "_TensorBase.")):
        return "Tensor." + qual.split(".", 1)[1]
    if module.startswith("torch.nn.functional") or module == "torch._C._nn":
        return f"F.{name}"
    if module.startswith("torch.special") or module == "torch._C._special":
        return f"torch.special.{name.removeprefix('special_')}"
    if module.startswith("torch.linalg") or module == "torch._C._linalg":
        return f"torch.linalg.{name.removeprefix('linalg_')}"
    return f"torch.{name}"


class OpTable(Mapping):
    """An immutable map from torch function objects to :class:`OpEntry`.

    Build new tables from an existing one with the ``with_*`` methods; the
    original is never changed.

    Example::

        >>> from captum_unified.ops import default_op_table
        >>> table = default_op_table().with_elementwise("my_act", my_act)
        >>> DeepLiftRescale(model, op_table=table).attribute(x, target=0)
    """

    def __init__(self, entries: Mapping[Callable, OpEntry]) -> None:
        self._entries = MappingProxyType(dict(entries))

    # Mapping interface ------------------------------------------------------
    def __getitem__(self, func: Callable) -> OpEntry:
        return self._entries[func]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def lookup(self, func: Callable) -> OpEntry | None:
        """The entry of ``func`` or ``None`` (unknown)."""
        try:
            return self._entries.get(func)
        except TypeError:  # unhashable callables are never in the table
            return None

    def names(self, kind: OpKind | None = None) -> list:
        """Sorted op names, of one kind or of all."""
        return sorted({e.name for e in self._entries.values() if kind is None or e.kind is kind})

    # Building new tables ----------------------------------------------------
    def with_entries(self, entries: Mapping[Callable, OpEntry]) -> OpTable:
        """A new table with ``entries`` added (replacing existing keys)."""
        merged: dict[Callable, OpEntry] = dict(self._entries)
        merged.update(entries)
        return OpTable(merged)

    def with_elementwise(
        self,
        name: str,
        function: Callable,
        *aliases: Callable,
        derivative: Derivative | None = None,
        gate: bool = False,
    ) -> OpTable:
        """A new table in which ``function`` (and ``aliases``: other function
        objects computing the same thing, e.g. the tensor method) is an
        element-wise nonlinearity whose derivative rules replace.

        Args:
            name (str): short name used in warnings.
            function (Callable): out-of-place ``f(z, *args, **kwargs)``; output
                ``i`` must depend on input ``i`` only.
            *aliases (Callable): other function objects for the same op.
                Functions whose name ends in ``_`` are treated as in-place.
            derivative (Callable, optional): closed-form ``f'(z)`` from
                ``(z, out)``.
            gate (bool): the output acts as a gate (see :class:`OpEntry`).
        """
        entry = OpEntry(name, OpKind.ELEMENTWISE, function, derivative=derivative, gate=gate)
        new = {function: entry}
        for alias in aliases:
            new[alias] = replace(entry, inplace=_is_inplace_name(alias))
        return self.with_entries(new)

    def with_linear(self, *functions: Callable, name: str | None = None, keeps_gate: bool = False) -> OpTable:
        """A new table in which ``functions`` are linear (ordinary gradient);
        ``keeps_gate``: a gate stays a gate through them (see :class:`OpEntry`)."""
        return self.with_entries(
            {
                f: OpEntry(name or op_name(f), OpKind.LINEAR, f, inplace=_is_inplace_name(f), keeps_gate=keeps_gate)
                for f in functions
            }
        )

    def with_meta(self, *functions: Callable) -> OpTable:
        """A new table in which ``functions`` carry no numeric dependence."""
        return self.with_entries({f: OpEntry(op_name(f), OpKind.META, f) for f in functions})

    def with_composite(
        self,
        name: str,
        decompose: Callable[..., Any],
        *functions: Callable,
        constants: Callable[..., dict[str, Any]] | None = None,
        applies: Callable[[Any], bool] | None = None,
        gate: bool = False,
    ) -> OpTable:
        """A new table in which ``functions`` are computed by ``decompose``
        (see :class:`OpEntry` for the arguments)."""
        return self.with_entries(
            {
                f: OpEntry(
                    name, OpKind.COMPOSITE, f, decompose=decompose, constants=constants, applies=applies, gate=gate
                )
                for f in functions
            }
        )

    def without_fused(self) -> OpTable:
        """A new table whose composites are always computed by their
        decomposition (no fused kernels): the reference the kernels are
        tested against, and a way to rule them out when debugging. The
        composites stay paired (the input pass recomputes their baseline side)."""
        return OpTable(
            {
                k: replace(v, fused=None, constants=v.constants or _no_constants) if v.fused is not None else v
                for k, v in self._entries.items()
            }
        )

    def without(self, *functions: Callable) -> OpTable:
        """A new table without ``functions`` (they become unknown)."""
        return OpTable({k: v for k, v in self._entries.items() if k not in set(functions)})

    def __repr__(self) -> str:
        counts = {k.value: 0 for k in OpKind}
        for e in self._entries.values():
            counts[e.kind.value] += 1
        inner = ", ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"OpTable({inner})"


def _no_constants(*args: Any) -> dict[str, Any]:
    return {}


def _is_inplace_name(func: Callable) -> bool:
    name = getattr(func, "__name__", "")
    return (
        name.endswith("_")
        and not name.endswith("__")
        or name in {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__idiv__"}
    )


def entries_from(pairs: Iterable[tuple[Callable, OpEntry]]) -> dict[Callable, OpEntry]:
    """Collect ``(function, entry)`` pairs, skipping functions this torch
    version does not have (``None``)."""
    return {f: e for f, e in pairs if f is not None}
