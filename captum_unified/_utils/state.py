r"""Keep the user's model exactly as it was: :func:`preserve_model_state`.

Attribution runs the model's forward pass several times. In train mode that
changes the model: BatchNorm updates its running statistics (and
``num_batches_tracked``) at every forward pass, and other modules keep state
in buffers too. :func:`preserve_model_state` records every buffer of every
module the forward pass calls, the first time the module is called, and
writes the recorded values back when the block ends, also when it raises.
Parameters are never written by the methods; they are not copied.

It also collects the modules whose output is random or batch-dependent in
train mode (Dropout, BatchNorm, ...) and warns once per call: the answer of an
attribution method then depends on the random masks and on the batch.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _module

from captum_unified._utils.common import warn

__all__ = ["preserve_model_state", "preserves_model_state", "TRAIN_SENSITIVE"]

#: Module types whose forward pass is random or uses batch statistics in train mode.
TRAIN_SENSITIVE: tuple[type, ...] = (
    nn.modules.dropout._DropoutNd,
    nn.modules.batchnorm._BatchNorm,
    nn.modules.instancenorm._InstanceNorm,
    nn.RReLU,
)

_ACTIVE: ContextVar[bool] = ContextVar("captum_unified_state_guard", default=False)  # inner guards are no-ops


@contextmanager
def preserve_model_state(warn_train_mode: bool = True) -> Iterator[None]:
    """Restore every buffer the forward passes inside the block change.

    A global forward pre-hook (removed when the block ends, also on error)
    snapshots the buffers of each module the first time it is called. Nested
    uses are free: only the outermost block records and restores.

    Args:
        warn_train_mode (bool): warn once, naming the modules, if a module
            that is random or batch-dependent in train mode runs in train mode.
    """
    if _ACTIVE.get():
        yield
        return
    saved: dict[int, tuple[nn.Module, dict[str, Tensor]]] = {}
    training: dict[str, None] = {}

    def hook(module: nn.Module, args) -> None:
        key = id(module)
        if key in saved:
            return
        saved[key] = (
            module,
            {name: buf.detach().clone() for name, buf in module._buffers.items() if isinstance(buf, Tensor)},
        )
        if module.training and isinstance(module, TRAIN_SENSITIVE):
            training[type(module).__name__] = None

    handle = _module.register_module_forward_pre_hook(hook)
    token = _ACTIVE.set(True)
    try:
        yield
    finally:
        _ACTIVE.reset(token)
        handle.remove()
        with torch.no_grad():
            for module, buffers in saved.values():
                for name, value in buffers.items():
                    current = module._buffers.get(name)
                    if isinstance(current, Tensor) and current.shape == value.shape:
                        if not torch.equal(current, value):  # untouched buffers keep their version
                            current.copy_(value)
                    else:
                        module._buffers[name] = value
    if warn_train_mode and training:
        kinds = ", ".join(training)
        warn(
            f"The model is in train mode and contains {kinds}: Dropout draws new random "
            "masks at every forward pass and BatchNorm normalises with each batch's own "
            "statistics, so attributions vary between calls and depend on the batch, and "
            "methods that compare forward passes (DeepLIFT, occlusion, completeness "
            "deltas) compare different functions. Call model.eval() before attributing. "
            "(The model's buffers, e.g. BatchNorm running statistics, are restored after "
            "the call.)"
        )


F = TypeVar("F", bound=Callable[..., Any])


def preserves_model_state(method: F) -> F:
    """Decorator: run ``method`` inside :func:`preserve_model_state` (put it
    under ``@log_usage()`` so that Captum's ``NoiseTunnel`` finds the method
    through ``__wrapped__``)."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with preserve_model_state():
            return method(*args, **kwargs)

    return cast(F, wrapper)
