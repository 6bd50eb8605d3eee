r"""Bounding-box accuracy (Schulz et al., ICLR 2020; Deng et al. 2021, Figure 3).

For an image whose annotated object region holds :math:`n` pixels, take the
:math:`n` pixels of highest attribution and count the :math:`m` of them that
lie inside the region:

.. math::

    \operatorname{BBA}(a, B) = \frac{m}{n}, \qquad
    m = \big|\operatorname{top}_n(a) \cap B\big|, \quad n = |B|.

An attribution that puts all its mass on the object scores 1; a constant map
scores :math:`n / (H W)`, the chance level. Schulz et al. evaluate only images
whose box covers less than a third of the image (a large box is hit by chance):
``max_box_fraction=0.33`` applies that rule.

Conventions (fixed here, tested in ``tests/metrics/test_metrics_bounding_box.py``):

* **Boxes** are ``(top, left, bottom, right)`` in pixel indices with
  *exclusive* ``bottom`` and ``right``, like Python slices: the box is
  ``mask[top:bottom, left:right]`` and holds ``(bottom - top) * (right - left)``
  pixels. A boolean mask (``True`` = inside) may be given instead, e.g. for
  several boxes per image (their union) or a segmentation.
* **Channels**: attributions of shape ``(B, C, H, W)`` are summed over ``C``
  (``reduce_channels=True``, the usual pixel relevance); with
  ``reduce_channels=False`` they are already one value per pixel, ``(B, H, W)``.
  Signed values are ranked as they are: pass ``attributions.abs()`` to rank
  magnitudes.
* **Ties** at the :math:`n`-th value are not broken by pixel position (which
  would favour boxes in the upper-left corner). By default (``ties="expected"``)
  :math:`m` is the *expected* count over all orders of the tied pixels: the
  pixels strictly above the threshold count as they are and the remaining
  slots are filled from the tied pixels in proportion to how many of them lie
  inside the box. A constant map thus scores exactly the chance level. The
  result is deterministic. ``ties="first"`` instead keeps the tied pixels
  that come first in row-major order (a stable sort).
* **Excluded samples** (box covering ``max_box_fraction`` of the image or more)
  get ``NaN``, so the result stays aligned with the batch; average with
  :func:`torch.nanmean`. :class:`BoundingBoxAccuracy` (the metric of
  :func:`~captum_unified.metrics.evaluate`) writes these rows with ``value``
  NaN.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from captum_unified.metrics.base import EvalBatch, Metric, MetricScores

__all__ = ["BoundingBoxAccuracy", "bounding_box_accuracy", "boxes_to_mask"]

BoxesType = Tensor | Sequence[Sequence[int]]


def boxes_to_mask(boxes: BoxesType, height: int, width: int, batch: int | None = None) -> Tensor:
    """Boolean masks ``(batch, height, width)`` of boxes ``(top, left, bottom, right)``
    (exclusive ``bottom``/``right``, like Python slices).

    Args:
        boxes: integer tensor or nested sequence of shape ``(batch, 4)``, or
            ``(4,)`` for one box shared by every sample (then ``batch`` is required).
        height, width: the image size.
        batch: the number of samples (checked against ``boxes``).

    Raises:
        ValueError: a box that is empty or not inside the image.
    """
    b = torch.as_tensor(boxes)
    if b.is_floating_point() or b.is_complex() or b.dtype == torch.bool:
        if b.is_floating_point() and bool((b == b.round()).all()):
            b = b.long()
        else:
            raise TypeError(f"boxes must hold integer pixel indices, got dtype {b.dtype}.")
    b = b.long()
    if b.dim() == 1:
        if batch is None:
            raise ValueError("one box of shape (4,) needs the batch size; give boxes of shape (batch, 4).")
        b = b.unsqueeze(0).expand(batch, 4)
    if b.dim() != 2 or b.shape[1] != 4:
        raise ValueError(
            f"boxes must have shape (batch, 4) as (top, left, bottom, right), got {tuple(b.shape)}; "
            "for several boxes per image pass their union as a boolean mask."
        )
    if batch is not None and b.shape[0] != batch:
        raise ValueError(f"{b.shape[0]} boxes for {batch} samples; give one box per sample.")
    top, left, bottom, right = b.unbind(1)
    bad = (top < 0) | (left < 0) | (bottom > height) | (right > width) | (bottom <= top) | (right <= left)
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise ValueError(
            f"box {tuple(int(v) for v in b[i])} of sample {i} is empty or outside the {height}x{width} image; "
            "boxes are (top, left, bottom, right) with 0 <= top < bottom <= height and "
            "0 <= left < right <= width (bottom/right exclusive)."
        )
    rows = torch.arange(height, device=b.device)
    cols = torch.arange(width, device=b.device)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < bottom[:, None])
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < right[:, None])
    return in_rows[:, :, None] & in_cols[:, None, :]


def _pixel_map(attributions: Any, reduce_channels: bool) -> Tensor:
    if isinstance(attributions, tuple):
        if len(attributions) != 1:
            raise ValueError(
                f"bounding-box accuracy takes one attribution tensor (an image input), got a tuple of "
                f"{len(attributions)}."
            )
        attributions = attributions[0]
    if not isinstance(attributions, Tensor):
        raise TypeError(f"attributions must be a torch.Tensor, got {type(attributions).__name__}.")
    want = 4 if reduce_channels else 3
    if attributions.dim() != want:
        raise ValueError(
            f"attributions of shape {tuple(attributions.shape)}: expected "
            + (
                "(batch, channels, height, width) (summed over channels)"
                if reduce_channels
                else "(batch, height, width) with reduce_channels=False"
            )
            + "."
        )
    if attributions.shape[0] == 0:
        raise ValueError("attributions hold 0 samples (batch dimension of size 0); pass at least one sample.")
    a = attributions.detach()
    if not a.is_floating_point():
        a = a.to(torch.float64)
    if reduce_channels:
        a = a.sum(1)
    if bool(torch.isnan(a).any()):
        i = int(torch.isnan(a).flatten(1).any(1).nonzero()[0, 0])
        raise ValueError(f"attributions of sample {i} contain NaN; pixels cannot be ranked.")
    return a


def _box_mask(boxes: BoxesType, batch: int, height: int, width: int, device: torch.device) -> Tensor:
    if isinstance(boxes, Tensor) and boxes.dtype == torch.bool:
        m = boxes
        if m.dim() == 4 and m.shape[1] == 1:
            m = m[:, 0]
        if m.dim() == 2:
            m = m.unsqueeze(0)
        if m.dim() != 3 or tuple(m.shape[1:]) != (height, width) or m.shape[0] not in (1, batch):
            raise ValueError(
                f"box mask of shape {tuple(boxes.shape)} does not fit attributions of {batch} images of "
                f"{height}x{width}; give a boolean mask (batch, height, width)."
            )
        m = m.expand(batch, height, width).to(device)
        empty = ~m.flatten(1).any(1)
        if bool(empty.any()):
            raise ValueError(f"the box mask of sample {int(empty.nonzero()[0, 0])} is empty (no True pixel).")
        return m
    return boxes_to_mask(boxes, height, width, batch).to(device)


def bounding_box_accuracy(
    attributions: Tensor | tuple[Tensor, ...],
    boxes: BoxesType,
    *,
    max_box_fraction: float | None = None,
    reduce_channels: bool = True,
    ties: str = "expected",
) -> Tensor:
    r"""Bounding-box accuracy :math:`m/n` per sample (Schulz et al. 2020).

    Args:
        attributions (Tensor or 1-tuple of Tensor): ``(B, C, H, W)`` pixel
            attributions per channel (summed over ``C``), or ``(B, H, W)`` with
            ``reduce_channels=False``.
        boxes: ``(B, 4)`` integer boxes ``(top, left, bottom, right)`` with
            exclusive ``bottom``/``right`` (Python slices), a ``(4,)`` box for
            all samples, or a boolean mask ``(B, H, W)`` (``(B, 1, H, W)``,
            ``(1, H, W)`` and ``(H, W)`` broadcast) with ``True`` inside the
            object.
        max_box_fraction (float, optional): keep only samples whose box covers
            *less than* this fraction of the image (Schulz et al.: ``0.33``);
            the others give ``NaN``. Default ``None``: every sample counts.
        reduce_channels (bool): sum attributions over dimension 1. Default True.
        ties (str): ``"expected"`` (default): the expected count over all
            orders of pixels tied at the :math:`n`-th value; ``"first"``: the
            tied pixels first in row-major order win.

    Returns:
        Tensor: ``(B,)`` float64, :math:`m/n` in ``[0, 1]`` (``NaN`` for
        samples excluded by ``max_box_fraction``).

    Raises:
        ValueError: empty batch, NaN attributions, a box empty or outside the
            image, shapes that do not fit, ``max_box_fraction`` outside
            ``(0, 1]``, an unknown ``ties``.

    Example::

        >>> a = torch.zeros(1, 1, 4, 4); a[0, 0, 0, :2] = 1.0
        >>> bounding_box_accuracy(a, [[0, 0, 1, 2]])   # box = the two hot pixels
        tensor([1.], dtype=torch.float64)
    """
    if ties not in ("expected", "first"):
        raise ValueError(f"ties must be 'expected' or 'first', got {ties!r}.")
    if max_box_fraction is not None and not (0.0 < float(max_box_fraction) <= 1.0):
        raise ValueError(f"max_box_fraction must lie in (0, 1], got {max_box_fraction}.")
    a = _pixel_map(attributions, reduce_channels)
    batch, height, width = a.shape
    inside = _box_mask(boxes, batch, height, width, a.device).reshape(batch, -1)
    a = a.reshape(batch, -1)
    n = inside.sum(1)
    order = torch.sort(a, dim=1, descending=True, stable=True)
    if ties == "first":
        ranks = torch.arange(a.shape[1], device=a.device).unsqueeze(0)
        m = (inside.gather(1, order.indices) & (ranks < n[:, None])).sum(1).to(torch.float64)
    else:
        threshold = order.values.gather(1, (n - 1)[:, None])
        above = a > threshold
        tied = a == threshold
        slots = (n - above.sum(1)).to(torch.float64)
        tied_inside = (tied & inside).sum(1).to(torch.float64)
        m = (above & inside).sum(1).to(torch.float64) + slots * tied_inside / tied.sum(1).to(torch.float64)
    acc = m / n.to(torch.float64)
    if max_box_fraction is not None:
        keep = n.to(torch.float64) / (height * width) < float(max_box_fraction)
        acc = torch.where(keep, acc, torch.full_like(acc, float("nan")))
    return acc


class BoundingBoxAccuracy(Metric):
    """Bounding-box accuracy as a metric of :func:`~captum_unified.metrics.evaluate`;
    see :func:`bounding_box_accuracy`.

    The boxes come with the data: each batch is ``(inputs, labels, boxes, ...)``
    and ``boxes`` (``(B, 4)`` boxes or a boolean ``(B, H, W)`` mask) is the
    extra element number ``extra`` (default 0: the third element). Rows:
    ``("bounding_box_accuracy", None)`` per sample, NaN for samples excluded by
    ``max_box_fraction``. No forward pass.
    """

    name = "bounding_box_accuracy"

    def __init__(
        self,
        max_box_fraction: float | None = None,
        reduce_channels: bool = True,
        ties: str = "expected",
        extra: int = 0,
    ) -> None:
        if ties not in ("expected", "first"):
            raise ValueError(f"ties must be 'expected' or 'first', got {ties!r}.")
        self.max_box_fraction = max_box_fraction
        self.reduce_channels = bool(reduce_channels)
        self.ties = ties
        self.extra = int(extra)

    def evaluate(self, batch: EvalBatch, attributions: Mapping[str, tuple[Tensor, ...]]) -> dict[str, MetricScores]:
        if len(batch.extras) <= self.extra:
            raise ValueError(
                "bounding_box_accuracy needs the boxes with the data: batches (inputs, labels, boxes), "
                f"but the batches have {2 + len(batch.extras)} element(s)."
            )
        boxes = batch.extras[self.extra]
        return {
            name: MetricScores(
                {
                    (self.name, None): bounding_box_accuracy(
                        a,
                        boxes,
                        max_box_fraction=self.max_box_fraction,
                        reduce_channels=self.reduce_channels,
                        ties=self.ties,
                    )
                }
            )
            for name, a in attributions.items()
        }
