r"""What one pass met that the user should hear about, and the warnings
that say so (one :class:`~captum_unified.AttributionWarning` each, raised by
the entry point after the forward pass):

* the rule's own checks of the element-wise ops it was applied to
  (:meth:`~captum_unified.rules.Rule.check`), once per op name;
* the rule's warnings about products (:meth:`~captum_unified.rules.Rule.product_warning`);
* ops the op table does not know (they keep their gradient), by name and count;
* selections by a mask computed from the inputs, by name and count;
* normalisations written by hand in a form the backend does not recognise
  (their scale multiplies another tensor than the one it was computed from).
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["Report"]


class Report:
    """The messages and counts of one pass (see the module docstring)."""

    def __init__(self) -> None:
        self.checked: dict[str, str | None] = {}
        self.product_messages: dict[str, str] = {}
        self.unknown: dict[str, int] = {}
        self.selections: dict[str, int] = {}
        self.stray_scales: dict[str, int] = {}

    def check_once(self, name: str, check: Callable[[], str | None]) -> None:
        """Run the rule's check of op ``name`` the first time it is met."""
        if name not in self.checked:
            self.checked[name] = check()

    def product(self, name: str, message: str | None) -> None:
        """Keep the first message about product op ``name``."""
        if message and name not in self.product_messages:
            self.product_messages[name] = message

    def unknown_op(self, name: str) -> None:
        self.unknown[name] = self.unknown.get(name, 0) + 1

    def selection(self, name: str) -> None:
        self.selections[name] = self.selections.get(name, 0) + 1

    def stray_norm_scale(self, name: str) -> None:
        self.stray_scales[name] = self.stray_scales.get(name, 0) + 1

    def messages(self, rule_name: str) -> list[str]:
        """The warnings of the pass, for a rule of class ``rule_name``."""
        msgs = [m for m in self.checked.values() if m]
        msgs.extend(self.product_messages.values())
        if self.unknown:
            listed = ", ".join(f"{n} ({c}x)" for n, c in sorted(self.unknown.items()))
            msgs.append(
                f"The model called torch ops that the backend has no rule for: {listed}. They keep their "
                f"ordinary gradient, so {rule_name} treats them as linear and DeepLIFT's "
                "completeness / LRP's conservation may not hold (check return_convergence_delta=True). If such "
                "an op is element-wise, add it to the op table: "
                "captum_unified.ops.default_op_table().with_elementwise(name, fn) and pass op_table=... "
                "to the method."
            )
        if self.selections:
            listed = ", ".join(f"{n} ({c}x)" for n, c in sorted(self.selections.items()))
            msgs.append(
                f"The model selects or masks values by a mask computed from the inputs: {listed} (e.g. "
                "torch.where(h > 0, h, 0.1 * h) or h * (h > 0)). The mask is a step function of the input with "
                f"no gradient, so {rule_name} does not attribute the change of the selection "
                "between input and baseline to any input, and completeness may not hold (check "
                "return_convergence_delta=True). Write such a selection as an element-wise function "
                "(F.leaky_relu, F.relu, torch.clamp, torch.maximum) or add it to the op table "
                "(captum_unified.ops.default_op_table().with_elementwise(...))."
            )
        if self.stray_scales:
            listed = ", ".join(f"{n} ({c}x)" for n, c in sorted(self.stray_scales.items()))
            msgs.append(
                f"A normalisation's scale (rsqrt or 1/sqrt of a mean square) multiplies a tensor other than the "
                f"one it was computed from ({listed}; e.g. w * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + "
                f"eps)), so {rule_name} cannot treat it as a normalisation and splits it op by op: exact, but "
                "not bounded where the baseline's variance is about 0. Multiply the normalised tensor first "
                "(x * torch.rsqrt(...) * w) or use F.rms_norm / F.layer_norm."
            )
        return msgs
