r""":func:`relevance_ledger`: where a modified-gradient method's relevance went, op by op."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from captum_unified.attr._core.modified_gradient import ModifiedGradientBase
from captum_unified.backend.ledger import RelevanceLedger

__all__ = ["relevance_ledger"]


@contextmanager
def relevance_ledger(method: ModifiedGradientBase) -> Iterator[RelevanceLedger]:
    r"""Account, op by op, for the relevance of every ``method.attribute(...)``
    call made inside the block; ``attribute`` keeps Captum's signature.

    In the modified-gradient view (Ancona et al. 2018, Proposition 1) a tensor
    :math:`t` carries the relevance :math:`R(t) = \sum \partial^g S_c /
    \partial t \odot t` (:math:`t - \bar t` for DeepLIFT). The ledger lists,
    for every op the model calls on input-dependent tensors, the relevance at
    its outputs and at its inputs, what its bias and epsilon's stabiliser
    absorb, and the rest (*unexplained*); and the totals: the output's
    relevance, the inputs' (the attributions' sum) and their ratio
    (:class:`~captum_unified.backend.ledger.RelevanceLedger`). When the inputs
    receive more than twice, less than half or the opposite sign of what a
    conservative propagation gives them (the output less every bias and
    stabiliser), a :class:`~captum_unified.ConservationWarning` names the ops
    where the difference arises.

    The ledger costs hooks on the pass's autograd graph and a copy of what
    in-place ops overwrite; outside the block nothing is recorded and nothing
    costs. Nothing is attached to the model, and the method is as it was after
    the block, also when a call raises.

    Args:
        method (ModifiedGradientBase): :class:`~captum_unified.EpsilonLRP`,
            :class:`~captum_unified.DeepLiftRescale`,
            :class:`~captum_unified.ModifiedGradient` (any rule) or
            :class:`~captum_unified.GradientXInput`.

    Yields:
        :class:`~captum_unified.backend.ledger.RelevanceLedger`, filled by each
        call in the block (the last call's account).

    Example::

        >>> lrp = cu.EpsilonLRP(model)
        >>> with cu.relevance_ledger(lrp) as ledger:
        ...     attr = lrp.attribute(x, target=3)
        >>> print(ledger)                # totals and the ops that change relevance
        >>> rows = ledger.to_rows()      # pandas.DataFrame(rows) / csv.DictWriter
    """
    if not isinstance(method, ModifiedGradientBase):
        raise TypeError(
            f"relevance_ledger needs a modified-gradient method (EpsilonLRP, DeepLiftRescale, ModifiedGradient, "
            f"GradientXInput), got {type(method).__name__}."
        )
    if getattr(method, "_ledger", None) is not None:
        raise RuntimeError("relevance_ledger: this method already has an open ledger; close the outer block first.")
    ledger = RelevanceLedger()
    method._ledger = ledger
    try:
        yield ledger
    finally:
        method._ledger = None
