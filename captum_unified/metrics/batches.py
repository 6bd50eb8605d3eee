"""Data adapters of the evaluation runner: whatever the user's data is, a
sequence of ``(inputs, labels, *extras)`` batches.

Accepted (see :func:`~captum_unified.metrics.evaluate`): a tuple of tensors
``(inputs, labels, *extras)`` or a map-style dataset of samples, both cut into
``batch_size`` batches, and any iterable of batches (a DataLoader) as given.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["batches", "take", "to_device", "model_device"]


def _is_tensor_data(data: Any) -> bool:
    return isinstance(data, (tuple, list)) and len(data) >= 2 and all(isinstance(t, Tensor) for t in data)


def _is_map_dataset(data: Any) -> bool:
    return (
        hasattr(data, "__getitem__")
        and hasattr(data, "__len__")
        and not isinstance(data, (tuple, list, Tensor, torch.utils.data.DataLoader))
    )


def batches(data: Any, batch_size: int) -> Iterator[tuple[int, int, Any]]:
    """``(batch index, offset, batch)`` for every batch; a batch is a tuple
    ``(inputs, labels, *extras)``. Tensor tuples and map-style datasets are cut
    into ``batch_size`` batches (lazily: :func:`take` loads one), anything else is
    iterated as given (a DataLoader).

    Raises:
        ValueError: data tensors with different numbers of samples.
        TypeError: an iterated batch that is not an ``(inputs, labels, ...)`` tuple.
    """
    if _is_tensor_data(data) or _is_map_dataset(data):
        n = int(data[0].shape[0]) if _is_tensor_data(data) else len(data)
        if _is_tensor_data(data) and any(int(t.shape[0]) != n for t in data):
            raise ValueError(f"the data tensors have different numbers of samples {[int(t.shape[0]) for t in data]}.")
        for b, start in enumerate(range(0, n, batch_size)):
            yield b, start, (data, start, min(start + batch_size, n))
        return
    offset = 0
    for b, item in enumerate(data):
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise TypeError("each batch of `data` must be an (inputs, labels, ...) tuple.")
        yield b, offset, tuple(item)
        offset += int((item[0][0] if isinstance(item[0], (tuple, list)) else item[0]).shape[0])


def take(item: Any) -> tuple[Any, ...]:
    """Load a batch described lazily by :func:`batches`."""
    if isinstance(item, tuple) and len(item) == 3 and isinstance(item[1], int) and isinstance(item[2], int):
        data, start, stop = item
        if _is_tensor_data(data):
            return tuple(t[start:stop] for t in data)
        samples = [data[i] for i in range(start, stop)]
        return tuple(torch.utils.data.default_collate(samples))
    return item


def to_device(value: Any, device: torch.device | None) -> Any:
    """A tensor (or a tuple of them) on ``device``; anything else unchanged."""
    if device is None:
        return value
    if isinstance(value, Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(to_device(v, device) for v in value)
    return value


def model_device(forward_func: Any) -> torch.device | None:
    """The device of a module's first parameter (``None`` for a function or a parameterless module)."""
    if isinstance(forward_func, nn.Module):
        for p in forward_func.parameters():
            return p.device
    return None
