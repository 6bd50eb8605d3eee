r"""The perturbation engine: batched forward passes of masked copies of the input.

Occlusion (one feature, a patch, a sliding window, a feature group),
Sensitivity-n (random subsets), region perturbation, infidelity (random
squares) and the evaluation runner all ask the same question many times:
*what does the model output when the features under mask* :math:`M_k` *are set
to the baseline?* :class:`PerturbationEngine` answers it for many masks at
once and owns everything around the question:

* the **unperturbed output** :math:`S_c(x)` (one forward pass, which also
  measures the memory of the model's intermediate results per row);
* the **loop**: ``k`` perturbed copies of the whole batch go through one
  forward pass under ``torch.no_grad``, ``k`` chosen under a **memory budget**
  (:func:`choose_chunk`: on the CPU the intermediate results of a pass stay
  within the caches, on CUDA within a share of the device's free memory);
* **skip-unchanged**: a perturbed row equal to its input (every masked feature
  already at its baseline) is not sent through the model; its output is the
  unperturbed one;
* **progress** (``show_progress``: a tqdm bar, Captum's convention),
  **device placement** (masks are moved to the inputs' device) and
  **model state** (:func:`~captum_unified._utils.state.preserve_model_state`:
  buffers the forward passes change are restored, a train-mode model warns);
* Captum's **aggregate mode**: a model that returns one value (or one fixed
  tensor) for the whole batch, as :class:`captum.attr.FeatureAblation`
  accepts, is evaluated one perturbation per pass and its outputs are
  attributed as a whole (attributions of shape ``(n_outputs, *x.shape[1:])``).

A caller only describes its perturbations: a *mask source*
``masks(start, stop)`` returning, for each input tensor, a boolean tensor of
shape ``(stop - start, 1 or rows, *s)`` broadcastable to
``(stop - start, *input.shape)`` (``True`` = replace by the baseline).
Feature groups (:class:`~captum_unified.feature_groups.FeatureGroups`) make
the masks of occlusion and of the metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import torch
from captum._utils.common import _select_targets
from torch import Tensor
from torch.overrides import TorchFunctionMode
from tqdm.auto import tqdm

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import (
    expand_additional_args,
    expand_target,
    select_target,
)
from captum_unified._utils.state import preserve_model_state

__all__ = [
    "PerturbationEngine",
    "MaskSource",
    "choose_chunk",
    "DEFAULT_MAX_BATCH",
    "DEFAULT_MAX_BATCH_CUDA",
    "DEFAULT_MAX_MEMORY_MB",
    "DEFAULT_MAX_ACTIVATION_MB",
    "CUDA_MEMORY_FRACTION",
]

MaskSource = Callable[[int, int], tuple[Tensor, ...]]
OnChunk = Callable[[int, int, tuple[Tensor, ...], Tensor], None]

#: Default bound on the rows (perturbed samples) of one forward pass on the CPU.
DEFAULT_MAX_BATCH = 1024
#: Default bound on the rows of one forward pass on CUDA (the free memory bounds it too).
DEFAULT_MAX_BATCH_CUDA = 16384
#: Default bound on the memory of one perturbed input batch on the CPU, in MiB.
DEFAULT_MAX_MEMORY_MB = 256.0
#: Default bound, on CPU, on the memory of the intermediate results of one
#: forward pass, in MiB (measured on the unperturbed forward). On a CPU a
#: forward pass whose activations do not fit the caches is slower per row:
#: Ancona's MNIST CNN (530 KiB per row) runs Occlusion-1 about 1.4x slower at
#: 96 rows per pass and 2x slower at 1024 than at 32 on a 2-core CPU with
#: 32 MiB of L3.
DEFAULT_MAX_ACTIVATION_MB = 32.0
#: Share of the CUDA device's free memory (``torch.cuda.mem_get_info``) that
#: the perturbed inputs and the intermediate results of one pass may take.
CUDA_MEMORY_FRACTION = 0.5


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


def choose_chunk(
    n_masks: int,
    inputs: tuple[Tensor, ...],
    perturbations_per_eval: int | None = None,
    max_batch_size: int | None = None,
    max_memory_mb: float | None = None,
    activation_bytes_per_row: int | None = None,
    free_memory_bytes: int | None = None,
) -> int:
    """How many masks (perturbed copies of the batch) to evaluate per forward pass.

    ``perturbations_per_eval`` (Captum's argument) wins when given. Otherwise
    the largest count such that ``count * batch`` rows fit ``max_batch_size``
    and the perturbed inputs fit ``max_memory_mb``. Defaults when these are not
    given:

    * CPU: at most :data:`DEFAULT_MAX_BATCH` rows, and as many as keep
      ``rows * activation_bytes_per_row`` within
      :data:`DEFAULT_MAX_ACTIVATION_MB` (a speed bound); perturbed inputs within
      :data:`DEFAULT_MAX_MEMORY_MB`.
    * CUDA (``free_memory_bytes`` from ``torch.cuda.mem_get_info``): as many
      rows as keep the perturbed inputs plus the intermediate results within
      :data:`CUDA_MEMORY_FRACTION` of the free memory, at most
      :data:`DEFAULT_MAX_BATCH_CUDA`.

    At least one copy of the batch goes through each pass. The count never
    changes the results beyond floating-point rounding in the model.
    """
    if perturbations_per_eval is not None:
        if int(perturbations_per_eval) < 1:
            raise ValueError(f"perturbations_per_eval must be >= 1, got {perturbations_per_eval}.")
        return max(1, min(int(perturbations_per_eval), n_masks))
    batch = max(int(inputs[0].shape[0]), 1)
    bytes_per_copy = sum(x.numel() * x.element_size() for x in inputs)
    if max_batch_size is None:
        if free_memory_bytes is not None:
            per_row = (activation_bytes_per_row or 0) + bytes_per_copy / batch
            by_memory = int(CUDA_MEMORY_FRACTION * free_memory_bytes // max(per_row, 1))
            max_batch_size = max(batch, min(DEFAULT_MAX_BATCH_CUDA, by_memory))
        elif activation_bytes_per_row and inputs[0].device.type == "cpu":
            by_cache = int(DEFAULT_MAX_ACTIVATION_MB * 2**20 // activation_bytes_per_row)
            max_batch_size = max(batch, min(DEFAULT_MAX_BATCH, by_cache))
        else:
            max_batch_size = DEFAULT_MAX_BATCH
    if max_memory_mb is None:
        max_memory_mb = (
            CUDA_MEMORY_FRACTION * free_memory_bytes / 2**20 if free_memory_bytes is not None else DEFAULT_MAX_MEMORY_MB
        )
    max_batch_size, max_memory_mb = int(max_batch_size), float(max_memory_mb)
    if max_batch_size < 1 or max_memory_mb <= 0:
        raise ValueError("max_batch_size must be >= 1 and max_memory_mb > 0.")
    by_rows = max_batch_size // batch
    by_memory = int(max_memory_mb * 2**20 // max(bytes_per_copy, 1))
    return max(1, min(n_masks, by_rows, by_memory))


class PerturbationEngine:
    r"""Forward passes of perturbed copies of one call's inputs.

    Args:
        forward_func (Callable): the model.
        call (AttributionCall): the formatted inputs, baselines, target and
            additional arguments (formatted once by the caller).
        perturbations_per_eval (int, optional): perturbed copies of the batch
            per forward pass (Captum's argument); overrides the two bounds.
        max_batch_size (int, optional): bound on the rows of one forward pass.
        max_memory_mb (float, optional): bound on the perturbed input batch, MiB.
        show_progress (bool): show a tqdm bar per :meth:`outputs` call.
        skip_unchanged (bool): do not run rows equal to their input (their
            output is the unperturbed one; the model must be deterministic).

    Use it as a context manager to restore the model's buffers once after
    several calls (every method also guards itself)::

        with PerturbationEngine(model, call) as engine:
            diffs = engine.changes(masks, n_masks)   # (n_masks, n_outputs)
    """

    def __init__(
        self,
        forward_func: Callable,
        call: AttributionCall,
        *,
        perturbations_per_eval: int | None = None,
        max_batch_size: int | None = None,
        max_memory_mb: float | None = None,
        show_progress: bool = False,
        skip_unchanged: bool = True,
    ) -> None:
        if perturbations_per_eval is not None and (
            isinstance(perturbations_per_eval, bool) or int(perturbations_per_eval) < 1
        ):
            raise ValueError(f"perturbations_per_eval must be an integer >= 1, got {perturbations_per_eval!r}.")
        if max_batch_size is not None and int(max_batch_size) < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}.")
        if max_memory_mb is not None and float(max_memory_mb) <= 0:
            raise ValueError(f"max_memory_mb must be > 0, got {max_memory_mb}.")
        self.forward_func = forward_func
        self.call = call
        self.perturbations_per_eval = perturbations_per_eval
        self.max_batch_size = max_batch_size
        self.max_memory_mb = max_memory_mb
        self.show_progress = bool(show_progress)
        self.skip_unchanged = bool(skip_unchanged)
        self.ragged = len({int(x.shape[0]) for x in call.inputs}) > 1
        self._original: Tensor | None = None
        self._aggregate = False
        self._act_bytes = 0
        self._differs: tuple[Tensor, ...] | None = None
        self._guard: AbstractContextManager[None] | None = None

    # --------------------------------------------------------------- context
    def __enter__(self) -> PerturbationEngine:
        self._guard = preserve_model_state()
        self._guard.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.__exit__(*exc)

    # ------------------------------------------------------ unperturbed pass
    @property
    def original(self) -> Tensor:
        r""":math:`S_c(x)`, shape ``(n_outputs,)`` (the batch, or the values of
        an aggregate model's output); computed once."""
        if self._original is None:
            call = self.call
            counter = _ActivationBytes()
            with preserve_model_state(), torch.no_grad(), counter:
                raw = self.forward_func(*call.inputs, *call.additional_args)
                self._aggregate = _is_aggregate(raw, call.batch)
                self._original = self._select(raw, call.target, call.batch)
            self._act_bytes = counter.total // max(call.batch, 1)
        return self._original

    @property
    def aggregate(self) -> bool:
        """Whether the model returns one output for the whole batch (Captum's aggregate mode)."""
        _ = self.original
        return self._aggregate

    @property
    def n_outputs(self) -> int:
        return int(self.original.numel())

    @property
    def activation_bytes_per_row(self) -> int:
        """Bytes of intermediate results per input row of the unperturbed pass."""
        _ = self.original
        return self._act_bytes

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of output changes for the metrics and for averaged
        occlusion: the output's when floating, else the default float dtype."""
        d = self.original.dtype
        return d if d.is_floating_point else torch.get_default_dtype()

    @property
    def ablation_dtype(self) -> torch.dtype:
        """The dtype of occlusion's attributions, as Captum's
        :class:`~captum.attr.FeatureAblation`: the model output's (a model with
        integer outputs gives integer output changes); a bool output, where
        Captum raises, gives :attr:`dtype`."""
        d = self.original.dtype
        return self.dtype if d == torch.bool else d

    def _select(self, raw: Any, target: Any, rows: int) -> Tensor:
        if not self._aggregate:
            return select_target(raw, target, rows)
        out = _as_tensor(raw)
        if target is not None:
            if out.dim() == 0:
                raise ValueError(
                    "The model returns one scalar for the whole batch (Captum's aggregate mode); "
                    "there is nothing to select: pass target=None."
                )
            if isinstance(target, (list, Tensor)) and not (isinstance(target, Tensor) and target.numel() == 1):
                raise ValueError(
                    "The model returns one output for the whole batch (Captum's aggregate mode), so a "
                    "per-sample target does not apply: pass an int, a tuple or None."
                )
            out = _select_targets(out, target)
        return out.reshape(-1)

    # ------------------------------------------------------------- chunking
    def chunk(self, n_masks: int) -> int:
        """Perturbed copies of the batch per forward pass for ``n_masks`` masks
        (1 in aggregate mode and for inputs whose first dimensions differ)."""
        if n_masks < 1:
            return 1
        if self.aggregate or self.ragged:
            return 1
        free = None
        device = self.call.inputs[0].device
        if device.type == "cuda" and self.max_batch_size is None:
            free = int(torch.cuda.mem_get_info(device)[0])
        return choose_chunk(
            n_masks,
            self.call.inputs,
            self.perturbations_per_eval,
            self.max_batch_size,
            self.max_memory_mb,
            self.activation_bytes_per_row,
            free,
        )

    # ----------------------------------------------------------------- loop
    def outputs(
        self, masks: MaskSource, n_masks: int, desc: str = "Perturbations", on_chunk: OnChunk | None = None
    ) -> Tensor:
        """Selected outputs with the features under each mask set to the
        baseline: ``(n_masks, n_outputs)``, in the output's dtype.

        ``on_chunk(start, stop, masks, outputs)`` (optional) sees every chunk
        of masks with its ``(stop - start, n_outputs)`` outputs.
        """
        with preserve_model_state():
            original = self.original
            result = torch.empty(n_masks, self.n_outputs, dtype=original.dtype, device=original.device)
            if n_masks == 0:
                return result
            chunk = self.chunk(n_masks)
            bar = None
            if self.show_progress:
                bar = tqdm(total=n_masks, desc=desc, unit="perturbation")
            try:
                with torch.no_grad():
                    for start in range(0, n_masks, chunk):
                        stop = min(start + chunk, n_masks)
                        m = tuple(mi.to(x.device) for mi, x in zip(masks(start, stop), self.call.inputs))
                        out = self._forward_masks(m, stop - start)
                        result[start:stop] = out
                        if on_chunk is not None:
                            on_chunk(start, stop, m, out)
                        if bar is not None:
                            bar.update(stop - start)
            finally:
                if bar is not None:
                    bar.close()
            return result

    def changes(
        self,
        masks: MaskSource,
        n_masks: int,
        desc: str = "Perturbations",
        on_chunk: OnChunk | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        r"""Output changes :math:`S_c(x) - S_c(x_{[x_{M_k} = \bar x_{M_k}]})`:
        ``(n_masks, n_outputs)`` in ``dtype`` (default :attr:`dtype`)."""
        dtype = self.dtype if dtype is None else dtype
        out = self.outputs(masks, n_masks, desc, on_chunk)
        return self.original.to(dtype).unsqueeze(0) - out.to(dtype)

    def occlude(self, groups: Any, desc: str = "Occlusion", dtype: torch.dtype | None = None) -> tuple[Tensor, ...]:
        r"""Occlusion of a partition: every feature of group :math:`G_k` gets
        :math:`S_c(x) - S_c(x_{[x_{G_k} = \bar x_{G_k}]})` (Captum's
        :class:`~captum.attr.FeatureAblation`). A group whose features already
        hold their baseline costs no forward pass and gets exactly 0.

        Args:
            groups (FeatureGroups): the partition.
            dtype (torch.dtype, optional): of the attributions; default
                :attr:`dtype` (floating). Captum's FeatureAblation keeps the
                output's: :attr:`ablation_dtype`.

        Returns:
            Per input, attributions of shape ``(n_outputs, *x.shape[1:])`` (the
            input's shape except in aggregate mode).
        """
        if (self.aggregate or self.ragged) and groups.per_sample:
            raise ValueError(
                "A per-sample feature_mask needs one model output per sample; this model returns one "
                "output for the whole batch (aggregate mode) or the inputs' first dimensions differ: "
                "give a mask with first dimension 1."
            )
        diffs = self.changes(groups.single_masks, groups.n_groups, desc, dtype=dtype)  # (G, n_outputs)
        return groups.scatter(diffs.t())

    # ---------------------------------------------------------------- rows
    def _forward_masks(self, masks: tuple[Tensor, ...], k: int) -> Tensor:
        call = self.call
        n = self.n_outputs
        if self.aggregate or self.ragged:  # whole copies, one per forward pass
            return torch.cat([self._forward_whole(tuple(mi[j : j + 1] for mi in masks)) for j in range(k)])
        perturbed = tuple(
            torch.where(mi, b.unsqueeze(0), x.unsqueeze(0)).reshape((k * x.shape[0],) + tuple(x.shape[1:]))
            for x, b, mi in zip(call.inputs, call.baselines, masks)
        )
        args = expand_additional_args(call.additional_args, k) if k > 1 else call.additional_args
        tgt = expand_target(call.target, k) if k > 1 else call.target
        rows = self._changed_rows(masks, k) if self.skip_unchanged else None
        try:
            if rows is None:
                return self._rows_forward(perturbed, args, tgt, k * n).reshape(k, n)
            out = self.original.unsqueeze(0).repeat(k, 1).reshape(-1)
            if rows.numel():
                sub_args = tuple(_take_rows(a, rows, k * n) for a in args)
                sub = self._rows_forward(
                    tuple(p[rows] for p in perturbed), sub_args, _take_target(tgt, rows, k * n), rows.numel()
                )
                out[rows] = sub.to(out.dtype)
            return out.reshape(k, n)
        except _AggregateOutput:
            # a batch of one sample whose model returns one value however many rows
            # it gets: Captum's aggregate mode, one copy per pass from now on
            self._aggregate = True
            return self._forward_masks(masks, k)

    def _rows_forward(self, perturbed: tuple[Tensor, ...], args: tuple[Any, ...], target: Any, rows: int) -> Tensor:
        raw = self.forward_func(*perturbed, *args)
        if rows > 1 and self.call.batch == 1 and _is_aggregate(raw, rows):
            raise _AggregateOutput()
        return self._select(raw, target, rows)

    def _forward_whole(self, masks: tuple[Tensor, ...]) -> Tensor:
        """``(1, n_outputs)`` outputs of one perturbed copy of the whole batch."""
        call = self.call
        if self.skip_unchanged and not self._changes_anything(masks):
            return self.original.unsqueeze(0)
        perturbed = tuple(torch.where(mi[0], b, x) for x, b, mi in zip(call.inputs, call.baselines, masks))
        raw = self.forward_func(*perturbed, *call.additional_args)
        return self._select(raw, call.target, call.batch).reshape(1, self.n_outputs)

    def _differ(self) -> tuple[Tensor, ...]:
        """Per input, where the input differs from its baseline."""
        if self._differs is None:
            self._differs = tuple(x != b for x, b in zip(self.call.inputs, self.call.baselines))
        return self._differs

    def _changes_anything(self, masks: tuple[Tensor, ...]) -> bool:
        return any(bool((mi & d.unsqueeze(0)).any()) for mi, d in zip(masks, self._differ()))

    def _changed_rows(self, masks: tuple[Tensor, ...], k: int) -> Tensor | None:
        """Indices of the ``k * batch`` perturbed rows that differ from their
        input, or ``None`` when all of them do (then the plain path is used)."""
        batch = self.call.batch
        changed = torch.zeros(k, batch, dtype=torch.bool, device=self.call.inputs[0].device)
        for mi, d in zip(masks, self._differ()):
            hit = mi & d.unsqueeze(0)
            changed |= hit.reshape(k, hit.shape[1], -1).any(-1).expand(k, batch)
        if bool(changed.all()):
            return None
        return changed.reshape(-1).nonzero().squeeze(1)


class _AggregateOutput(Exception):
    """The model returned one output for several stacked rows."""


def _is_aggregate(raw: Any, batch: int) -> bool:
    """Captum's aggregate mode: a number, or one output (a 0-d tensor or a
    tensor with first dimension 1) for a batch of several samples."""
    if isinstance(raw, (int, float)) and not isinstance(raw, bool):
        return True
    return batch > 1 and isinstance(raw, Tensor) and (raw.dim() == 0 or raw.shape[0] == 1)


def _as_tensor(raw: Any) -> Tensor:
    if isinstance(raw, Tensor):
        return raw
    if isinstance(raw, (int, float)):
        return torch.tensor(raw, dtype=torch.float64 if isinstance(raw, float) else torch.int64)
    raise TypeError(
        f"The model returned a {type(raw).__name__}; attribution needs a tensor output "
        "(or, in Captum's aggregate mode, a number)."
    )


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
