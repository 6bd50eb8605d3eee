r"""No NaN or inf leaves a method: finding the op where one appeared.

A non-finite attribution is never returned. When the gradients (or the
outputs) of a call are not finite, the backend runs the call once more with a
:class:`FiniteCheck` in its contexts, which watches every op the backend
treats:

* in the forward pass, an op whose input-dependent arguments are finite but
  whose result is not (the model itself overflows there, at the input or at
  the baseline);
* in the backward pass, a hook on every result records the first one whose
  gradient is not finite; the ops that consumed that result (known from the
  forward pass) are where it appeared.

:func:`non_finite_error` turns what it found into an error that names the op
and says what to do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

__all__ = ["FiniteCheck", "NonFiniteError", "non_finite_error"]


class NonFiniteError(FloatingPointError):
    """An attribution would contain NaN or inf; the message names the op."""


def _tensors(items: Any) -> list[Tensor]:
    out: list[Tensor] = []
    for a in items:
        if isinstance(a, Tensor):
            out.append(a)
        elif isinstance(a, (list, tuple)):
            out.extend(_tensors(a))
    return out


def _as_tuple(result: Any) -> tuple:
    return tuple(result) if isinstance(result, (list, tuple)) else (result,)


def _finite(t: Tensor) -> bool:
    return not t.is_floating_point() or bool(torch.isfinite(t).all())


class FiniteCheck:
    """What one diagnostic run saw (see the module docstring).

    Attributes:
        forward (str, optional): the first op with finite inputs and a
            non-finite result, with the pass it happened in.
        backward (str, optional): the op(s) in whose backward pass the first
            non-finite gradient appeared.
    """

    def __init__(self) -> None:
        self.forward: str | None = None
        self.backward: str | None = None
        self.recording = False
        self.rule_forward = False  # the op alone is finite there: the rule's treatment of it is not
        self._consumers: dict[int, tuple[Tensor, list[str]]] = {}

    def after(
        self, name: str, args: tuple, kwargs: dict, result: Any, untouched: Callable[[], Any] | None = None
    ) -> None:
        """Check one treated op (called by the dispatcher). ``untouched`` computes the
        op as the model does, without the rule: called only where the result is not
        finite, to tell the model's own overflow from the rule's (not for in-place
        calls, whose argument already holds the result)."""
        inputs = [t for t in _tensors((*args, *kwargs.values())) if t.is_floating_point()]
        for t in inputs:
            held = self._consumers.setdefault(id(t), (t, []))
            held[1].append(name)
        outputs = _tensors(_as_tuple(result))
        if self.forward is None and all(_finite(t) for t in inputs) and not all(_finite(t) for t in outputs):
            where = "the baseline pass" if self.recording else "the input pass"
            self.forward = f"'{name}' in {where} (finite arguments, non-finite result)"
            inplace = name.endswith("_") or bool(kwargs.get("inplace")) or "out" in kwargs
            if untouched is not None and not inplace:
                try:
                    plain = untouched()
                except Exception:  # the op cannot be rerun on its own: keep the model's reading
                    plain = None
                plain_out = _tensors(_as_tuple(plain)) if plain is not None else []
                if plain_out and all(_finite(t) for t in plain_out):
                    self.rule_forward = True
        for t in outputs:
            if t.requires_grad and t.is_floating_point():
                t.register_hook(self._hook(t))

    def _hook(self, t: Tensor):
        key = id(t)

        def hook(grad: Tensor) -> None:
            if self.backward is None and not _finite(grad):
                held = self._consumers.get(key)
                names = sorted(set(held[1])) if held is not None else []
                self.backward = ", ".join(f"'{n}'" for n in names) or "the explained output"

        return hook

    def leaves(self, tensors: tuple[Tensor, ...]) -> None:
        """Watch the gradients of the leaves too (their consumers are the first ops)."""
        for t in tensors:
            if t.requires_grad:
                t.register_hook(self._hook(t))

    def release(self) -> None:
        self._consumers.clear()


def non_finite_error(method: str, check: FiniteCheck | None, dtype: torch.dtype, what: str) -> NonFiniteError:
    """The error for a call whose ``what`` (gradients, outputs) are not finite."""
    if check is not None and check.forward is not None and check.rule_forward:
        where = (
            f"The first non-finite value appeared in the forward pass, in the rule's treatment of op "
            f"{check.forward}, although the op computed without the rule is finite there"
        )
        fix = (
            "the rule's option for that op is not bounded for inputs this far from the baseline: use the "
            "bounded default (DeepLIFT: softmax='logsumexp', norm='secant'), or a baseline closer to the input."
        )
    elif check is not None and check.forward is not None:
        where = f"The model's own forward pass overflows at op {check.forward}"
        fix = (
            f"{dtype} cannot hold the values the model computes there: run the model and the inputs in "
            "float64 (model.double(), x.double()), or use a baseline closer to the input."
        )
    elif check is not None and check.backward is not None:
        where = f"The first non-finite value appeared in the backward pass of op {check.backward}"
        fix = (
            f"the multipliers there overflow {dtype}: run the model and the inputs in float64 "
            "(model.double(), x.double()), or use a baseline closer to the input; if the op is one the "
            "backend decomposes, please report it with the model."
        )
    else:
        where = "The diagnostic rerun did not find the op (the model may not be deterministic)"
        fix = "run the model in float64 or use a baseline closer to the input."
    return NonFiniteError(f"{method}: the {what} would contain NaN or inf. {where}; {fix}")
