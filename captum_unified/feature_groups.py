r"""Feature groups: the one type that reads Captum's ``feature_mask``.

A :class:`FeatureGroups` is a partition of the features of all input tensors
into ``G`` groups (a pixel with all its channels, a patch, a superpixel, a
token). Every method and metric of this package that takes a ``feature_mask``
(:class:`~captum_unified.OcclusionPatch`, Sensitivity-n, region perturbation,
:func:`~captum_unified.taylor.group_interactions`, the Taylor reformulation of
Occlusion-patch, :func:`~captum_unified.metrics.evaluate`) builds one with
:meth:`FeatureGroups.from_mask` and nothing else, so a mask means the same
thing everywhere, and the same as in Captum's
:class:`~captum.attr.FeatureAblation`:

* **Form.** A tensor (one input) or a tuple with one tensor per input, of
  integer or ``bool`` dtype. Each mask *broadcasts* to its input the way
  Captum's does (right-aligned; missing leading dimensions are added): a
  ``(1, 1, H, W)`` or ``(H, W)`` mask over ``(B, C, H, W)`` images makes a
  pixel with all its channels one group, a 0-d mask makes the whole input
  one group. The first dimension is 1 (one mask for every sample) or the
  batch size (a mask per sample, e.g. superpixels per image). A mask that
  does not broadcast to its input is a ``ValueError``; a floating mask is a
  ``TypeError``.
* **Ids.** Equal ids in different input tensors form one group, removed
  together. Ids need not be consecutive: the distinct ids of all masks,
  sorted, are numbered ``0..G-1`` (:attr:`FeatureGroups.labels` holds the
  user's id of each group). **Negative ids are ordinary groups**, exactly as
  in Captum (``-1`` is the group before ``0``); nothing is "never removed".
  A ``bool`` mask is the integer mask ``False = 0, True = 1`` (two groups), as
  in Captum. To keep features fixed, give them a baseline equal to the input
  (the perturbation engine then spends no forward pass on them).
* **Per-sample masks.** With a mask per sample, a sample *has* the groups
  whose ids occur in its rows (:attr:`FeatureGroups.presence`); a group the
  sample lacks changes nothing in it (its occlusion attribution is 0, and the
  metrics draw and rank only a sample's own groups).
* ``None`` is Captum's default: every scalar of every input is its own group,
  numbered input after input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["FeatureGroups"]


class FeatureGroups:
    """A partition of the features of ``inputs`` into groups (see the module docs).

    Attributes:
        ids (tuple of Tensor): per input, ``int64`` group numbers ``0..G-1`` of
            shape ``(1 or rows, *s)`` with ``s`` broadcastable to the input's
            per-sample shape (size-1 dimensions are kept, not expanded: a
            pixel mask stays one id per pixel).
        labels (Tensor): ``(G,)`` the user's id of each group, increasing.
        n_groups (int): ``G``.
        batch (int): the number of samples (rows of ``inputs[0]``).
    """

    def __init__(self, ids: tuple[Tensor, ...], labels: Tensor, inputs: Sequence[Tensor]) -> None:
        self.ids = tuple(ids)
        self.labels = labels
        self.n_groups = int(labels.numel())
        self.batch = int(inputs[0].shape[0])
        self.shapes = tuple(tuple(x.shape) for x in inputs)
        self._presence: Tensor | None = None

    # ------------------------------------------------------------ building
    @classmethod
    def from_mask(cls, feature_mask: Any, inputs: Sequence[Tensor]) -> FeatureGroups:
        """Groups of a Captum ``feature_mask`` (``None``: one group per scalar).

        Args:
            feature_mask: ``None``, a tensor or a tuple of tensors (one per
                input), integer or bool, each broadcastable to its input.
            inputs: the formatted inputs (a tuple of tensors, batch first).

        Raises:
            TypeError: a mask that is not an integer or bool tensor.
            ValueError: the wrong number of masks, or a mask that does not
                broadcast to its input.
        """
        if feature_mask is None:
            return cls.per_feature(inputs)
        masks = feature_mask if isinstance(feature_mask, tuple) else (feature_mask,)
        if len(masks) != len(inputs):
            raise ValueError(
                f"{len(inputs)} input tensor(s) but {len(masks)} feature mask(s): give one mask per "
                "input tensor (a tuple), in the order of the inputs."
            )
        raw = []
        for k, (m, x) in enumerate(zip(masks, inputs)):
            if not isinstance(m, Tensor):
                raise TypeError(f"feature_mask[{k}] is a {type(m).__name__}; give an integer tensor of group ids.")
            if m.is_floating_point() or m.is_complex():
                raise TypeError(
                    f"feature_mask[{k}] has dtype {m.dtype}; give integer group ids (e.g. mask.long()) or a bool mask."
                )
            m = m.to(device=x.device, dtype=torch.long)
            if m.dim() > x.dim():
                raise ValueError(
                    f"feature_mask[{k}] has shape {tuple(m.shape)}, more dimensions than input {k} of "
                    f"shape {tuple(x.shape)}."
                )
            m = m.reshape((1,) * (x.dim() - m.dim()) + tuple(m.shape))
            if not all(a in (1, b) for a, b in zip(m.shape, x.shape)):  # broadcasts to the input
                raise ValueError(
                    f"feature_mask[{k}] of shape {tuple(m.shape)} does not fit input shape {tuple(x.shape)}: "
                    f"use a tensor broadcastable to {(1,) + tuple(x.shape[1:])} (one mask for every "
                    f"sample) or to {tuple(x.shape)} (one per sample)."
                )
            raw.append(m)
        labels = torch.unique(torch.cat([m.reshape(-1) for m in raw]))
        ids = tuple(torch.searchsorted(labels, m.contiguous()) for m in raw)
        return cls(ids, labels, inputs)

    @classmethod
    def per_feature(cls, inputs: Sequence[Tensor]) -> FeatureGroups:
        """One group per scalar feature, numbered across the inputs (Captum's default)."""
        ids, offset = [], 0
        for x in inputs:
            feat = tuple(x.shape[1:])
            n = math.prod(feat)
            ids.append(torch.arange(offset, offset + n, device=x.device).reshape((1,) + feat))
            offset += n
        device = inputs[0].device
        return cls(tuple(ids), torch.arange(offset, device=device), inputs)

    @classmethod
    def patches(cls, inputs: Sequence[Tensor], patch_shapes: Sequence[tuple[int, ...]]) -> FeatureGroups:
        """Non-overlapping patches, numbered input after input (row-major grid).

        Patch ``(j_1, ..., j_d)`` of input ``k`` covers indices
        ``j_m p_m .. (j_m + 1) p_m - 1``; patches at the far border are cut to
        the input.
        """
        ids, offset = [], 0
        for x, p in zip(inputs, patch_shapes):
            feat = tuple(x.shape[1:])
            grid = [math.ceil(n / s) for n, s in zip(feat, p)]
            g = torch.zeros(feat, dtype=torch.long, device=x.device)
            mult = 1
            for d in reversed(range(len(feat))):
                coord = torch.arange(feat[d], device=x.device) // p[d]
                view = [1] * len(feat)
                view[d] = feat[d]
                g = g + coord.view(view) * mult
                mult *= grid[d]
            ids.append((g + offset).unsqueeze(0))
            offset += mult
        return cls(tuple(ids), torch.arange(offset, device=inputs[0].device), inputs)

    # ----------------------------------------------------------- structure
    @property
    def per_sample(self) -> bool:
        """Whether some input has a mask per sample (first dimension > 1)."""
        return any(g.shape[0] > 1 for g in self.ids)

    @property
    def presence(self) -> Tensor:
        """``(batch, G)`` bool: which groups each sample has (a feature with that id)."""
        if self._presence is None:
            device = self.labels.device
            present = torch.zeros(self.batch, self.n_groups, dtype=torch.bool, device=device)
            for g in self.ids:
                idx = g.reshape(g.shape[0], -1)
                if idx.shape[1] == 0:
                    continue
                if idx.shape[0] == 1:
                    present[:, idx[0]] = True
                else:
                    present.scatter_(1, idx, True)
            self._presence = present
        return self._presence

    @property
    def counts(self) -> Tensor:
        """``(batch,)`` number of groups of each sample."""
        return self.presence.sum(1)

    def sizes(self) -> Tensor:
        """``(1 or batch, G)`` number of features of each group, over all inputs
        (features a broadcast id covers count once per covered feature)."""
        rows = max(g.shape[0] for g in self.ids)
        out = torch.zeros(rows, self.n_groups, dtype=torch.long, device=self.labels.device)
        for g, shape in zip(self.ids, self.shapes):
            full = g.expand((g.shape[0],) + tuple(shape[1:])).reshape(g.shape[0], -1)
            counts = torch.zeros(g.shape[0], self.n_groups, dtype=torch.long, device=out.device)
            counts.scatter_add_(1, full, torch.ones_like(full))
            out += counts
        return out

    def flat_ids(self) -> Tensor:
        """``(batch, N)`` group number of every scalar feature, inputs concatenated
        in order (the layout of :func:`captum_unified.taylor.terms._flat`)."""
        return torch.cat(
            [g.expand((self.batch,) + tuple(s[1:])).reshape(self.batch, -1) for g, s in zip(self.ids, self.shapes)],
            dim=1,
        )

    # ---------------------------------------------------------- attributions
    def sums(self, attributions: Sequence[Tensor]) -> Tensor:
        """Attribution of each group, summed over its features: ``(batch, G)`` float64."""
        batch = attributions[0].shape[0]
        out = torch.zeros(batch, self.n_groups, dtype=torch.float64, device=attributions[0].device)
        for a, g in zip(attributions, self.ids):
            idx = g.to(a.device).expand((batch,) + tuple(a.shape[1:])).reshape(batch, -1)
            out.scatter_add_(1, idx, a.reshape(batch, -1).to(torch.float64))
        return out

    def scatter(self, values: Tensor) -> tuple[Tensor, ...]:
        """Give every feature the value of its group: ``values`` ``(rows, G)`` ->
        per input ``(rows, *x.shape[1:])`` (``rows`` = the batch, or the output
        count of Captum's aggregate mode)."""
        rows = values.shape[0]
        out = []
        for g, shape in zip(self.ids, self.shapes):
            feat = tuple(shape[1:])
            idx = g.to(values.device).expand((g.shape[0],) + feat).reshape(g.shape[0], -1)
            if idx.shape[0] == 1:
                a = values[:, idx[0]]
            else:
                a = torch.gather(values, 1, idx)
            out.append(a.reshape((rows,) + feat))
        return tuple(out)

    # ------------------------------------------------------------- masks
    def single_masks(self, start: int, stop: int) -> tuple[Tensor, ...]:
        """Masks removing one group each, groups ``start..stop-1``: per input a
        bool tensor ``(stop - start, 1 or rows, *s)`` (broadcastable)."""
        out = []
        for g in self.ids:
            ids = torch.arange(start, stop, device=g.device).view((-1,) + (1,) * g.dim())
            out.append(g.unsqueeze(0) == ids)
        return tuple(out)

    def member_masks(self, member: Tensor) -> tuple[Tensor, ...]:
        """Turn group membership ``(k, batch, G)`` (bool) into per-input feature
        masks ``(k, batch, *x.shape[1:])`` for the perturbation engine.

        The masks may be expanded views (no copy along the dims where the ids
        broadcast, e.g. the channels of a pixel mask), and where a mask's ids
        are the consecutive range ``lo..hi`` (one group per feature) they are
        views of ``member`` itself.
        """
        k, batch, _ = member.shape
        out = []
        for g, shape in zip(self.ids, self.shapes):
            full = (k, batch) + tuple(shape[1:])
            idx = g.reshape(g.shape[0], -1)
            if g.shape[0] == 1 and idx.shape[1] > 0:
                lo = int(idx[0, 0])
                if lo + idx.shape[1] <= self.n_groups and torch.equal(
                    idx[0], torch.arange(lo, lo + idx.shape[1], device=idx.device)
                ):
                    m = member[:, :, lo : lo + idx.shape[1]].reshape((k, batch) + tuple(g.shape[1:]))
                    out.append(m.expand(full))
                    continue
            if idx.shape[0] == 1:
                m = member[:, :, idx[0]]
            else:
                m = torch.gather(member, 2, idx.unsqueeze(0).expand(k, batch, idx.shape[1]))
            out.append(m.reshape((k, batch) + tuple(g.shape[1:])).expand(full))
        return tuple(out)
