r"""Feature groups shared by the metrics: a partition of the features of all
input tensors into ``G`` groups (a pixel with all its channels, a word, a
superpixel), the attribution of each group, and the masks that remove groups."""
from __future__ import annotations

from typing import Any, Tuple

import torch
from torch import Tensor

__all__ = ["format_attributions", "format_feature_mask", "format_groups", "group_presence", "group_sums",
           "groups_to_masks"]


def format_attributions(attributions: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tensor, ...]:
    """Attributions as a tuple of tensors with the shapes of ``inputs``."""
    if isinstance(attributions, Tensor):
        attributions = (attributions,)
    if not isinstance(attributions, tuple) or len(attributions) != len(inputs):
        raise ValueError(
            f"{len(inputs)} input tensor(s) but attributions are "
            f"{type(attributions).__name__} of length {len(attributions) if isinstance(attributions, tuple) else 1}; "
            "give one attribution tensor per input tensor, shaped like it."
        )
    out = []
    for k, (a, x) in enumerate(zip(attributions, inputs)):
        if not isinstance(a, Tensor):
            raise TypeError(f"attributions[{k}] is a {type(a).__name__}, expected a torch.Tensor.")
        if tuple(a.shape) != tuple(x.shape):
            raise ValueError(
                f"attributions[{k}] has shape {tuple(a.shape)} but inputs[{k}] has shape "
                f"{tuple(x.shape)}; attributions must have the shape of the inputs."
            )
        out.append(a.detach().to(x.device))
    return tuple(out)


def format_feature_mask(
    feature_mask: Any, inputs: Tuple[Tensor, ...]
) -> Tuple[Tuple[Tensor, ...], int]:
    """Group ids per input, remapped to ``0..G-1``, each of shape ``(1 or batch, ...)``
    broadcastable to its input (size-1 dims are kept, not expanded: a
    ``(1, 1, H, W)`` pixel mask stays one id per pixel).

    ``None`` puts every scalar feature in its own group. Otherwise Captum's
    convention: one integer tensor per input, broadcastable to the input (e.g.
    ``(1, 1, H, W)`` for images of shape ``(B, C, H, W)``: a pixel is a group of
    all its channels). Equal ids in different inputs form one group. Negative
    ids are never removed (and their attributions are ignored).
    """
    if feature_mask is None:
        groups, offset = [], 0
        for x in inputs:
            n = x[0].numel()
            groups.append(torch.arange(offset, offset + n, device=x.device).reshape((1,) + tuple(x.shape[1:])))
            offset += n
        return tuple(groups), offset
    if isinstance(feature_mask, Tensor):
        feature_mask = (feature_mask,)
    if not isinstance(feature_mask, tuple) or len(feature_mask) != len(inputs):
        raise ValueError("feature_mask must be a tensor or a tuple with one integer tensor per input.")
    expanded = []
    for k, (m, x) in enumerate(zip(feature_mask, inputs)):
        if not isinstance(m, Tensor) or m.is_floating_point() or m.is_complex():
            raise TypeError(f"feature_mask[{k}] must be an integer tensor.")
        m = m.to(x.device).long()
        while m.dim() < x.dim():
            m = m.unsqueeze(0)
        try:
            shape = torch.broadcast_shapes(m.shape, x.shape)
        except RuntimeError:
            shape = None
        if shape is None or tuple(shape) != tuple(x.shape) or m.shape[0] not in (1, x.shape[0]):
            raise ValueError(
                f"feature_mask[{k}] of shape {tuple(m.shape)} does not broadcast to input "
                f"shape {tuple(x.shape)} (batch dimension 1 or {x.shape[0]})."
            )
        expanded.append(m)
    ids = torch.cat([m.reshape(-1) for m in expanded])
    ids = torch.unique(ids[ids >= 0])
    if ids.numel() == 0:
        raise ValueError("feature_mask has no non-negative group id: nothing to remove.")
    out = []
    for m in expanded:
        remapped = torch.searchsorted(ids, m.clamp(min=0).contiguous())
        out.append(torch.where(m >= 0, remapped, torch.full_like(m, -1)))
    return tuple(out), int(ids.numel())


def group_presence(groups: Tuple[Tensor, ...], n_groups: int, batch: int) -> Tensor:
    """Which groups each sample has (at least one feature with that id): ``(batch, G)`` bool.

    With a mask shared by the batch (batch dimension 1) every sample has every
    group; a per-sample mask can give samples different sets of groups.
    """
    present = torch.zeros(batch, n_groups + 1, dtype=torch.bool, device=groups[0].device)
    for g in groups:
        idx = g.reshape(g.shape[0], -1)
        idx = torch.where(idx >= 0, idx, torch.full_like(idx, n_groups))
        if idx.shape[0] == 1:
            present[:, idx[0]] = True
        else:
            present.scatter_(1, idx, True)
    return present[:, :n_groups]


def format_groups(feature_mask: Any, inputs: Tuple[Tensor, ...]) -> Tuple[Tuple[Tensor, ...], int, Tensor, Tensor]:
    """``(groups, number of ids, presence (batch, ids) bool, groups per sample (batch,))``
    of :func:`format_feature_mask` and :func:`group_presence`; raises if a sample
    has no group to remove."""
    groups, n_ids = format_feature_mask(feature_mask, inputs)
    present = group_presence(groups, n_ids, inputs[0].shape[0])
    counts = present.sum(1)
    if bool((counts == 0).any()):
        i = int((counts == 0).nonzero()[0, 0])
        raise ValueError(f"sample {i} has no feature to remove: its feature_mask ids are all negative.")
    return groups, n_ids, present, counts


def group_sums(attributions: Tuple[Tensor, ...], groups: Tuple[Tensor, ...], n_groups: int) -> Tensor:
    """Attribution of each group, summed over its features: shape ``(batch, G)`` (float64)."""
    batch = attributions[0].shape[0]
    out = torch.zeros(batch, n_groups + 1, dtype=torch.float64, device=attributions[0].device)
    for a, g in zip(attributions, groups):
        idx = g.expand((batch,) + tuple(a.shape[1:])).reshape(batch, -1)
        idx = torch.where(idx >= 0, idx, torch.full_like(idx, n_groups))
        out.scatter_add_(1, idx, a.reshape(batch, -1).to(torch.float64))
    return out[:, :n_groups]


def groups_to_masks(
    member: Tensor, groups: Tuple[Tensor, ...], inputs: Tuple[Tensor, ...]
) -> Tuple[Tensor, ...]:
    """Turn group membership ``(k, batch, G)`` (bool) into per-input feature masks
    of shape ``(k, batch, *x.shape[1:])``, as the perturbation engine expects.

    The masks may be expanded views (no copy along the dims where the group
    ids broadcast, e.g. the channels of a ``(1, 1, H, W)`` pixel mask), and
    where a mask's ids are the consecutive range ``lo..hi`` (one group per
    feature, no negative id) they are views of ``member`` itself.
    """
    k, batch, n_groups = member.shape
    pad = None
    out = []
    for x, g in zip(inputs, groups):
        full = (k, batch) + tuple(x.shape[1:])
        idx = g.reshape(g.shape[0], -1)
        if g.shape[0] == 1 and idx.shape[1] > 0:
            lo = int(idx[0, 0])
            if lo >= 0 and lo + idx.shape[1] <= n_groups and torch.equal(
                idx[0], torch.arange(lo, lo + idx.shape[1], device=idx.device)
            ):
                m = member[:, :, lo : lo + idx.shape[1]].reshape((k, batch) + tuple(g.shape[1:]))
                out.append(m.expand(full))
                continue
        if pad is None:  # id -1 -> never removed
            pad = torch.cat([member, member.new_zeros(k, batch, 1)], dim=2)
        idx = torch.where(idx >= 0, idx, torch.full_like(idx, n_groups))
        if idx.shape[0] == 1:
            m = pad[:, :, idx[0]]
        else:
            m = torch.gather(pad, 2, idx.unsqueeze(0).expand(k, batch, idx.shape[1]))
        out.append(m.reshape((k, batch) + tuple(g.shape[1:])).expand(full))
    return tuple(out)
