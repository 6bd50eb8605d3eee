r"""Input handling shared by all methods: Captum's formatting conventions plus
the validation that turns bad input into an error that says what to fix.

Everything here follows Captum's conventions (``inputs`` is a tensor or a tuple
of tensors with the batch first, ``baselines`` a number, a tensor broadcastable
per sample or a tuple of those, ``target`` as in :func:`captum._utils.common._select_targets`).
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Callable
from types import FrameType
from typing import Any

import torch
from captum._utils.common import (
    _expand_additional_forward_args,
    _expand_target,
    _format_additional_forward_args,
    _format_output,
    _is_tuple,
    _select_targets,
)
from captum._utils.typing import TargetType
from captum.attr._utils.common import _sum_rows
from torch import Tensor

__all__ = [
    "AttributionWarning",
    "format_inputs",
    "format_baselines",
    "format_additional_args",
    "run_forward",
    "select_target",
    "expand_target",
    "expand_additional_args",
    "check_finite",
    "check_target_count",
    "require_floating",
    "NEGATIVE_TARGETS",
    "sum_per_sample",
    "convergence_delta",
    "_format_output",
    "_is_tuple",
]


class AttributionWarning(UserWarning):
    """A method is used outside the conditions under which its result means what
    its paper says (for example DeepLIFT through a product of activations).

    Filter it like any warning: ``warnings.simplefilter("ignore", AttributionWarning)``.
    """


def check_finite(tensors: tuple[Tensor, ...], name: str = "inputs") -> None:
    """Raise ``ValueError`` if any tensor holds NaN or inf values."""
    for k, t in enumerate(tensors):
        if not isinstance(t, Tensor) or not t.is_floating_point():
            continue
        bad = ~torch.isfinite(t)
        if bool(bad.any()):
            where = f"{name}[{k}]" if len(tensors) > 1 else name
            raise ValueError(
                f"{where} contains {int(bad.sum())} NaN or inf value(s) "
                f"(shape {tuple(t.shape)}). Attributions of non-finite inputs are "
                "undefined: clean or impute them first (e.g. torch.nan_to_num)."
            )


def require_floating(inputs: tuple[Tensor, ...]) -> None:
    """Raise ``TypeError`` if an input is integer or bool: a gradient method
    differentiates with respect to its inputs, and a gradient with respect to
    token ids or category codes means nothing."""
    for k, t in enumerate(inputs):
        if not t.is_floating_point():
            raise TypeError(
                f"inputs[{k}] has dtype {t.dtype}; gradient methods need floating inputs (a gradient with "
                "respect to token ids or category codes means nothing). Attribute to the embedding layer "
                "instead (the Layer* classes, e.g. LayerGradientXInput(model, model.embedding)) or use a "
                "perturbation method (Occlusion1, OcclusionPatch)."
            )


def format_inputs(inputs: Tensor | tuple[Tensor, ...], same_batch: bool = True) -> tuple[Tensor, ...]:
    """Turn ``inputs`` into a tuple of tensors and check that they are usable.

    ``same_batch=False`` accepts input tensors whose first dimensions differ
    (Captum's perturbation methods allow it, e.g. a sparse index list beside
    the batch)."""
    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    if not isinstance(inputs, tuple) or not inputs:
        raise TypeError(
            "`inputs` must be a tensor or a non-empty tuple of tensors with the "
            f"batch as first dimension, got {type(inputs).__name__}."
        )
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor):
            raise TypeError(
                f"inputs[{k}] is a {type(t).__name__}; every input must be a "
                "torch.Tensor (pass non-tensor arguments through "
                "`additional_forward_args`)."
            )
        if t.dim() == 0:
            raise ValueError(
                f"inputs[{k}] is a 0-d tensor; inputs need a batch dimension first "
                "(use x.unsqueeze(0) for a single sample)."
            )
    batch = inputs[0].shape[0]
    for k, t in enumerate(inputs[1:], 1):
        if same_batch and t.shape[0] != batch:
            raise ValueError(
                f"inputs[{k}] has batch size {t.shape[0]} but inputs[0] has {batch}; "
                "all input tensors must share the first (batch) dimension."
            )
    check_finite(inputs)
    return inputs


def format_baselines(baselines: Any, inputs: tuple[Tensor, ...], name: str = "baselines") -> tuple[Tensor, ...]:
    """Return one baseline tensor per input, each broadcastable to its input.

    Accepted per input (Captum's forms): a number, a tensor of the input's full
    shape, of the per-sample shape ``input.shape[1:]``, with batch size 1, or
    any tensor with the input's number of dimensions that broadcasts to it
    (e.g. shape ``(batch, 1)`` over ``(batch, features)``). Anything else is a
    ``ValueError`` that names both shapes.

    Floating inputs get baselines of their dtype. Integer or bool inputs keep
    an integer baseline's dtype; a fractional baseline stays floating (the
    perturbed inputs are then floating, as in Captum).
    """
    if baselines is None:
        baselines = tuple(0 if not x.is_floating_point() else 0.0 for x in inputs)
    elif not isinstance(baselines, tuple):
        baselines = (baselines,)
    if len(baselines) != len(inputs):
        raise ValueError(
            f"{len(inputs)} input tensor(s) but {len(baselines)} {name}: give one "
            "baseline (number or tensor) per input tensor, in the same order."
        )
    out = []
    for k, (x, b) in enumerate(zip(inputs, baselines)):
        per_sample = (1,) + tuple(x.shape[1:])
        if isinstance(b, (bool, int, float)):
            if x.is_floating_point():
                dtype = x.dtype
            elif isinstance(b, float) and not float(b).is_integer():
                dtype = torch.get_default_dtype()
            else:
                dtype = x.dtype
            out.append(torch.full(per_sample, b, dtype=dtype, device=x.device))
            continue
        if not isinstance(b, Tensor):
            raise TypeError(f"{name}[{k}] is a {type(b).__name__}; a baseline must be a number or a torch.Tensor.")
        b = b.to(device=x.device, dtype=x.dtype if x.is_floating_point() else b.dtype)
        if b.dim() == 0:
            b = b.expand(per_sample)
        elif tuple(b.shape) == tuple(x.shape[1:]) and b.dim() == x.dim() - 1:
            b = b.unsqueeze(0)
        fits = b.dim() == x.dim() and b.shape[0] in (1, x.shape[0])
        if fits:
            try:
                fits = tuple(torch.broadcast_shapes(b.shape, x.shape)) == tuple(x.shape)
            except RuntimeError:
                fits = False
        if not fits:
            raise ValueError(
                f"{name}[{k}] has shape {tuple(b.shape)}, which does not fit input "
                f"shape {tuple(x.shape)}. Use a number, a tensor of shape "
                f"{tuple(x.shape)}, {per_sample} or {tuple(x.shape[1:])}, or one that "
                "broadcasts to the input with the same number of dimensions."
            )
        out.append(b)
    check_finite(tuple(out), name)
    return tuple(out)


def format_additional_args(additional_forward_args: Any) -> tuple[Any, ...]:
    args = _format_additional_forward_args(additional_forward_args)
    return () if args is None else tuple(args)


#: The rule for negative targets (Captum 0.9's behaviour, the same in every method).
NEGATIVE_TARGETS = (
    "a single index (an int, a tuple of ints, a one-element tensor, or the ints of a per-sample list of "
    "tuples) may be negative and counts from the end as in Python (target=-1 explains the last output); "
    "the entries of a per-sample list of ints or 1-d tensor must be 0..C-1"
)


def check_target_count(target: TargetType, batch: int) -> None:
    """A per-sample ``target`` (a list, or a tensor of more than one entry)
    must have one entry per sample of the user's batch; checked before any
    method repeats the batch (over integration steps, baselines, noise), so
    that the error reports the user's numbers.

    Raises:
        ValueError: a list or tensor target whose length is not ``batch``.
    """
    if isinstance(target, list) and len(target) != batch:
        raise ValueError(f"target list has {len(target)} entries for a batch of {batch}; give one target per sample.")
    if isinstance(target, Tensor) and target.numel() != 1 and (target.dim() != 1 or target.numel() != batch):
        raise ValueError(
            f"target tensor has shape {tuple(target.shape)}; give one target per sample "
            f"(shape ({batch},)) or a single index."
        )


def _check_target(output: Tensor, target: TargetType) -> None:
    """Validate ``target`` against ``output`` and raise a readable error.

    Negative indices follow Captum 0.9 (:data:`NEGATIVE_TARGETS`): a single
    index counts from the end, as Python's indexing and Captum's
    ``output[:, target]`` do; a negative entry of a per-sample list of ints or
    1-d tensor, which Captum's ``torch.gather`` rejects, is a ``ValueError``
    that says so."""
    if target is None:
        if output.dim() > 1 and output[0].numel() > 1:
            raise ValueError(
                f"The model returns {output[0].numel()} values per sample (output "
                f"shape {tuple(output.shape)}) but `target` is None; pass the index "
                "of the output to explain, e.g. target=3 or target=labels."
            )
        return
    num = output.shape[0]

    def check_index(t: int, axis: int) -> None:
        if output.dim() <= axis:
            raise ValueError(
                f"target {t!r} indexes output dimension {axis}, but the model output has shape {tuple(output.shape)}."
            )
        size = output.shape[axis]
        if not -size <= int(t) < size:
            raise IndexError(
                f"target {int(t)} is out of range for a model output with {size} "
                f"values per sample (valid: 0..{size - 1}, or -{size}..-1 counting from the end)."
            )

    def check_per_sample(values: Tensor, what: str) -> None:
        size = output.shape[1] if output.dim() > 1 else 0
        if bool(((values >= 0) & (values < size)).all()):
            return
        i = int((~((values >= 0) & (values < size))).nonzero()[0, 0])
        v = int(values[i])
        if -size <= v < 0:
            raise ValueError(
                f"{what} holds {v} (sample {i}); per-sample targets must be 0..{size - 1}: only a single "
                f"index counts from the end (Captum's convention). Use {v % size} (or target={v} for every sample)."
            )
        check_index(v, 1)

    if isinstance(target, int):
        check_index(target, 1)
    elif isinstance(target, tuple):
        for ax, t in enumerate(target, 1):
            if isinstance(t, int):
                check_index(t, ax)
    elif isinstance(target, Tensor):
        if target.numel() == 1:
            check_index(int(target.item()), 1)
        else:
            if target.dim() != 1 or target.numel() != num:
                raise ValueError(
                    f"target tensor has shape {tuple(target.shape)}; give one target "
                    f"per sample (shape ({num},)) or a single index."
                )
            if output.dim() <= 1:
                check_index(int(target[0]), 1)
            check_per_sample(target.reshape(-1), "target tensor")
    elif isinstance(target, list):
        if len(target) != num:
            raise ValueError(f"target list has {len(target)} entries for a batch of {num}; give one target per sample.")
        if target and all(isinstance(t, int) for t in target):
            if output.dim() <= 1:
                check_index(target[0], 1)
            check_per_sample(torch.tensor(target), "target list")
        for t in target:
            if isinstance(t, tuple):
                for ax, ti in enumerate(t, 1):
                    check_index(ti, ax)
    else:
        raise TypeError(
            f"target of type {type(target).__name__} is not supported: use an int, "
            "a tuple of ints, a list or a 1-d tensor of per-sample indices, or None."
        )


def select_target(output: Tensor, target: TargetType, batch_size: int) -> Tensor:
    """Check the model output and select the explained values, shape ``(batch,)``."""
    if not isinstance(output, Tensor):
        raise TypeError(
            f"The model returned a {type(output).__name__}; attribution needs a "
            "tensor output (wrap the model to return the logits tensor)."
        )
    if output.dim() == 0:
        if batch_size != 1:
            raise ValueError(
                f"The model returned a scalar for a batch of {batch_size} samples; "
                "return one value per sample (shape (batch,) or (batch, classes))."
            )
        output = output.reshape(1)
    if output.shape[0] != batch_size:
        raise ValueError(
            f"The model output has batch size {output.shape[0]} but the input has "
            f"{batch_size}: the model must return one row per input sample "
            "(check reshapes such as x.view(-1, ...) that mix samples)."
        )
    _check_target(output, target)
    selected = _select_targets(output, target)
    if selected.dim() > 1:
        if selected[0].numel() != 1:
            raise ValueError(
                f"target {target!r} selects {selected[0].numel()} output values per sample; it must select exactly one."
            )
        selected = selected.reshape(batch_size)
    return selected


def run_forward(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    target: TargetType,
    additional_args: tuple[Any, ...],
) -> Tensor:
    """Call the model and return the selected outputs, shape ``(batch,)``."""
    output = forward_func(*inputs, *additional_args)
    return select_target(output, target, inputs[0].shape[0])


def expand_target(target: TargetType, n: int) -> TargetType:
    """Repeat a per-sample target for ``n`` stacked copies of the batch."""
    return _expand_target(target, n)


def expand_additional_args(args: tuple[Any, ...], n: int) -> tuple[Any, ...]:
    """Repeat per-sample tensors in ``additional_forward_args`` ``n`` times."""
    if not args:
        return args
    return tuple(_expand_additional_forward_args(args, n))


def sum_per_sample(tensors: tuple[Tensor, ...]) -> Tensor:
    """Sum each sample's values over every input tensor: shape ``(batch,)``."""
    return sum(_sum_rows(t) for t in tensors)


def warn(message: str, category: type[Warning] | None = None) -> None:
    """Emit an :class:`AttributionWarning` (or ``category``, a subclass) attributed to the user's call site
    (the first frame outside ``captum_unified``, ``captum`` and ``contextlib``,
    whose ``__exit__`` runs the end of a ``with`` block): the warning names the
    user's line, and Python's once-per-location filter counts each of the
    user's calls, not one line inside the package."""
    modules = (sys.modules["captum_unified"], sys.modules.get("captum"))
    files = [getattr(m, "__file__", None) for m in modules]
    roots: tuple[str, ...] = tuple(os.path.dirname(os.path.abspath(f)) + os.sep for f in files if f)
    roots += (os.path.abspath(contextlib.__file__),)
    frame: FrameType | None = sys._getframe(1)
    level = 2
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(roots):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category or AttributionWarning, stacklevel=level)


def convergence_delta(
    forward_func: Callable,
    attrs: tuple[Tensor, ...],
    inputs: tuple[Tensor, ...],
    baselines: tuple[Tensor, ...],
    target: TargetType,
    additional_args: tuple[Any, ...],
) -> Tensor:
    r""":math:`\sum_i R_i - (S_c(x) - S_c(\bar x))` per sample (two forward passes)."""
    with torch.no_grad():
        end = run_forward(forward_func, inputs, target, additional_args)
        start = run_forward(
            forward_func, tuple(b.expand_as(x) for b, x in zip(baselines, inputs)), target, additional_args
        )
    return sum_per_sample(attrs) - (end - start)
