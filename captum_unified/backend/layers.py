r"""Layer capture: attribution to a layer's output (or input) instead of the
model's inputs.

A forward (pre-)hook on each layer captures its activation, makes it a leaf
of the gradient computation and marks it input-dependent for the context; the
model continues with a copy. The hooks are removed in ``finally`` by the
entry point (:mod:`~captum_unified.backend.gradients`).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor, nn

from captum_unified._utils.state import TRAIN_SENSITIVE

__all__ = ["LayerCapture", "train_sensitive"]


class LayerCapture:
    """Forward (pre-)hook that captures a layer's output (or input) and makes it
    a leaf of the gradient computation. Removed by :meth:`remove`."""

    def __init__(
        self, layer: nn.Module, use_input: bool, make_leaf: bool, on_capture: Callable[..., None] | None = None
    ) -> None:
        self.tensors: tuple[Tensor, ...] | None = None
        self.calls = 0
        self.was_tuple = False
        self.make_leaf = make_leaf
        self.on_capture = on_capture
        self.layer = layer
        if use_input:
            self.handle = layer.register_forward_pre_hook(self._pre_hook)
        else:
            self.handle = layer.register_forward_hook(self._hook)

    def _prepare(self, value):
        is_tuple = isinstance(value, tuple)
        items = value if is_tuple else (value,)
        self.calls += 1
        if self.calls > 1:
            return value
        captured, passed = [], []
        for t in items:
            if isinstance(t, Tensor):
                if t.is_floating_point() and self.make_leaf and not t.requires_grad:
                    t = t.detach().requires_grad_(True)
                captured.append(t)
                if self.on_capture is not None:
                    self.on_capture(t)
                # the model continues with a copy: in-place ops after the layer
                # (an in-place ReLU) then change neither the captured values nor
                # a leaf, and gradients flow through the copy to the captured
                # tensor (also from a later captured layer: lists of layers).
                t = t.clone() if t.is_floating_point() else t
            passed.append(t)
        self.was_tuple = is_tuple and len(passed) > 1  # Captum: a tuple only for several tensors
        self.tensors = tuple(captured)
        return tuple(passed) if is_tuple else passed[0]

    def _pre_hook(self, module, args):
        return self._prepare(tuple(args))

    def _hook(self, module, args, output):
        return self._prepare(output)

    def remove(self) -> None:
        self.handle.remove()

    def result(self) -> tuple[Tensor, ...]:
        if self.calls == 0 or self.tensors is None:
            raise RuntimeError(
                f"The layer {type(self.layer).__name__} was not called during the forward "
                "pass; pass a module that the model actually uses."
            )
        if self.calls > 1:
            raise RuntimeError(
                f"The layer {type(self.layer).__name__} was called {self.calls} times in one "
                "forward pass; layer attribution needs a layer used once (give each "
                "call site its own module)."
            )
        floating = [t for t in self.tensors if t.is_floating_point()]
        if not floating:
            raise TypeError(
                f"The layer {type(self.layer).__name__} outputs no floating tensor "
                f"(dtypes {[str(t.dtype) for t in self.tensors]}); choose a layer whose output is floating "
                "(e.g. the embedding layer, not its integer input)."
            )
        return self.tensors


def modules_of(forward_func: Callable) -> list[nn.Module]:
    owner = forward_func if isinstance(forward_func, nn.Module) else getattr(forward_func, "__self__", None)
    return list(owner.modules()) if isinstance(owner, nn.Module) else []


def train_sensitive(forward_func: Callable) -> bool:
    """Whether the model has a module in train mode whose forward couples the
    samples of a batch or draws at random (BatchNorm, Dropout)."""
    return any(m.training and isinstance(m, TRAIN_SENSITIVE) for m in modules_of(forward_func))
