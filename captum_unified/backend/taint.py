r"""Which tensors of one forward pass depend on the explained inputs.

The backend treats an op only when one of its arguments depends on the
inputs. It follows that dependence itself, by "taint": the inputs (or a
layer's captured activation) are tainted, and so is every result of an op
with a tainted argument. Alongside it keeps three other marks:

* *masks*: boolean tensors computed from tainted ones (``h > 0``) and what is
  made from them without a float input (``mask.float()``, ``~mask``); an op
  that combines a mask with a tainted tensor is a selection the rule cannot
  attribute (reported by name);
* *gates*: outputs of sigmoid-like functions and softmax, and what keeps them
  a gate (views, reshapes), for the ``"gate"`` product policy;
* *rule outputs*: results of an element-wise op the rule was applied to (the
  rule is not applied a second time at the explained output).

Tensors are held by ``id`` for the duration of the pass (ids stay unique
while held; plain dicts cost ~20x less than weak ones); :meth:`release`
drops them after the forward pass.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from torch import Tensor

__all__ = ["TaintTracker"]


class TaintTracker:
    """The marks of one forward pass (see the module docstring)."""

    def __init__(self) -> None:
        self._taint: dict[int, Tensor] = {}
        self._masks: dict[int, Tensor] = {}
        self._gates: dict[int, Tensor] = {}
        self._rule_outputs: dict[int, Tensor] = {}

    # ---------------------------------------------------------------- taint
    def taint(self, *tensors: Any) -> None:
        """Mark tensors (and tensors inside tuples/lists) as input-dependent."""
        for t in tensors:
            if isinstance(t, Tensor):
                if t.is_floating_point() or t.is_complex():
                    self._taint[id(t)] = t
            elif isinstance(t, (list, tuple)):
                self.taint(*t)

    def adopt(self, t: Tensor) -> None:
        """Mark ``t`` input-dependent whatever its dtype (the baseline side of
        a tainted argument, recomputed by the input pass)."""
        self._taint[id(t)] = t

    def tainted(self, t: Any) -> TypeGuard[Tensor]:
        """Whether ``t`` depends on the explained inputs."""
        return isinstance(t, Tensor) and self._taint.get(id(t)) is t

    def any_tainted(self, items: Any, depth: int = 0) -> bool:
        """Whether an argument depends on the inputs (a tainted tensor or an
        input-dependent mask), looking two levels into lists and tuples."""
        for a in items:
            if isinstance(a, Tensor):
                if self._taint.get(id(a)) is a or self._masks.get(id(a)) is a:
                    return True
            elif depth < 2 and isinstance(a, (list, tuple)):
                if self.any_tainted(a, depth + 1):
                    return True
        return False

    # ---------------------------------------------------------------- masks
    @property
    def has_masks(self) -> bool:
        return bool(self._masks)

    def mask_args(self, items: Any, depth: int = 0) -> tuple[bool, bool]:
        """(any input-dependent mask, any tainted tensor) among the arguments."""
        mask = taint = False
        for a in items:
            if isinstance(a, Tensor):
                mask = mask or self._masks.get(id(a)) is a
                taint = taint or self._taint.get(id(a)) is a
            elif depth < 2 and isinstance(a, (list, tuple)):
                m, t = self.mask_args(a, depth + 1)
                mask, taint = mask or m, taint or t
        return mask, taint

    def mark_masks(self, result: Any) -> None:
        for t in result if isinstance(result, (list, tuple)) else (result,):
            if isinstance(t, Tensor):
                self._masks[id(t)] = t

    # ---------------------------------------------------------------- gates
    def is_gate(self, t: Any) -> bool:
        return isinstance(t, Tensor) and self._gates.get(id(t)) is t

    def mark_gate(self, result: Any) -> None:
        for t in result if isinstance(result, (list, tuple)) else (result,):
            if isinstance(t, Tensor):
                self._gates[id(t)] = t

    # --------------------------------------------------------- rule outputs
    def mark_rule_output(self, t: Tensor) -> None:
        self._rule_outputs[id(t)] = t

    def is_rule_output(self, t: Tensor) -> bool:
        """Whether ``t`` (or the tensor it is a view of) came out of an
        element-wise op the rule was applied to."""
        for c in (t, getattr(t, "_base", None)):
            if isinstance(c, Tensor) and self._rule_outputs.get(id(c)) is c:
                return True
        return False

    def carry(self, result: Tensor, target: Tensor) -> None:
        """``result`` was copied into ``target`` (an in-place call): ``target``
        is tainted and takes over ``result``'s gate and rule-output marks."""
        self.taint(target)
        if self.is_gate(result):
            self.mark_gate(target)
        if self._rule_outputs.get(id(result)) is result:
            self._rule_outputs[id(target)] = target

    def release(self) -> None:
        """Forget the tensors of the pass (call after the forward pass)."""
        self._taint.clear()
        self._masks.clear()
        self._gates.clear()
        self._rule_outputs.clear()
