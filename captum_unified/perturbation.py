r"""The perturbation engine: batched forward passes of masked copies of the input.

Occlusion (one feature, a patch, a sliding window, a feature group),
Sensitivity-n (random subsets) and region perturbation all ask the same
question many times: *what does the model output when the features under mask*
:math:`M_k` *are set to the baseline?* This module answers it for many masks at
once: ``k`` perturbed copies of the whole batch go through one forward pass,
under ``torch.no_grad``, with ``k`` chosen under a bound on the rows per forward
pass and on the memory of the perturbed batch.

A mask source is a callable ``masks(start, stop)`` returning, for each input
tensor, a boolean tensor of shape ``(stop - start, 1 or batch, *input.shape[1:])``
(``True`` = replace by the baseline), together with the total count ``K``.
"""
from __future__ import annotations

from typing import Any, Callable, Iterator, Optional, Tuple

import torch
from torch import Tensor
from torch.overrides import TorchFunctionMode

from captum_unified._utils.common import expand_additional_args, expand_target, run_forward, select_target

__all__ = ["MaskSource", "iter_perturbed_outputs", "group_masks", "choose_chunk", "measured_forward",
           "DEFAULT_MAX_BATCH", "DEFAULT_MAX_MEMORY_MB", "DEFAULT_MAX_ACTIVATION_MB"]

MaskSource = Callable[[int, int], Tuple[Tensor, ...]]

#: Default bound on the rows (perturbed samples) of one forward pass.
DEFAULT_MAX_BATCH = 1024
#: Default bound on the memory of one perturbed input batch, in MiB.
DEFAULT_MAX_MEMORY_MB = 256.0
#: Default bound, on CPU, on the memory of the intermediate results of one
#: forward pass, in MiB (measured on the unperturbed forward; see
#: :func:`measured_forward`). On a CPU a forward pass whose activations do not
#: fit the caches is slower per row: Ancona's MNIST CNN (530 KiB per row) runs
#: Occlusion-1 about 1.4x slower at 96 rows per pass and 2x slower at 1024 than
#: at 32 on a 2-core CPU with 32 MiB of L3. Not applied on GPUs, which prefer
#: large batches.
DEFAULT_MAX_ACTIVATION_MB = 32.0


class _ActivationBytes(TorchFunctionMode):
    """Sum the bytes of every tensor a forward pass produces (no state kept)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, Tensor):
                self.total += t.numel() * t.element_size()
        return out


def measured_forward(
    forward_func: Callable,
    inputs: Tuple[Tensor, ...],
    target: Any,
    additional_args: Tuple[Any, ...],
) -> Tuple[Tensor, int]:
    """The selected outputs at ``inputs`` (under ``torch.no_grad``) and the bytes
    of intermediate results per input row that the forward pass produced.

    Every perturbation method needs the unperturbed output anyway; counting the
    tensors it creates (a :class:`~torch.overrides.TorchFunctionMode` that lives
    only for this call) tells :func:`choose_chunk` how many rows keep one forward
    pass within :data:`DEFAULT_MAX_ACTIVATION_MB`.
    """
    counter = _ActivationBytes()
    with torch.no_grad(), counter:
        out = run_forward(forward_func, inputs, target, additional_args)
    return out, counter.total // max(inputs[0].shape[0], 1)


def choose_chunk(
    n_masks: int,
    inputs: Tuple[Tensor, ...],
    perturbations_per_eval: Optional[int] = None,
    max_batch_size: Optional[int] = None,
    max_memory_mb: Optional[float] = None,
    activation_bytes_per_row: Optional[int] = None,
) -> int:
    """How many masks to evaluate per forward pass.

    ``perturbations_per_eval`` (Captum's argument) wins when given. Otherwise the
    largest count such that ``count * batch`` rows fit ``max_batch_size`` and the
    perturbed inputs fit ``max_memory_mb``. When ``max_batch_size`` is not given
    and the inputs are on the CPU, the rows are also bounded so that
    ``rows * activation_bytes_per_row`` (from :func:`measured_forward`) fits
    :data:`DEFAULT_MAX_ACTIVATION_MB`: a speed bound, which a given
    ``max_batch_size`` overrides. The count never changes the results.
    """
    if perturbations_per_eval is not None:
        if int(perturbations_per_eval) < 1:
            raise ValueError(f"perturbations_per_eval must be >= 1, got {perturbations_per_eval}.")
        return max(1, min(int(perturbations_per_eval), n_masks))
    batch = inputs[0].shape[0]
    if max_batch_size is None and activation_bytes_per_row and inputs[0].device.type == "cpu":
        by_cache = int(DEFAULT_MAX_ACTIVATION_MB * 2**20 // activation_bytes_per_row)
        max_batch_size = max(batch, min(DEFAULT_MAX_BATCH, by_cache))
    max_batch_size = DEFAULT_MAX_BATCH if max_batch_size is None else int(max_batch_size)
    max_memory_mb = DEFAULT_MAX_MEMORY_MB if max_memory_mb is None else float(max_memory_mb)
    if max_batch_size < 1 or max_memory_mb <= 0:
        raise ValueError("max_batch_size must be >= 1 and max_memory_mb > 0.")
    bytes_per_copy = sum(x.numel() * x.element_size() for x in inputs)
    by_rows = max_batch_size // max(batch, 1)
    by_memory = int(max_memory_mb * 2**20 // max(bytes_per_copy, 1))
    return max(1, min(n_masks, by_rows, by_memory))


def group_masks(groups: Tuple[Tensor, ...], offset: int = 0) -> MaskSource:
    """Mask source for a partition of the features into groups.

    Args:
        groups: per input, an integer tensor of shape ``(1 or batch, *input.shape[1:])``
            (or broadcastable to it) giving each feature's group id; ids are
            ``0..G-1`` across all inputs, a negative id is never masked.
        offset: added to the mask index (mask ``k`` masks group ``k + offset``).
    """

    def masks(start: int, stop: int) -> Tuple[Tensor, ...]:
        out = []
        for g in groups:
            ids = torch.arange(start + offset, stop + offset, device=g.device)
            ids = ids.view((-1,) + (1,) * g.dim())
            out.append(g.unsqueeze(0) == ids)
        return tuple(out)

    return masks


def iter_perturbed_outputs(
    forward_func: Callable,
    inputs: Tuple[Tensor, ...],
    baselines: Tuple[Tensor, ...],
    masks: MaskSource,
    n_masks: int,
    target: Any = None,
    additional_args: Tuple[Any, ...] = (),
    chunk: int = 1,
    show_progress: bool = False,
    desc: str = "Perturbations",
    unchanged_output: Optional[Tensor] = None,
) -> Iterator[Tuple[int, int, Tuple[Tensor, ...], Tensor]]:
    """Yield ``(start, stop, masks, outputs)`` for consecutive chunks of masks.

    ``outputs`` has shape ``(stop - start, batch)``: the selected output of each
    sample with the features under each mask set to the baseline.

    If ``unchanged_output`` (shape ``(batch,)``, the selected output at the
    unperturbed inputs) is given, a perturbed copy that equals its input
    exactly (every masked feature already holds its baseline value, e.g. the
    black background of an image under a zero baseline) is not sent through the
    model: its output is ``unchanged_output``. The model must then be
    deterministic (no dropout in training mode).
    """
    batch = inputs[0].shape[0]
    bar = None
    if show_progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_masks, desc=desc, unit="perturbation")
    try:
        with torch.no_grad():
            for start in range(0, n_masks, chunk):
                stop = min(start + chunk, n_masks)
                k = stop - start
                m = masks(start, stop)
                perturbed = tuple(
                    torch.where(mi, b.unsqueeze(0), x.unsqueeze(0)).reshape((k * batch,) + tuple(x.shape[1:]))
                    for x, b, mi in zip(inputs, baselines, m)
                )
                args = expand_additional_args(additional_args, k) if k > 1 else additional_args
                tgt = expand_target(target, k) if k > 1 else target
                rows = None
                if unchanged_output is not None:
                    rows = _changed_rows(inputs, baselines, m, k, batch)
                if rows is None:
                    raw = forward_func(*perturbed, *args)
                    out = select_target(raw, tgt, k * batch).reshape(k, batch)
                else:
                    out = unchanged_output.unsqueeze(0).repeat(k, 1).reshape(-1)
                    if rows.numel():
                        sub_args = tuple(_take_rows(a, rows, k * batch) for a in args)
                        raw = forward_func(*(p[rows] for p in perturbed), *sub_args)
                        out[rows] = select_target(raw, _take_target(tgt, rows, k * batch), rows.numel()).to(out.dtype)
                    out = out.reshape(k, batch)
                yield start, stop, m, out
                if bar is not None:
                    bar.update(k)
    finally:
        if bar is not None:
            bar.close()


def _changed_rows(inputs, baselines, masks, k: int, batch: int) -> Optional[Tensor]:
    """Indices of the ``k * batch`` perturbed rows that differ from their input,
    or ``None`` when all of them do (then the plain path is used)."""
    changed = torch.zeros(k, batch, dtype=torch.bool, device=inputs[0].device)
    for x, b, mi in zip(inputs, baselines, masks):
        d = mi & (x != b).unsqueeze(0)
        differs = d.reshape(k, d.shape[1], -1).any(-1)
        changed |= differs.expand(k, batch)
    if bool(changed.all()):
        return None
    return changed.reshape(-1).nonzero().squeeze(1)


def _take_rows(arg: Any, rows: Tensor, n_rows: int) -> Any:
    if isinstance(arg, Tensor) and arg.dim() > 0 and arg.shape[0] == n_rows:
        return arg[rows]
    return arg


def _take_target(target: Any, rows: Tensor, n_rows: int) -> Any:
    if isinstance(target, list) and len(target) == n_rows:
        return [target[i] for i in rows.tolist()]
    if isinstance(target, Tensor) and target.numel() == n_rows and target.dim() == 1:
        return target[rows]
    return target
