r"""The relevance ledger: where relevance went, op by op (an opt-in diagnostic).

In the modified-gradient view (Ancona et al. 2018, Proposition 1: epsilon-LRP
is the input times the modified gradient) every tensor :math:`t` of the pass
carries the relevance

.. math::

    R(t) = \sum \frac{\partial^g S_c}{\partial t} \odot t
    \qquad\text{(rules with a reference, DeepLIFT: } t - \bar t\text{)}.

For every top-level call of the model on input-dependent tensors (the op's
name as the backend's warnings write it, and its index in call order) the
ledger records

* **relevance out** -- :math:`R` at the op's outputs, what reaches the op from
  above: :math:`\sum g_{out} \odot out`;
* **relevance in** -- what the op passes to its input-dependent inputs:
  :math:`\sum_j \sum g_{op \to x_j} \odot x_j`, with :math:`g_{op \to x_j}`
  the part of :math:`x_j`'s gradient this op sends (a tensor that two ops
  read, a residual connection, splits its relevance between them);
* **bias** -- what the op's constant terms absorb: for an affine op (linear
  ops, products with one input-dependent factor, normalisations) with
  :math:`out = L(x) + c`, :math:`\sum g_{out} \odot c`, where :math:`c` is the
  op evaluated with its input-dependent arguments set to zero (zero for rules
  with a reference: :math:`c - \bar c = 0`);
* **stabiliser** -- what epsilon-LRP's :math:`\epsilon` absorbs at an
  element-wise op :math:`out = f(z)`:
  :math:`\sum g_{out} \odot f(z)\,\epsilon s / (z + \epsilon s)`,
  :math:`s = \mathrm{sign}(z)`, and at the explained output;
* **unexplained** -- out - in - bias - stabiliser: relevance the op creates or
  destroys (a product differentiated by the product rule doubles it, an op the
  backend does not know keeps its gradient, ...).

A conservative propagation telescopes: the output's relevance minus every
bias and stabiliser equals the relevance at the inputs (the attributions'
sum). :meth:`RelevanceLedger.conservation_message` says when the inputs
receive more than twice or less than half of that, or the opposite sign, and
names the ops with the largest unexplained relevance; the backend raises it
as a :class:`ConservationWarning`.

How it is measured: :mod:`~captum_unified.backend.ledger_pass` (the pass's
records) and :mod:`~captum_unified.backend.ledger_hooks` (the autograd hooks).
Sums are taken in float64 over the whole batch: explain one sample for a
per-sample account.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from captum_unified._utils.common import AttributionWarning

__all__ = ["ConservationWarning", "LedgerRow", "RelevanceLedger", "RATIO", "NEGLIGIBLE"]

#: The inputs receive more than ``RATIO`` times, or less than ``1 / RATIO`` of,
#: the relevance a conservative propagation would give them: warn.
RATIO = 2.0
#: ... unless the difference is below this fraction of the output's relevance.
NEGLIGIBLE = 0.05


class ConservationWarning(AttributionWarning):
    """The relevance that reaches the inputs is far from what reaches the
    output, beyond what biases and stabilisers absorb (more than twice, less
    than half or of the opposite sign); the message names the ops where it
    went. Raised only when a :func:`~captum_unified.relevance_ledger` is open
    (it needs the ledger's per-op account to tell biases from lost relevance).
    """


@dataclass(frozen=True)
class LedgerRow:
    """One top-level op of the pass (see the module docstring).

    Attributes:
        index (int): the op's position among the pass's calls on input-dependent tensors.
        name (str): the op, as the backend's warnings name it (``F.linear``, ``Tensor.relu_``).
        kind (str): its op-table kind (``linear``, ``elementwise``, ``product``,
            ``composite``, ``transparent``) or ``unknown``.
        relevance_out (float): relevance at its outputs.
        relevance_in (float): relevance it passes to its input-dependent inputs.
        bias (float): relevance its constant terms absorb.
        stabiliser (float): relevance epsilon absorbs at it.
    """

    index: int
    name: str
    kind: str
    relevance_out: float
    relevance_in: float
    bias: float = 0.0
    stabiliser: float = 0.0

    @property
    def unexplained(self) -> float:
        """Relevance the op creates (negative) or destroys (positive) beyond bias and stabiliser."""
        return self.relevance_out - self.relevance_in - self.bias - self.stabiliser

    @property
    def ratio(self) -> float:
        """``relevance_in / relevance_out`` (NaN where nothing reaches the op)."""
        return self.relevance_in / self.relevance_out if self.relevance_out != 0 else math.nan

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "op": self.name,
            "kind": self.kind,
            "relevance_out": self.relevance_out,
            "relevance_in": self.relevance_in,
            "bias": self.bias,
            "stabiliser": self.stabiliser,
            "unexplained": self.unexplained,
            "ratio": self.ratio,
        }


class RelevanceLedger:
    """Where the relevance of the last attribution call went, op by op.

    Filled by the backend when passed to
    :func:`~captum_unified.backend.modified_gradients` (the methods do it inside
    :func:`~captum_unified.relevance_ledger`); each call replaces the
    previous account. All sums are over the whole batch.

    Attributes:
        rows (list of LedgerRow): the ops, in call order.
        output (float): the explained output's relevance, :math:`\\sum S_c(x)`
            (:math:`\\sum S_c(x) - S_c(\\bar x)` for rules with a reference).
        output_stabiliser (float): what the rule's stabiliser at the explained
            output absorbs (epsilon-LRP).
        inputs (float): the relevance that reaches the inputs,
            :math:`\\sum \\partial^g S_c / \\partial x \\odot x` (:math:`x - \\bar x`
            with a reference): the attributions' sum.
        rule (str): the rule's class name.
        unmeasured (int): rows that are NaN: an op the baseline pass did not
            pair (rules with a reference), or whose values a write the ledger
            did not see changed in place.
    """

    def __init__(self) -> None:
        self.rows: list[LedgerRow] = []
        self.output = self.output_stabiliser = self.inputs = math.nan
        self.rule = ""
        self.unmeasured = 0

    def _fill(self, rows: list[LedgerRow], rule: str, output: float, stabiliser: float, inputs: float) -> None:
        self.rows, self.rule = rows, rule
        self.output, self.output_stabiliser, self.inputs = output, stabiliser, inputs

    # ----------------------------------------------------------- totals
    @property
    def bias(self) -> float:
        """Relevance absorbed by every op's constant terms."""
        return math.fsum(r.bias for r in self.rows)

    @property
    def stabiliser(self) -> float:
        """Relevance absorbed by the stabilisers (element-wise ops and the output)."""
        return math.fsum(r.stabiliser for r in self.rows) + _finite(self.output_stabiliser)

    @property
    def expected(self) -> float:
        """What a conservative propagation gives the inputs: output - bias - stabiliser."""
        return self.output - self.bias - self.stabiliser

    @property
    def ratio(self) -> float:
        """``inputs / expected``: 1 for a conservative propagation."""
        return self.inputs / self.expected if self.expected != 0 else math.nan

    @property
    def untracked(self) -> float:
        """The gap between the totals that no row accounts for (ops outside the
        model's call, rounding): about 0 when every op was seen."""
        inner = math.fsum(r.relevance_out - r.relevance_in for r in self.rows)
        return (self.output - _finite(self.output_stabiliser) - self.inputs) - inner

    def worst(self, n: int = 3) -> list[LedgerRow]:
        """The ``n`` rows with the largest ``|unexplained|``."""
        rows = [r for r in self.rows if math.isfinite(r.unexplained) and r.unexplained != 0]
        return sorted(rows, key=lambda r: -abs(r.unexplained))[:n]

    def to_rows(self) -> list[dict[str, Any]]:
        """One dict per op (``pandas.DataFrame(ledger.to_rows())``, ``csv.DictWriter``)."""
        return [r.as_dict() for r in self.rows]

    def conservation_message(self, ratio: float = RATIO) -> str | None:
        """A sentence naming the worst ops when the inputs' relevance is more than
        ``ratio`` times, less than ``1 / ratio`` of, or of the opposite sign to
        :attr:`expected`; ``None`` otherwise."""
        expected, got = self.expected, self.inputs
        if not (math.isfinite(expected) and math.isfinite(got)):
            return None
        scale = max(abs(self.output), abs(expected))
        if abs(got - expected) <= NEGLIGIBLE * scale:
            return None
        far = expected * got < 0 or abs(got) > ratio * abs(expected) or abs(got) < abs(expected) / ratio
        if not far:
            return None
        ops = (
            ", ".join(
                f"{r.name} #{r.index} (in {r.relevance_in:.4g} for out {r.relevance_out:.4g}, "
                f"unexplained {r.unexplained:.4g})"
                for r in self.worst()
                if abs(r.unexplained) > 1e-3 * scale
            )
            or "no single op (many small contributions, or ops outside the model's call)"
        )
        return (
            f"{self.rule} does not conserve relevance: the inputs receive {got:.4g}, while the output's "
            f"{self.output:.4g} less what biases ({self.bias:.4g}) and stabilisers ({self.stabiliser:.4g}) absorb "
            f"is {expected:.4g} (ratio {self.ratio:.3g}). Most of the difference arises at: {ops}. Read "
            "ledger.worst() / str(ledger) for the account; a product differentiated by the product rule "
            "(products='uniform' or 'gate' conserve), an op the backend does not know (add it to the op table) "
            "or a normalisation under norm='gradient' are the usual causes."
        )

    # ------------------------------------------------------------ display
    def __str__(self) -> str:
        lines = [
            f"RelevanceLedger ({self.rule}, {len(self.rows)} ops, sums over the batch)",
            f"  output relevance   {self.output: .6g}",
            f"  - bias             {self.bias: .6g}",
            f"  - stabiliser       {self.stabiliser: .6g}",
            f"  = expected         {self.expected: .6g}",
            f"  inputs receive     {self.inputs: .6g}   (ratio {self.ratio:.4g})",
            f"  not on any op      {self.untracked: .3g}",
        ]
        shown = [r for r in self.rows if _notable(r, self.output)]
        if shown:
            lines.append(f"  {'#':>4} {'op':<28} {'kind':<12} {'out':>11} {'in':>11} {'bias':>11} {'unexplained':>11}")
            for r in shown:
                lines.append(
                    f"  {r.index:>4} {r.name[:28]:<28} {r.kind:<12} {r.relevance_out:>11.4g} "
                    f"{r.relevance_in:>11.4g} {r.bias:>11.4g} {r.unexplained:>11.4g}"
                )
        hidden = len(self.rows) - len(shown)
        if hidden:
            lines.append(f"  ({hidden} ops pass their relevance on unchanged; to_rows() lists all)")
        if self.unmeasured:
            lines.append(f"  ({self.unmeasured} ops had no baseline record or were overwritten: their rows are NaN)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (
            f"<RelevanceLedger {self.rule}: {len(self.rows)} ops, output {self.output:.4g}, inputs {self.inputs:.4g}>"
        )


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 0.0


def _notable(row: LedgerRow, output: float) -> bool:
    """A row worth a line: it changes the relevance (by more than 1e-6 of the output's)."""
    tol = 1e-6 * max(abs(output), 1e-30) if math.isfinite(output) else 0.0
    return not (abs(row.relevance_out - row.relevance_in) <= tol and abs(row.bias) <= tol)
