r"""A reversible swap of ReLU for Softplus.

ReLU networks have :math:`H = 0` almost everywhere, so their second-order
Taylor terms vanish. Deng et al. (2021, footnote 1) study them through the same
network with Softplus, :math:`\mathrm{softplus}_\beta(z) = \frac1\beta\log(1+e^{\beta z})`,
which tends to ReLU as :math:`\beta \to \infty`.

:func:`softplus_swap` is a context manager built on a
:class:`torch.overrides.TorchFunctionMode`: every ReLU call the model makes
(``nn.ReLU``, ``F.relu``, ``torch.relu``, ``x.relu()``, in-place variants)
becomes ``F.softplus(z, beta, threshold)`` while the context is open. Nothing is
patched: on exit (also on an exception) the mode is popped and ReLU is ReLU again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from captum_unified.ops import default_op_table

__all__ = ["SoftplusSwapMode", "softplus_swap"]


class SoftplusSwapMode(TorchFunctionMode):
    """TorchFunctionMode computing every ReLU call as Softplus(beta).

    Args:
        beta (float): Softplus sharpness :math:`\\beta > 0`.
        threshold (float): Softplus' linear regime threshold (as in
            :func:`torch.nn.functional.softplus`).
    """

    def __init__(self, beta: float = 10.0, threshold: float = 20.0) -> None:
        super().__init__()
        if not beta > 0:
            raise ValueError(f"beta must be > 0, got {beta}.")
        self.beta = float(beta)
        self.threshold = float(threshold)
        #: how many ReLU calls were swapped (diagnostics).
        self.swapped = 0

    def __torch_function__(self, func: Callable, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        entry = default_op_table().lookup(func)
        if entry is not None and entry.name == "relu" and (args or "input" in kwargs):
            z = args[0] if args else kwargs["input"]
            inplace = bool(kwargs.get("inplace", args[1] if len(args) > 1 else False)) or entry.inplace
            self.swapped += 1
            if inplace:
                out = F.softplus(z.clone(), self.beta, self.threshold)
                return z.copy_(out)
            return F.softplus(z, self.beta, self.threshold)
        return func(*args, **kwargs)


@contextmanager
def softplus_swap(beta: float = 10.0, threshold: float = 20.0) -> Iterator[SoftplusSwapMode]:
    r"""Run ReLU as Softplus(``beta``) inside the ``with`` block.

    Covers modules and functional calls: ``nn.ReLU`` (it calls ``F.relu``),
    ``F.relu``, ``torch.relu``, ``Tensor.relu`` and the in-place variants.
    Leaves no trace: after the block (normal exit or exception) every ReLU
    behaves as before; the model is never modified.

    Args:
        beta (float, optional): Softplus sharpness; larger is closer to ReLU.
            Default: 10.
        threshold (float, optional): as in :func:`torch.nn.functional.softplus`.
            Default: 20.

    Yields:
        The active :class:`SoftplusSwapMode` (its ``swapped`` counts the calls).

    Example::

        >>> with softplus_swap(beta=10.0):
        ...     dec = taylor_decomposition(relu_net, x, target=3)
    """
    mode = SoftplusSwapMode(beta, threshold)
    with mode:
        yield mode
