r"""The unified backend: the modified chain rule of Ancona et al. (ICLR 2018, §3).

One function, :func:`modified_gradients`, computes

.. math::

    \frac{\partial^g S_c(x)}{\partial x_i} = \sum_{p \in P_{ic}}
        \Big(\prod w_p \prod g(z)_p\Big),

the gradient of the selected output with every element-wise nonlinearity's
derivative replaced by a :class:`~captum_unified.rules.Rule`. Gradient*Input,
Integrated Gradients, epsilon-LRP and DeepLIFT (Rescale) and their layer
versions are all built on it.

How it reaches every nonlinearity: inside :class:`RuleContext` a
:class:`torch.overrides.TorchFunctionMode` sees every torch call the model makes,
whether through ``nn.ReLU``, ``F.relu``, ``torch.tanh``, ``x.sigmoid()``, one
module object used at several places, or a module created inside ``forward``.
Registered nonlinearities (:mod:`captum_unified.nonlinearities`) are replaced, for
that forward pass only, by an autograd function whose backward multiplies by the
rule's :math:`g(z)`. Everything else (linear maps, max-pooling, products) keeps
its ordinary gradient. Nothing is attached to the model: no hooks on its
modules (except a layer hook that layer methods need, removed in ``finally``), no
patched functions, no changed flags, also when the model raises.

Rules that need the baseline's pre-activations :math:`\bar z` (DeepLIFT) get
them from one extra forward pass on the baseline, without gradients, that records
every nonlinearity's input in call order. When the baseline is the same for all
samples that pass runs on a batch of one.
"""
from __future__ import annotations

import inspect
import weakref
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from captum_unified._utils.common import (
    select_target,
    warn,
)
from captum_unified.nonlinearities import Nonlinearity, lookup
from captum_unified.rules import GradientRule, Rule

__all__ = ["RuleContext", "modified_gradients", "BackendResult"]


# Functions whose result is a product of their tensor arguments. When two of
# those arguments depend on the input, rules that assume a sum of
# contributions (DeepLIFT) lose completeness (Ancona §3.1).
_PRODUCTS = {
    torch.mul, torch.Tensor.mul, torch.Tensor.mul_, torch.Tensor.__mul__,
    torch.Tensor.__rmul__, torch.Tensor.__imul__, torch.div, torch.Tensor.div,
    torch.Tensor.div_, torch.Tensor.__truediv__, torch.Tensor.__rtruediv__,
    torch.matmul, torch.Tensor.matmul, torch.Tensor.__matmul__, torch.bmm,
    torch.Tensor.bmm, torch.einsum, torch.prod, torch.Tensor.prod, torch.pow,
    torch.Tensor.pow, torch.Tensor.__pow__, torch.square, torch.Tensor.square,
    torch.addcmul, torch.Tensor.addcmul, torch.outer, torch.bilinear,
    torch.nn.functional.bilinear,
}

_SIGNATURES: Dict[Callable, Optional[inspect.Signature]] = {}


def _bind_out_of_place(entry: Nonlinearity, args: tuple, kwargs: dict) -> Callable[[Tensor], Tensor]:
    """Return ``t -> f(t, *other args)`` with any ``inplace`` flag turned off."""
    fn = entry.function
    rest, kw = tuple(args[1:]), dict(kwargs)
    if fn not in _SIGNATURES:
        try:
            _SIGNATURES[fn] = inspect.signature(fn)
        except (TypeError, ValueError):
            _SIGNATURES[fn] = None
    sig = _SIGNATURES[fn]
    if sig is not None and "inplace" in sig.parameters:
        bound = sig.bind_partial(None, *rest, **kw)
        bound.arguments["inplace"] = False
        bound.arguments.pop(next(iter(sig.parameters)))
        kw = dict(bound.arguments)
        rest = ()
    else:
        kw.pop("inplace", None)
    return lambda t: fn(t, *rest, **kw)


class _RuleFunction(torch.autograd.Function):
    """``out = f(z)`` forward; backward multiplies by the rule's ``g(z)``."""

    @staticmethod
    def forward(ctx, z, rule, f, ref_z, ref_out):  # type: ignore[override]
        out = f(z)
        ctx.rule, ctx.f, ctx.ref_z, ctx.ref_out = rule, f, ref_z, ref_out
        ctx.save_for_backward(z, out)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        z, out = ctx.saved_tensors
        g = ctx.rule.multiplier(ctx.f, z, out, ctx.ref_z, ctx.ref_out)
        return grad_out * g, None, None, None, None


@dataclass
class _Record:
    name: str
    z: Tensor
    out: Tensor


class RuleContext(TorchFunctionMode):
    r"""Context in which every registered nonlinearity backpropagates with ``rule``.

    Use it directly to apply a rule to any computation (the attribution classes
    do this for you)::

        with RuleContext(EpsilonRule(1e-6)):
            y = model(x.requires_grad_())
        (grad,) = torch.autograd.grad(y[:, c].sum(), x)   # outside the context

    Call :func:`torch.autograd.grad` after leaving the context.

    Args:
        rule (Rule): the rule.
        references (list, optional): records of a reference pass (see
            :meth:`record`), required when ``rule.needs_reference``.
        track_inputs (tuple of Tensor, optional): tensors whose dependents are
            tracked to detect products of two input-dependent values.
    """

    def __init__(
        self,
        rule: Rule,
        references: Optional[List[_Record]] = None,
        track_inputs: Sequence[Tensor] = (),
        recording: bool = False,
    ) -> None:
        super().__init__()
        self.rule = rule
        self.recording = recording
        self.records: List[_Record] = []
        self.references = references
        self.index = 0
        self.seen: Dict[str, Callable] = {}
        self.product_seen: Optional[str] = None
        self._tainted: "weakref.WeakValueDictionary[int, Tensor]" = weakref.WeakValueDictionary()
        self._track = bool(track_inputs) and getattr(rule, "product_warning", None) is not None
        for t in track_inputs:
            self._tainted[id(t)] = t

    @classmethod
    def record(cls, rule: Rule) -> "RuleContext":
        """A context that only records every nonlinearity's input and output."""
        return cls(rule, recording=True)

    # -- taint bookkeeping (only when the rule warns on products) -----------
    def _is_tainted(self, t: Any) -> bool:
        return isinstance(t, Tensor) and self._tainted.get(id(t)) is t

    def _tensor_args(self, args: tuple, kwargs: dict) -> List[Tensor]:
        found = []
        for a in list(args) + list(kwargs.values()):
            if isinstance(a, Tensor):
                found.append(a)
            elif isinstance(a, (list, tuple)):
                found.extend(x for x in a if isinstance(x, Tensor))
        return found

    def _taint(self, result: Any) -> None:
        if isinstance(result, Tensor):
            self._tainted[id(result)] = result
        elif isinstance(result, (list, tuple)):
            for r in result:
                if isinstance(r, Tensor):
                    self._tainted[id(r)] = r

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        entry = lookup(func)
        if entry is None or not args or not isinstance(args[0], Tensor):
            result = func(*args, **kwargs)
            if self._track:
                tainted = [t for t in self._tensor_args(args, kwargs) if self._is_tainted(t)]
                if tainted:
                    self._taint(result)
                    if func in _PRODUCTS and len(tainted) >= 2 and self.product_seen is None:
                        self.product_seen = getattr(func, "__name__", str(func))
            return result
        z = args[0]
        f = _bind_out_of_place(entry, args, kwargs)
        if self.recording:
            out = f(z)
            self.records.append(_Record(entry.name, z.detach(), out.detach()))
            return out
        self.seen.setdefault(entry.name, f)
        ref_z = ref_out = None
        if self.rule.needs_reference:
            ref_z, ref_out = self._next_reference(entry.name, z)
        if z.requires_grad and torch.is_grad_enabled():
            out = _RuleFunction.apply(z, self.rule, f, ref_z, ref_out)
        else:
            out = f(z)
        if self._track and self._is_tainted(z):
            self._taint(out)
        return out

    def _next_reference(self, name: str, z: Tensor) -> Tuple[Tensor, Tensor]:
        refs = self.references
        if refs is None:
            raise RuntimeError(f"{type(self.rule).__name__} needs a reference pass.")
        if self.index >= len(refs):
            raise RuntimeError(
                f"The model applied more nonlinearities to the inputs ({self.index + 1}+) "
                f"than to the baselines ({len(refs)}). {type(self.rule).__name__} pairs "
                "each nonlinearity call with the same call on the baseline, so the "
                "model's control flow must not depend on the input values."
            )
        rec = refs[self.index]
        self.index += 1
        ok = rec.name == name
        if ok:
            try:
                ok = torch.broadcast_shapes(rec.z.shape, z.shape) == z.shape
            except RuntimeError:
                ok = False
        if not ok:
            raise RuntimeError(
                f"Nonlinearity call {self.index} differs between the input pass "
                f"({name}, shape {tuple(z.shape)}) and the baseline pass ({rec.name}, "
                f"shape {tuple(rec.z.shape)}): the model's control flow depends on its "
                "input values, which DeepLIFT's reference pass cannot follow."
            )
        return rec.z, rec.out

    def check_complete(self) -> None:
        """Raise if the baseline pass saw more nonlinearity calls than the input pass."""
        if self.references is not None and self.index != len(self.references):
            raise RuntimeError(
                f"The model applied {self.index} nonlinearities to the inputs but "
                f"{len(self.references)} to the baselines; the model's control flow "
                "must not depend on the input values."
            )

    def warnings(self) -> List[str]:
        """Messages the rule raises about what this pass went through."""
        msgs = []
        for name, f in self.seen.items():
            msg = self.rule.check(name, f)
            if msg:
                msgs.append(msg)
        if self.product_seen is not None:
            msgs.append(self.rule.product_warning.format(op=self.product_seen))
        return msgs


@dataclass
class BackendResult:
    """What :func:`modified_gradients` returns.

    Attributes:
        gradients: :math:`\\partial^g S_c / \\partial x` for each input (or for each
            layer activation when a ``layer`` was given), detached.
        outputs: :math:`S_c(x)`, shape ``(batch,)``.
        baseline_outputs: :math:`S_c(\\bar x)`, shape ``(batch,)``, when a
            reference pass ran, else ``None``.
        activations: the layer's activations at ``x`` (layer mode), detached.
        baseline_activations: the layer's activations at the baseline, when a
            reference pass ran in layer mode (batch 1 if the baseline is shared).
    """

    gradients: Tuple[Tensor, ...]
    outputs: Tensor
    baseline_outputs: Optional[Tensor] = None
    activations: Optional[Tuple[Tensor, ...]] = None
    baseline_activations: Optional[Tuple[Tensor, ...]] = None
    activations_are_tuple: bool = False


class _LayerCapture:
    """Forward (pre-)hook that captures a layer's output (or input) and makes it
    a leaf of the gradient computation. Removed by :meth:`remove`."""

    def __init__(self, layer: nn.Module, use_input: bool, make_leaf: bool) -> None:
        self.tensors: Optional[Tuple[Tensor, ...]] = None
        self.calls = 0
        self.was_tuple = False
        self.make_leaf = make_leaf
        if use_input:
            self.handle = layer.register_forward_pre_hook(self._pre_hook)
        else:
            self.handle = layer.register_forward_hook(self._hook)

    def _prepare(self, value):
        is_tuple = isinstance(value, tuple)
        items = value if is_tuple else (value,)
        self.calls += 1
        if self.calls > 1:
            return value
        new = []
        for t in items:
            if isinstance(t, Tensor) and t.is_floating_point() and self.make_leaf and not t.requires_grad:
                t = t.detach().requires_grad_(True)
            new.append(t)
        self.was_tuple = is_tuple and len(new) > 1  # Captum: a tuple only for several tensors
        self.tensors = tuple(t for t in new if isinstance(t, Tensor))
        return tuple(new) if is_tuple else new[0]

    def _pre_hook(self, module, args):
        return self._prepare(tuple(args))

    def _hook(self, module, args, output):
        return self._prepare(output)

    def remove(self) -> None:
        self.handle.remove()

    def result(self, layer: nn.Module) -> Tuple[Tensor, ...]:
        if self.calls == 0 or self.tensors is None:
            raise RuntimeError(
                f"The layer {type(layer).__name__} was not called during the forward "
                "pass; pass a module that the model actually uses."
            )
        if self.calls > 1:
            raise RuntimeError(
                f"The layer {type(layer).__name__} was called {self.calls} times in one "
                "forward pass; layer attribution needs a layer used once (give each "
                "call site its own module)."
            )
        return self.tensors


def _shared_reference(baselines: Tuple[Tensor, ...], additional_args: Tuple[Any, ...], batch: int) -> bool:
    """True when one baseline sample serves every input sample (batch-1 pass)."""
    if batch == 1 or any(b.shape[0] != 1 for b in baselines):
        return False
    return not any(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch for a in additional_args)


def modified_gradients(
    forward_func: Callable,
    inputs: Tuple[Tensor, ...],
    rule: Optional[Rule] = None,
    target: Any = None,
    additional_args: Tuple[Any, ...] = (),
    baselines: Optional[Tuple[Tensor, ...]] = None,
    layer: Optional[nn.Module] = None,
    attribute_to_layer_input: bool = False,
    reference_pass: bool = False,
) -> BackendResult:
    r"""Compute :math:`\partial^g S_c(x) / \partial x` with the rule ``rule``.

    Args:
        forward_func (Callable): the model or any callable built from torch ops.
        inputs (tuple of Tensor): formatted inputs (batch first). They are not
            modified; gradients are taken on detached copies.
        rule (Rule, optional): default :class:`~captum_unified.rules.GradientRule`.
        target: Captum's ``target``.
        additional_args (tuple): formatted ``additional_forward_args``.
        baselines (tuple of Tensor, optional): formatted baselines, batch 1 or
            the inputs' batch. Needed if ``rule.needs_reference`` or
            ``reference_pass``.
        layer (nn.Module, optional): take the gradient with respect to this
            layer's output (or input, with ``attribute_to_layer_input``).
        reference_pass (bool): run the baseline pass even if the rule does not
            need it (to get ``baseline_outputs`` and ``baseline_activations``).

    Returns:
        :class:`BackendResult`.
    """
    rule = rule if rule is not None else GradientRule()
    batch = inputs[0].shape[0]
    for k, x in enumerate(inputs):
        if not x.is_floating_point():
            raise TypeError(
                f"inputs[{k}] has dtype {x.dtype}; gradient methods need floating "
                "inputs. Attribute to an embedding layer instead (Layer* classes) or "
                "use a perturbation method."
            )
    references = None
    baseline_outputs = None
    baseline_acts = None
    if rule.needs_reference or reference_pass:
        if baselines is None:
            raise ValueError(f"{type(rule).__name__} needs baselines.")
        shared = _shared_reference(baselines, additional_args, batch)
        ref_inputs = baselines if shared else tuple(b.expand_as(x) for b, x in zip(baselines, inputs))
        recorder = RuleContext.record(rule)
        capture = _LayerCapture(layer, attribute_to_layer_input, make_leaf=False) if layer is not None else None
        try:
            with torch.no_grad(), recorder:
                raw = forward_func(*ref_inputs, *additional_args)
        finally:
            if capture is not None:
                capture.remove()
        n_ref = ref_inputs[0].shape[0]
        if isinstance(raw, Tensor) and raw.dim() > 0 and raw.shape[0] == n_ref and n_ref != batch:
            raw = raw.expand((batch,) + tuple(raw.shape[1:]))
        baseline_outputs = select_target(raw, target, batch).detach()
        references = recorder.records
        if capture is not None:
            baseline_acts = tuple(t.detach() for t in capture.result(layer))

    leaves = tuple(x.detach().requires_grad_(True) for x in inputs)
    context = (
        RuleContext(rule, references=references, track_inputs=leaves)
        if rule.modifies_gradient
        else None
    )
    capture = _LayerCapture(layer, attribute_to_layer_input, make_leaf=True) if layer is not None else None
    try:
        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad())
            if context is not None:
                stack.enter_context(context)
            raw = forward_func(*leaves, *additional_args)
            outputs = select_target(raw, target, batch)
    finally:
        if capture is not None:
            capture.remove()
    if context is not None:
        context.check_complete()
        for msg in context.warnings():
            warn(msg)
    wrt = capture.result(layer) if capture is not None else leaves
    seed = torch.ones_like(outputs)
    if rule.applies_to_output:
        ident = lambda t: t  # noqa: E731 - the output as an identity "nonlinearity"
        seed = rule.multiplier(ident, outputs.detach(), outputs.detach(), baseline_outputs, baseline_outputs)
    if outputs.requires_grad:
        grads = torch.autograd.grad(outputs, wrt, grad_outputs=seed, allow_unused=True)
    else:
        grads = (None,) * len(wrt)
    grads = tuple(torch.zeros_like(w) if g is None else g.detach() for g, w in zip(grads, wrt))
    acts = tuple(t.detach() for t in wrt) if capture is not None else None
    is_tuple = capture.was_tuple if capture is not None else False
    return BackendResult(grads, outputs.detach(), baseline_outputs, acts, baseline_acts, is_tuple)
