r"""The unified backend: the modified chain rule of Ancona et al. (ICLR 2018, §3),
extended to every op a model calls (docs: *What the backend does with each op*).

One function, :func:`modified_gradients`, computes

.. math::

    \frac{\partial^g S_c(x)}{\partial x_i} = \sum_{p \in P_{ic}}
        \Big(\prod w_p \prod g(z)_p\Big),

the gradient of the selected output with every element-wise nonlinearity's
derivative replaced by a :class:`~captum_unified.rules.Rule`'s :math:`g`, every
product of two input-dependent values differentiated by the rule's product
policy, and composite ops (max-pooling, LayerNorm, softmax, LSTM/GRU/RNN,
attention, ...) decomposed into those. Gradient*Input, Integrated Gradients,
epsilon-LRP and DeepLIFT (Rescale) and their layer versions are all built on it.

How it reaches every op: inside :class:`RuleContext` a
:class:`torch.overrides.TorchFunctionMode` sees every torch call the model
makes, however it makes it (``nn.ReLU``, ``F.relu``, ``torch.tanh(input=z)``,
``x.sigmoid_()``, one module used at several places, a fused ``nn.LSTM``).
It follows which tensors depend on the explained inputs ("tainted") and
classifies each call with the :class:`~captum_unified.ops.OpTable` passed in
(one value per call; nothing global changes):

* calls whose tensors do not depend on the inputs run untouched;
* meta and linear ops run untouched (ordinary gradient);
* element-wise ops run through an autograd function whose backward multiplies
  by the rule's :math:`g(z)`; in-place calls are computed out of place and
  copied back, so the model computes exactly what it computes without us;
* products of two input-dependent values run through an autograd function
  whose backward follows the rule's product policy;
* composite ops are computed by their decomposition with the mode active;
* Python-level torch functions (``F.multi_head_attention_forward``) are
  followed op by op;
* anything else is *unknown*: it keeps its gradient and the call warns once,
  naming it.

Rules that need the baseline's values (DeepLIFT) get them from one extra
forward pass on the baseline, without gradients, that records the inputs of
every op the rule treats, in call order; the input pass pairs its ops with
those records. When the baseline is shared by all samples (and the model is
not in train mode) that pass runs on a batch of one.

Nothing is attached to the model: no hooks on its modules (except a layer
hook that layer methods need, removed in ``finally``), no patched functions,
no changed flags; buffers a forward pass changes (BatchNorm running statistics
in train mode) are restored (:func:`~captum_unified._utils.state.preserve_model_state`).
"""

from __future__ import annotations

import inspect
import math
import types
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import torch
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack, _pop_mode_temporarily
from torch.utils._pytree import tree_flatten, tree_unflatten

from captum_unified._utils.common import select_target, warn
from captum_unified._utils.state import TRAIN_SENSITIVE, preserve_model_state
from captum_unified.ops import NOT_DECOMPOSED, OpEntry, OpKind, OpTable, default_op_table, op_name
from captum_unified.ops.composites import AS_LINEAR, CLAMP_TENSOR, max_tree, min2
from captum_unified.rules import GradientRule, OpCall, Rule

__all__ = ["RuleContext", "modified_gradients", "BackendResult"]

#: Linear ops through which a gate (sigmoid / softmax output) stays a gate.
_GATE_PRESERVING = {
    "Tensor.__getitem__",
    "Tensor.view",
    "Tensor.reshape",
    "torch.reshape",
    "Tensor.transpose",
    "torch.transpose",
    "Tensor.permute",
    "torch.permute",
    "Tensor.contiguous",
    "Tensor.clone",
    "torch.clone",
    "Tensor.expand",
    "Tensor.expand_as",
    "Tensor.squeeze",
    "Tensor.unsqueeze",
    "torch.squeeze",
    "torch.unsqueeze",
    "F.dropout",
    "Tensor.chunk",
    "torch.chunk",
    "Tensor.split",
    "torch.split",
    "Tensor.unbind",
    "torch.unbind",
    "Tensor.flatten",
    "torch.flatten",
    "Tensor.unflatten",
    "Tensor.to",
    "Tensor.float",
    "Tensor.double",
    "Tensor.narrow",
    "torch.narrow",
    "Tensor.select",
    "torch.select",
    "Tensor.T",
    "Tensor.mT",
}


@dataclass
class _Record:
    """The inputs (and output) of one treated op in a pass, detached."""

    name: str
    tensors: tuple[Tensor, ...]
    out: Tensor | None = None


@dataclass
class _Frame:
    """One level of pairing: the top-level passes, or the two local passes of
    a composite whose constants are shared between passes."""

    recording: bool
    queue: list[_Record] = field(default_factory=list)
    index: int = 0


class _Elementwise(torch.autograd.Function):
    """``out = f(z)``; backward multiplies by the rule's ``g(z)`` (computed
    in the forward pass, the only tensor saved)."""

    @staticmethod
    def forward(ctx, z, f, g_of):
        out = f(z)
        g = g_of(z, out)
        ctx.save_for_backward(g)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        (g,) = ctx.saved_tensors
        return grad_out * g, None, None


class _Bilinear(torch.autograd.Function):
    """``out = fn(a, b)`` for a bilinear ``fn``; backward takes
    ``d fn(a, b_) / da`` and ``d fn(a_, b) / db`` (the product policy)."""

    @staticmethod
    def forward(ctx, a, b, fn, a_, b_, closed):
        ctx.fn, ctx.closed = fn, closed
        ctx.a_meta = (a.shape, a.dtype, a.device)
        ctx.b_meta = (b.shape, b.dtype, b.device)
        ctx.has = (a_ is not None, b_ is not None)
        ctx.save_for_backward(a_ if a_ is not None else a.new_empty(0), b_ if b_ is not None else b.new_empty(0))
        return fn(a, b)

    @staticmethod
    def backward(ctx, grad):
        a_, b_ = ctx.saved_tensors
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = (
                _partial(ctx, grad, b_, 0)
                if ctx.has[1]
                else torch.zeros(ctx.a_meta[0], dtype=ctx.a_meta[1], device=ctx.a_meta[2])
            )
        if ctx.needs_input_grad[1]:
            gb = (
                _partial(ctx, grad, a_, 1)
                if ctx.has[0]
                else torch.zeros(ctx.b_meta[0], dtype=ctx.b_meta[1], device=ctx.b_meta[2])
            )
        return ga, gb, None, None, None, None


def _partial(ctx, grad: Tensor, other: Tensor, which: int) -> Tensor:
    shape, dtype, device = ctx.a_meta if which == 0 else ctx.b_meta
    if ctx.closed == "mul":
        return (grad * other).sum_to_size(shape) if tuple(shape) != tuple(grad.shape) else grad * other
    if ctx.closed == "matmul":  # both operands at least 2-d
        g = grad @ other.transpose(-1, -2) if which == 0 else other.transpose(-1, -2) @ grad
        return g.sum_to_size(shape) if tuple(shape) != tuple(g.shape) else g
    with torch.enable_grad():
        free = torch.zeros(shape, dtype=dtype, device=device, requires_grad=True)
        out = ctx.fn(free, other) if which == 0 else ctx.fn(other, free)
        (g,) = torch.autograd.grad(out, free, grad)
    return g


class _MaxRule(torch.autograd.Function):
    r"""``y = max(v)`` over the last dimension; backward multiplies by DeepLIFT's
    max rule (Shrikumar et al. 2017, as Captum's ``DeepLift`` max-pooling): the
    input's arg-max gets :math:`\max(y, \bar y) - \bar y`, the baseline's
    arg-max gets :math:`y - \max(y, \bar y)`, each as a multiplier of its
    :math:`\Delta v`; they sum to :math:`y - \bar y` (exactly complete) and
    do not depend on the order of the candidates."""

    @staticmethod
    def forward(ctx, v, ref_v, ref_y, eps):
        y, i = v.max(-1, keepdim=True)
        ref_v = ref_v.expand_as(v)
        ref_y = ref_y.unsqueeze(-1).expand_as(y)
        j = ref_v.argmax(-1, keepdim=True)
        top = torch.maximum(y, ref_y)
        dv = v - ref_v
        dv_i, dv_j = dv.gather(-1, i), dv.gather(-1, j)
        ok_i, ok_j = dv_i.abs() > eps, dv_j.abs() > eps
        one = torch.ones_like(dv_i)
        m_i = torch.where(ok_i, (top - ref_y) / torch.where(ok_i, dv_i, one), one)  # gradient where dv ~ 0
        m_j = torch.where(ok_j, (y - top) / torch.where(ok_j, dv_j, one), torch.zeros_like(dv_j))
        m = torch.zeros_like(v).scatter_add_(-1, i, m_i).scatter_add_(-1, j, m_j)
        ctx.save_for_backward(m)
        return y.squeeze(-1)

    @staticmethod
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        return grad.unsqueeze(-1) * m, None, None, None


class _MaxPoolRule(torch.autograd.Function):
    """DeepLIFT's max rule for max-pooling without materialising the windows:
    ``pool(t) -> (values, flat spatial indices)`` gives the input's and the
    baseline's arg-max of every window; the backward scatters to them."""

    @staticmethod
    def forward(ctx, x, ref_x, ref_y, ref_idx, pool, eps):
        y, i = pool(x)
        xf = x.flatten(2)
        rxf = ref_x.flatten(2).expand_as(xf)
        i_f = i.flatten(2)
        j_f = ref_idx.flatten(2).expand_as(i_f)
        yf = y.flatten(2)
        ryf = ref_y.flatten(2).expand_as(yf)
        # x at its arg-max is y, the baseline at its arg-max is y_bar: no full-size difference needed
        dv_i = yf - rxf.gather(2, i_f)
        dv_j = xf.gather(2, j_f) - ryf
        top = torch.maximum(yf, ryf)
        # The two secants lie in [0, 1] whatever |dv| is (x_bar[i] <= y_bar and
        # x[j] <= y), so no small-difference mask is needed: m_i dv_i + m_j dv_j
        # = y - y_bar exactly wherever dv != 0, and where dv = 0 (0 / 0) they
        # take the gradient of max, 1 at the input's arg-max and 0 at the
        # baseline's (Captum's choice there). Eleven float kernels instead of 25.
        m_i = (top - ryf).div_(dv_i).nan_to_num_(1.0, 1.0, 0.0)
        m_j = (yf - top).div_(dv_j).nan_to_num_(0.0, 1.0, 0.0)
        ctx.save_for_backward(i_f, j_f, m_i, m_j)
        ctx.in_shape = x.shape
        return y

    @staticmethod
    def backward(ctx, grad):
        i_f, j_f, m_i, m_j = ctx.saved_tensors
        shape = ctx.in_shape
        gf = grad.flatten(2)
        gin = gf.new_zeros(shape[0], shape[1], math.prod(shape[2:]))
        gin.scatter_add_(2, i_f, gf * m_i).scatter_add_(2, j_f, gf * m_j)
        return gin.view(shape), None, None, None, None, None


#: Python's in-place operators and item assignment: they write into their first argument.
_INPLACE_DUNDERS = frozenset(
    "__iadd__ __isub__ __imul__ __itruediv__ __ifloordiv__ __imod__ __ipow__ __imatmul__ __iand__ __ior__ "
    "__ixor__ __ilshift__ __irshift__ __setitem__".split()
)

#: Products with matmul's semantics (closed-form backward when both are >= 2-d).
_MATMULS = {
    torch.matmul,
    torch.Tensor.matmul,
    torch.Tensor.__matmul__,
    torch.mm,
    torch.Tensor.mm,
    torch.bmm,
    torch.Tensor.bmm,
}

_UNWRAPPED: weakref.WeakKeyDictionary[Callable, Callable] = weakref.WeakKeyDictionary()


def _broadcastable(a: Sequence[int], b: Sequence[int]) -> bool:
    """Whether two shapes broadcast (``torch.broadcast_shapes`` without its
    cost: it runs through torch._refs, ~70 us a call, once per paired op)."""
    return all(x == y or x == 1 or y == 1 for x, y in zip(reversed(a), reversed(b)))


def _no_torch_function(*args: Any, **kwargs: Any) -> bool:
    return False


def _unwrapped(func: Callable) -> Callable:
    """A copy of a Python-level torch function whose own ``has_torch_function``
    check is off, so that its body runs (and is followed op by op) under the
    mode instead of dispatching to the mode again. Built once per function."""
    body = _UNWRAPPED.get(func)
    if body is None:
        scope = dict(func.__globals__)
        scope.update(
            has_torch_function=_no_torch_function,
            has_torch_function_unary=_no_torch_function,
            has_torch_function_variadic=_no_torch_function,
        )
        body = types.FunctionType(func.__code__, scope, func.__name__, func.__defaults__, func.__closure__)
        body.__kwdefaults__ = func.__kwdefaults__
        _UNWRAPPED[func] = body
    return body


def _python_torch_function(func: Callable) -> bool:
    module = getattr(func, "__module__", "") or ""
    return isinstance(func, types.FunctionType) and module in ("torch.nn.functional", "torch.functional")


_SIGNATURES: dict[Callable, inspect.Signature | None] = {}


def _signature(fn: Callable) -> inspect.Signature | None:
    if fn not in _SIGNATURES:
        try:
            _SIGNATURES[fn] = inspect.signature(fn)
        except (TypeError, ValueError):
            _SIGNATURES[fn] = None
    return _SIGNATURES[fn]


def _required(value: Callable[..., Any] | None, entry: OpEntry, field_name: str) -> Callable[..., Any]:
    """``entry.<field_name>``, which the entry's kind needs (an ELEMENTWISE or
    LINEAR entry calls ``function``, a COMPOSITE one ``decompose``)."""
    if value is None:
        raise TypeError(f"op table entry {entry.name!r} ({entry.kind.value}) has no {field_name}")
    return value


def _split_inplace(entry: OpEntry, func: Callable, args: tuple, kwargs: dict) -> tuple[tuple, dict, bool]:
    """Normalise a call: ``input=`` keyword to the first position, an
    ``inplace`` flag off (returned separately)."""
    if not args and "input" in kwargs:
        kwargs = dict(kwargs)
        args = (kwargs.pop("input"),)
    elif not args and "self" in kwargs:
        kwargs = dict(kwargs)
        args = (kwargs.pop("self"),)
    inplace = entry.inplace
    sig = _signature(func) if "inplace" in kwargs or len(args) > 1 else None
    if "inplace" in kwargs:
        kwargs = dict(kwargs)
        inplace = bool(kwargs.pop("inplace")) or inplace
    elif sig is not None and "inplace" in sig.parameters:
        pos = list(sig.parameters).index("inplace")
        if len(args) > pos:
            inplace = bool(args[pos]) or inplace
            args = args[:pos] + args[pos + 1 :]
    return args, kwargs, inplace


class RuleContext(TorchFunctionMode):
    r"""Context in which every op backpropagates as ``rule`` says.

    Use it directly to apply a rule to any computation (the attribution
    classes do this for you)::

        x = x.detach().requires_grad_()
        with RuleContext(EpsilonLRPRule(1e-6), leaves=(x,)):
            y = model(x)
        (grad,) = torch.autograd.grad(y[:, c].sum(), x)   # outside the context

    Call :func:`torch.autograd.grad` after leaving the context.

    Args:
        rule (Rule): the rule.
        op_table (OpTable, optional): how ops are classified. Default:
            :func:`~captum_unified.ops.default_op_table`.
        references (list, optional): records of a reference pass (the
            ``records`` of a context created with ``recording=True``),
            required when ``rule.needs_reference``.
        recording (bool): record the inputs of every treated op instead of
            applying the rule (the reference pass).
        leaves (tuple of Tensor): the tensors the attribution is taken with
            respect to; only ops on tensors that depend on them are treated.
    """

    def __init__(
        self,
        rule: Rule,
        op_table: OpTable | None = None,
        references: list[_Record] | None = None,
        recording: bool = False,
        leaves: Sequence[Tensor] = (),
    ) -> None:
        super().__init__()
        self.rule = rule
        self.table = op_table if op_table is not None else default_op_table()
        self.frames: list[_Frame] = [_Frame(recording, [] if recording else list(references or []))]
        self.has_references = recording or references is not None
        # id -> tensor, holding the tensors for the duration of the pass (ids
        # stay unique; plain dicts are ~20x cheaper than weak ones); release()
        # drops them after the forward pass.
        self._taint: dict[int, Tensor] = {}
        self._gates: dict[int, Tensor] = {}
        self._rule_outputs: dict[int, Tensor] = {}
        self.unknown: dict[str, int] = {}
        # tensors computed from the inputs by comparisons (masks) and what is
        # made from them without a float input (mask.float()); ops that combine
        # one with an input-dependent tensor, by name -> count
        self._masks: dict[int, Tensor] = {}
        self.selections: dict[str, int] = {}
        self._depth = 0  # > 0 inside the backend's own decompositions
        self.checked: dict[str, str | None] = {}
        self.product_messages: dict[str, str] = {}
        params = _signature(rule.multiplier)
        self._pass_op = params is not None and (
            "op" in params.parameters or any(p.kind is p.VAR_KEYWORD for p in params.parameters.values())
        )
        self.taint(*leaves)

    # -------------------------------------------------------------- records
    @property
    def recording(self) -> bool:
        return self.frames[-1].recording

    @property
    def records(self) -> list[_Record]:
        """What a recording context recorded (top level)."""
        return self.frames[0].queue

    def _record(self, name: str, tensors: Sequence[Tensor], out: Tensor | None = None, copy: bool = False) -> None:
        kept = tuple((t.detach().clone() if copy else t.detach()) if isinstance(t, Tensor) else t for t in tensors)
        self.frames[-1].queue.append(_Record(name, kept, None if out is None else out.detach()))

    def _next(self, name: str, tensors: Sequence[Any]) -> _Record:
        frame = self.frames[-1]
        if not self.has_references and len(self.frames) == 1:
            raise RuntimeError(f"{type(self.rule).__name__} needs a reference pass.")
        if frame.index >= len(frame.queue):
            raise RuntimeError(
                f"The model applied more treated ops to the inputs ({frame.index + 1}+, now '{name}') than to "
                f"the baselines ({len(frame.queue)}). {type(self.rule).__name__} pairs each op with the same "
                "op on the baseline, so the model's control flow must not depend on the input values."
            )
        rec = frame.queue[frame.index]
        frame.index += 1
        ok = rec.name == name and len(rec.tensors) == len(tensors)
        if ok:
            for r, t in zip(rec.tensors, tensors):
                if isinstance(r, Tensor) and isinstance(t, Tensor) and not _broadcastable(r.shape, t.shape):
                    ok = False
        if not ok:
            shapes = [tuple(t.shape) for t in tensors if isinstance(t, Tensor)]
            ref_shapes = [tuple(t.shape) for t in rec.tensors if isinstance(t, Tensor)]
            raise RuntimeError(
                f"Op {frame.index} differs between the input pass ({name}, shapes {shapes}) and the "
                f"baseline pass ({rec.name}, shapes {ref_shapes}): the model's control flow depends on "
                "its input values, which DeepLIFT's reference pass cannot follow."
            )
        return rec

    def check_complete(self) -> None:
        """Raise if the baseline pass saw more treated ops than the input pass."""
        frame = self.frames[0]
        if not frame.recording and self.has_references and frame.index != len(frame.queue):
            raise RuntimeError(
                f"The model applied {frame.index} treated ops to the inputs but {len(frame.queue)} to the "
                "baselines; the model's control flow must not depend on the input values."
            )

    # ---------------------------------------------------------------- taint
    def taint(self, *tensors: Any) -> None:
        """Mark tensors (and tensors inside tuples/lists) as input-dependent."""
        for t in tensors:
            if isinstance(t, Tensor):
                if t.is_floating_point() or t.is_complex():
                    self._taint[id(t)] = t
            elif isinstance(t, (list, tuple)):
                self.taint(*t)

    def tainted(self, t: Any) -> TypeGuard[Tensor]:
        """Whether ``t`` depends on the explained inputs."""
        return isinstance(t, Tensor) and self._taint.get(id(t)) is t

    def _any_tainted(self, items: Any, depth: int = 0) -> bool:
        """Whether an argument depends on the inputs (a tainted tensor or an
        input-dependent mask)."""
        for a in items:
            if isinstance(a, Tensor):
                if self._taint.get(id(a)) is a or self._masks.get(id(a)) is a:
                    return True
            elif depth < 2 and isinstance(a, (list, tuple)):
                if self._any_tainted(a, depth + 1):
                    return True
        return False

    def _mask_args(self, items: Any, depth: int = 0) -> tuple[bool, bool]:
        """(any input-dependent mask, any tainted tensor) among the arguments."""
        mask = taint = False
        for a in items:
            if isinstance(a, Tensor):
                mask = mask or self._masks.get(id(a)) is a
                taint = taint or self._taint.get(id(a)) is a
            elif depth < 2 and isinstance(a, (list, tuple)):
                m, t = self._mask_args(a, depth + 1)
                mask, taint = mask or m, taint or t
        return mask, taint

    def _mark_masks(self, result: Any) -> None:
        for t in result if isinstance(result, (list, tuple)) else (result,):
            if isinstance(t, Tensor):
                self._masks[id(t)] = t

    def _protect_records(self, func: Callable, args: tuple, kwargs: dict) -> None:
        """In a recording pass, before an op writes into a tensor in place:
        records that share its storage get their own copy, so that the
        baseline values the input pass pairs with stay what they were."""
        target = kwargs.get("out")
        if target is None:
            name = getattr(func, "__name__", "")
            if not (name in _INPLACE_DUNDERS or (name.endswith("_") and not name.endswith("__"))):
                return
            target = args[0] if args else None
        self._protect_storage(target if isinstance(target, (list, tuple)) else (target,))

    def _protect_storage(self, targets: Sequence[Any]) -> None:
        """Give every recorded tensor that shares storage with ``targets`` its
        own copy (before something writes into ``targets``)."""
        ptrs = {t.untyped_storage().data_ptr() for t in targets if isinstance(t, Tensor)}
        if not ptrs:
            return

        def own(t: Any) -> Any:
            if isinstance(t, Tensor) and t.untyped_storage().data_ptr() in ptrs:
                return t.clone()
            return t

        for frame in self.frames:
            if frame.recording:
                for i, rec in enumerate(frame.queue):
                    tensors, out = tuple(own(t) for t in rec.tensors), own(rec.out)
                    if out is not rec.out or any(a is not b for a, b in zip(tensors, rec.tensors)):
                        frame.queue[i] = _Record(rec.name, tensors, out)

    def _gate(self, t: Any) -> bool:
        return isinstance(t, Tensor) and self._gates.get(id(t)) is t

    def _mark_gate(self, result: Any) -> None:
        for t in result if isinstance(result, (list, tuple)) else (result,):
            if isinstance(t, Tensor):
                self._gates[id(t)] = t

    def release(self) -> None:
        """Forget the tensors of the pass (call after the forward pass)."""
        self._taint.clear()
        self._masks.clear()
        self._gates.clear()
        self._rule_outputs.clear()

    def is_rule_output(self, t: Tensor) -> bool:
        """Whether ``t`` (or the tensor it is a view of) came out of an
        element-wise op the rule was applied to."""
        for c in (t, getattr(t, "_base", None)):
            if isinstance(c, Tensor) and self._rule_outputs.get(id(c)) is c:
                return True
        return False

    @contextmanager
    def _suspended(self) -> Iterator[None]:
        """Run torch ops without this mode (when it is on top of the mode
        stack, i.e. inside a decomposition); other modes stay active."""
        stack = _get_current_function_mode_stack()
        if stack and stack[-1] is self:
            with _pop_mode_temporarily():
                yield
        else:
            yield

    # ----------------------------------------------------------- dispatch
    def __torch_function__(self, func, types_, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not (self._any_tainted(args) or (kwargs and self._any_tainted(kwargs.values()))):
            return func(*args, **kwargs)
        if self.recording:
            self._protect_records(func, args, kwargs)
        if self._masks:
            mask, taint = self._mask_args((*args, *kwargs.values()))
            if mask and not taint:  # mask.float(), ~mask, mask & other: still a mask
                result = func(*args, **kwargs)
                self._mark_masks(result)
                return result
            if mask and self._depth == 0 and not self.recording and self.rule.needs_reference:
                name = op_name(func)
                self.selections[name] = self.selections.get(name, 0) + 1
        entry = self.table.lookup(func)
        if entry is None:
            if _python_torch_function(func):
                return self._transparent(func, args, kwargs)
            return self._unknown(func, args, kwargs)
        kind = entry.kind
        if kind is OpKind.META:
            result = func(*args, **kwargs)
            if isinstance(result, Tensor) and result.dtype is torch.bool:
                self._mark_masks(result)  # a comparison of input-dependent values
            return result
        if kind is OpKind.LINEAR:
            result = func(*args, **kwargs)
            self.taint(result)
            if entry.name in _GATE_PRESERVING and any(self._gate(a) for a in args):
                self._mark_gate(result)
            return result
        if kind is OpKind.ELEMENTWISE:
            return self._elementwise(entry, func, args, kwargs)
        if kind is OpKind.PRODUCT:
            return self._product(entry, func, args, kwargs)
        if kind is OpKind.COMPOSITE:
            return self._composite(entry, func, args, kwargs)
        return self._transparent(func, args, kwargs)

    def _unknown(self, func, args, kwargs):
        if not self.recording:
            name = op_name(func)
            self.unknown[name] = self.unknown.get(name, 0) + 1
        result = func(*args, **kwargs)
        self.taint(result)
        return result

    def _transparent(self, func, args, kwargs):
        with self:
            result = _unwrapped(func)(*args, **kwargs)
        self.taint(result)
        return result

    # -------------------------------------------------------- element-wise
    def _elementwise(self, entry: OpEntry, func, args, kwargs):
        call_args, call_kwargs = args, kwargs
        args, kwargs, inplace = _split_inplace(entry, func, args, kwargs)
        z = args[0] if args else None
        if not self.tainted(z) or self._any_tainted(args[1:]) or self._any_tainted(kwargs.values()):
            if entry.name in ("clamp", "clamp_min", "clamp_max"):
                result = self._decompose(CLAMP_TENSOR, func, args, kwargs, {})
                return self._finish(result, args, inplace, entry)
            return self._unknown(func, call_args, call_kwargs)
        fn, rest = _required(entry.function, entry, "function"), args[1:]
        out = self.elementwise(
            entry.name, lambda t: fn(t, *rest, **kwargs), z, entry.derivative, entry.gate, copy=inplace
        )
        return self._finish(out, args, inplace, entry)

    def elementwise(
        self,
        name: str,
        f: Callable[[Tensor], Tensor],
        z: Tensor,
        derivative: Callable[[Tensor, Tensor], Tensor] | None = None,
        gate: bool = False,
        copy: bool = False,
    ) -> Tensor:
        """Apply the element-wise function ``f`` to ``z`` with the rule (used
        by the dispatcher and by decompositions for functions that are not a
        single torch op)."""
        with self._suspended():  # called from decompositions too
            return self._elementwise_off(name, f, z, derivative, gate, copy)

    def _elementwise_off(self, name, f, z, derivative, gate, copy):
        if derivative is not None and _get_current_function_mode_stack():
            derivative = None  # another mode may change f (softplus_swap): differentiate f itself
        op = OpCall(name, derivative=derivative)
        if self.recording:
            out = f(z)
            self._record(name, (z,), out, copy=copy)
        else:
            if name not in self.checked:
                self.checked[name] = self.rule.check(op, f, z.detach())
            ref_z = ref_out = None
            if self.rule.needs_reference:
                rec = self._next(name, (z,))
                ref_z, ref_out = rec.tensors[0], rec.out
            if torch.is_grad_enabled() and z.requires_grad:
                rule = self.rule
                if self._pass_op:

                    def g_of(zz, out, _r=ref_z, _o=ref_out):
                        return rule.multiplier(f, zz, out, _r, _o, op=op)
                else:

                    def g_of(zz, out, _r=ref_z, _o=ref_out):
                        return rule.multiplier(f, zz, out, _r, _o)

                out = _Elementwise.apply(z, f, g_of)
                self._rule_outputs[id(out)] = out
            else:
                out = f(z)
        self.taint(out)
        if gate:
            self._mark_gate(out)
        return out

    def kmax(self, v: Tensor, minimum: bool = False) -> Tensor:
        """The maximum (``minimum=True``: minimum) of ``v`` over its last
        dimension with the rule's max policy; called from decompositions (the
        mode is active there)."""
        policy = getattr(self.rule, "maxima", "gradient")
        if policy == "tree":
            return max_tree(v, min2) if minimum else max_tree(v)
        if minimum:
            return -self.kmax(-v)
        if not self.rule.needs_reference:  # "deeplift" without a baseline pass: ordinary gradient
            return v.amax(-1)
        with self._suspended():
            if self.recording:
                out = v.amax(-1)
                self._record("max", (v,), out)
            else:
                rec = self._next("max", (v,))
                if torch.is_grad_enabled() and v.requires_grad:
                    out = _MaxRule.apply(v, rec.tensors[0], rec.out, getattr(self.rule, "eps", 1e-10))
                else:
                    out = v.amax(-1)
            self.taint(out)
        return out

    def pooled_max(self, x: Tensor, pool: Callable[[Tensor], tuple[Tensor, Tensor]]) -> Tensor | None:
        """Max-pooling of a batched ``x`` with DeepLIFT's max rule, or ``None``
        when the rule's max policy is another one (the caller then builds the
        windows and uses :meth:`kmax`). ``pool(t)`` returns the values and the
        flat spatial indices (``return_indices=True``)."""
        if getattr(self.rule, "maxima", "") != "deeplift" or not self.rule.needs_reference:
            return None
        with self._suspended():
            if self.recording:
                y, idx = pool(x)
                self._record("max_pool", (x, idx), y)
            else:
                rec = self._next("max_pool", (x, None))
                if torch.is_grad_enabled() and x.requires_grad:
                    y = _MaxPoolRule.apply(
                        x, rec.tensors[0], rec.out, rec.tensors[1], pool, getattr(self.rule, "eps", 1e-10)
                    )
                else:
                    y = pool(x)[0]
            self.taint(y)
        return y

    def note_elementwise(self, name: str, f: Callable[[Tensor], Tensor], z: Tensor) -> None:
        """Let the rule check an element-wise op a fused kernel applies (the
        warnings are the decomposition's)."""
        if not self.recording and name not in self.checked:
            self.checked[name] = self.rule.check(OpCall(name), f, z.detach())

    def note_product(self, name: str, gates: tuple[bool, ...] = ()) -> None:
        """Let the rule warn about a product a fused kernel applies."""
        if not self.recording and name not in self.product_messages:
            message = self.rule.product_warning(OpCall(name, gates=gates))
            if message:
                self.product_messages[name] = message

    def _finish(self, result: Any, args: tuple, inplace: bool, entry: OpEntry) -> Any:
        """Copy an in-place call's result into its first argument."""
        if inplace and isinstance(result, Tensor) and args and isinstance(args[0], Tensor):
            target = args[0]
            if any(frame.recording for frame in self.frames):
                self._protect_storage((target,))  # this op's own record may hold the old values
            target.copy_(result)
            self.taint(target)
            if self._gate(result):
                self._mark_gate(target)
            if self._rule_outputs.get(id(result)) is result:
                self._rule_outputs[id(target)] = target
            return target
        return result

    # ------------------------------------------------------------- products
    def _product(self, entry: OpEntry, func, args, kwargs):
        name = entry.name
        bias = None
        if name == "einsum":
            equation = args[0]
            operands = list(args[1]) if len(args) == 2 and isinstance(args[1], (list, tuple)) else list(args[1:])
            if sum(self.tainted(o) for o in operands) < 2:
                return self._linear_call(func, args, kwargs)
            if len(operands) != 2:
                return self._unknown(func, args, kwargs)
            a, b = operands

            def fn(u, v):
                return torch.einsum(equation, u, v)
        else:
            args, kwargs, inplace = _split_inplace(entry, func, args, kwargs)
            a = args[0]
            if name in ("linear", "conv"):
                b = args[1] if len(args) > 1 else kwargs.get("weight")
                bias = args[2] if len(args) > 2 else kwargs.get("bias")
                rest, kw = args[3:], {k: v for k, v in kwargs.items() if k not in ("weight", "bias")}
            else:
                b = args[1] if len(args) > 1 else kwargs.get("other")
                rest, kw = args[2:], {k: v for k, v in kwargs.items() if k != "other"}
            if not (self.tainted(a) and self.tainted(b)):
                return self._linear_call(func, args, kwargs, inplace, entry)
            function = _required(entry.function, entry, "function")
            if name == "rmatmul":

                def fn(u, v):
                    return torch.matmul(v, u)
            elif name in ("linear", "conv"):

                def fn(u, v):
                    return function(u, v, None, *rest, **kw)
            else:

                def fn(u, v):
                    return function(u, v, *rest, **kw)

        closed = "mul" if name == "mul" else ("matmul" if func in _MATMULS and a.dim() >= 2 and b.dim() >= 2 else "")
        out = self.product(name, fn, a, b, closed=closed)
        if bias is not None:
            out = out + (bias if name == "linear" else bias.reshape((-1,) + (1,) * (out.dim() - 2)))
            self.taint(out)
        if name != "einsum":
            return self._finish(out, args, inplace, entry)
        return out

    def product(
        self, name: str, fn: Callable[[Tensor, Tensor], Tensor], a: Tensor, b: Tensor, closed: str = ""
    ) -> Tensor:
        """``fn(a, b)`` for a bilinear ``fn`` of two input-dependent factors,
        differentiated by the rule's product policy."""
        if self.recording:
            out = fn(a, b)
            self._record(name, (a, b))
        else:
            op = OpCall(name, gates=(self._gate(a), self._gate(b)))
            message = self.rule.product_warning(op)
            if message and name not in self.product_messages:
                self.product_messages[name] = message
            ref_a = ref_b = None
            if self.rule.needs_reference:
                rec = self._next(name, (a, b))
                ref_a, ref_b = rec.tensors
            if torch.is_grad_enabled() and (a.requires_grad or b.requires_grad):
                a_, b_ = self.rule.product_factors(op, a.detach(), b.detach(), ref_a, ref_b)
                out = _Bilinear.apply(a, b, fn, a_, b_, closed)
            else:
                out = fn(a, b)
        self.taint(out)
        return out

    def _linear_call(self, func, args, kwargs, inplace: bool = False, entry: OpEntry | None = None):
        if inplace and entry is not None:
            result = _required(entry.function, entry, "function")(*args, **kwargs)
            return self._finish(result, args, True, entry)
        result = func(*args, **kwargs)
        self.taint(result)
        return result

    # ----------------------------------------------------------- composites
    def _decompose(self, decompose: Callable, func, args, kwargs, consts) -> Any:
        self._depth += 1
        try:
            with self:
                return decompose(self, func, args, kwargs, consts)
        finally:
            self._depth -= 1

    def _composite(self, entry: OpEntry, func, args, kwargs):
        args, kwargs, inplace = _split_inplace(entry, func, args, kwargs)
        if entry.applies is not None and not entry.applies(self.rule):
            result = self._linear_call(func, args, kwargs)
            if entry.gate:
                self._mark_gate(result)
            return result
        if not entry.paired:
            result = self._decompose(_required(entry.decompose, entry, "decompose"), func, args, kwargs, {})
        else:
            result = self._paired(entry, func, args, kwargs)
        if result is AS_LINEAR:
            return self._linear_call(func, args, kwargs, inplace, entry)
        if result is NOT_DECOMPOSED:
            return self._unknown(func, args, kwargs)
        self.taint(result)
        if entry.gate:
            self._mark_gate(result)
        return self._finish(result, args, inplace, entry)

    def _paired(self, entry: OpEntry, func, args, kwargs):
        """A composite whose decomposition needs constants shared by both
        passes (softmax's shift): the input pass recomputes the baseline
        side of the decomposition itself, with the same constants."""
        leaves, spec = tree_flatten((args, kwargs))
        if self.recording:
            result = func(*args, **kwargs)
            self._record(entry.name, [t for t in leaves if isinstance(t, Tensor)])
            return result
        constants = entry.constants or (lambda *a: {})
        if not self.rule.needs_reference:
            if entry.fused is not None:
                result = entry.fused(self, func, args, kwargs, None, None)
                if result is not NOT_DECOMPOSED:
                    return result
            return self._decompose(
                _required(entry.decompose, entry, "decompose"), func, args, kwargs, constants(args, kwargs, None, None)
            )
        rec = self._next(entry.name, [t for t in leaves if isinstance(t, Tensor)])
        if entry.fused is not None:
            raw = iter(rec.tensors)
            raw_args, raw_kwargs = tree_unflatten([next(raw) if isinstance(t, Tensor) else t for t in leaves], spec)
            result = entry.fused(self, func, args, kwargs, raw_args, raw_kwargs)
            if result is not NOT_DECOMPOSED:
                return result
        refs = iter(rec.tensors)
        ref_leaves = []
        for t in leaves:
            if isinstance(t, Tensor):
                r = next(refs)
                r = r.expand(t.shape) if r.shape != t.shape else r
                if self.tainted(t):
                    self._taint[id(r)] = r
                ref_leaves.append(r)
            else:
                ref_leaves.append(t)
        ref_args, ref_kwargs = tree_unflatten(ref_leaves, spec)
        consts = constants(args, kwargs, ref_args, ref_kwargs)
        local = _Frame(recording=True)
        self.frames.append(local)
        try:
            with torch.no_grad():
                self._decompose(_required(entry.decompose, entry, "decompose"), func, ref_args, ref_kwargs, consts)
        finally:
            self.frames.pop()
        replay = _Frame(recording=False, queue=local.queue)
        self.frames.append(replay)
        try:
            result = self._decompose(_required(entry.decompose, entry, "decompose"), func, args, kwargs, consts)
        finally:
            self.frames.pop()
        return result

    # ------------------------------------------------------------- warnings
    def warnings(self) -> list[str]:
        """Messages about what this pass went through."""
        msgs = [m for m in self.checked.values() if m]
        msgs.extend(self.product_messages.values())
        if self.unknown:
            listed = ", ".join(f"{n} ({c}x)" for n, c in sorted(self.unknown.items()))
            msgs.append(
                f"The model called torch ops that the backend has no rule for: {listed}. They keep their "
                f"ordinary gradient, so {type(self.rule).__name__} treats them as linear and DeepLIFT's "
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
                f"no gradient, so {type(self.rule).__name__} does not attribute the change of the selection "
                "between input and baseline to any input, and completeness may not hold (check "
                "return_convergence_delta=True). Write such a selection as an element-wise function "
                "(F.relu, F.leaky_relu, torch.clamp, torch.maximum) or add it to the op table "
                "(captum_unified.ops.default_op_table().with_elementwise(...))."
            )
        return msgs


@dataclass
class BackendResult:
    """What :func:`modified_gradients` returns.

    Attributes:
        gradients: :math:`\\partial^g S_c / \\partial x` for each input (or for
            each layer activation when layers were given), detached.
        outputs: :math:`S_c(x)`, shape ``(batch,)``.
        baseline_outputs: :math:`S_c(\\bar x)`, shape ``(batch,)``, when a
            reference pass ran, else ``None``.
        activations: the layers' activations at ``x`` (layer mode), detached.
        baseline_activations: the layers' activations at the baseline, when a
            reference pass ran in layer mode (batch 1 if the baseline is shared).
        layer_shapes: per layer, how many tensors of ``activations`` it owns
            and whether it returned (or took) a tuple.
    """

    gradients: tuple[Tensor, ...]
    outputs: Tensor
    baseline_outputs: Tensor | None = None
    activations: tuple[Tensor, ...] | None = None
    baseline_activations: tuple[Tensor, ...] | None = None
    layer_shapes: tuple[tuple[int, bool], ...] = ()

    @property
    def activations_are_tuple(self) -> bool:
        """(One layer) whether the layer returned or took several tensors."""
        return bool(self.layer_shapes and self.layer_shapes[0][1])


class _LayerCapture:
    """Forward (pre-)hook that captures a layer's output (or input) and makes it
    a leaf of the gradient computation. Removed by :meth:`remove`."""

    def __init__(
        self, layer: nn.Module, use_input: bool, make_leaf: bool, on_capture: Callable[..., None] | None = None
    ) -> None:
        self.tensors: tuple[Tensor, ...] | None = None
        self.calls = 0
        self.was_tuple = False
        self.make_leaf = make_leaf
        self.on_capture = on_capture
        self.layer = layer
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
        captured, passed = [], []
        for t in items:
            if isinstance(t, Tensor):
                if t.is_floating_point() and self.make_leaf and not t.requires_grad:
                    t = t.detach().requires_grad_(True)
                captured.append(t)
                if self.on_capture is not None:
                    self.on_capture(t)
                # the model continues with a copy: in-place ops after the layer
                # (an in-place ReLU) then change neither the captured values nor
                # a leaf, and gradients flow through the copy to the captured
                # tensor (also from a later captured layer: lists of layers).
                t = t.clone() if t.is_floating_point() else t
            passed.append(t)
        self.was_tuple = is_tuple and len(passed) > 1  # Captum: a tuple only for several tensors
        self.tensors = tuple(captured)
        return tuple(passed) if is_tuple else passed[0]

    def _pre_hook(self, module, args):
        return self._prepare(tuple(args))

    def _hook(self, module, args, output):
        return self._prepare(output)

    def remove(self) -> None:
        self.handle.remove()

    def result(self) -> tuple[Tensor, ...]:
        if self.calls == 0 or self.tensors is None:
            raise RuntimeError(
                f"The layer {type(self.layer).__name__} was not called during the forward "
                "pass; pass a module that the model actually uses."
            )
        if self.calls > 1:
            raise RuntimeError(
                f"The layer {type(self.layer).__name__} was called {self.calls} times in one "
                "forward pass; layer attribution needs a layer used once (give each "
                "call site its own module)."
            )
        floating = [t for t in self.tensors if t.is_floating_point()]
        if not floating:
            raise TypeError(
                f"The layer {type(self.layer).__name__} outputs no floating tensor "
                f"(dtypes {[str(t.dtype) for t in self.tensors]}); choose a layer whose output is floating "
                "(e.g. the embedding layer, not its integer input)."
            )
        return self.tensors


def _modules_of(forward_func: Callable) -> list[nn.Module]:
    owner = forward_func if isinstance(forward_func, nn.Module) else getattr(forward_func, "__self__", None)
    return list(owner.modules()) if isinstance(owner, nn.Module) else []


def _train_sensitive(forward_func: Callable) -> bool:
    return any(m.training and isinstance(m, TRAIN_SENSITIVE) for m in _modules_of(forward_func))


def modified_gradients(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    rule: Rule | None = None,
    target: Any = None,
    additional_args: tuple[Any, ...] = (),
    baselines: tuple[Tensor, ...] | None = None,
    layer: None | nn.Module | Sequence[nn.Module] = None,
    attribute_to_layer_input: bool = False,
    reference_pass: bool = False,
    op_table: OpTable | None = None,
    grad_kwargs: dict[str, Any] | None = None,
) -> BackendResult:
    r"""Compute :math:`\partial^g S_c(x) / \partial x` with the rule ``rule``.

    Args:
        forward_func (Callable): the model or any callable built from torch ops.
        inputs (tuple of Tensor): formatted inputs (batch first). They are not
            modified; gradients are taken on detached copies. Integer inputs
            are allowed in layer mode (token ids feeding an embedding layer).
        rule (Rule, optional): default :class:`~captum_unified.rules.GradientRule`.
        target: Captum's ``target``.
        additional_args (tuple): formatted ``additional_forward_args``.
        baselines (tuple of Tensor, optional): formatted baselines, batch 1 or
            the inputs' batch. Needed if ``rule.needs_reference`` or
            ``reference_pass``.
        layer (nn.Module or list of nn.Module, optional): take the gradient
            with respect to these layers' outputs (or inputs) instead of the
            inputs.
        attribute_to_layer_input (bool): with ``layer``, use its input.
        reference_pass (bool): run the baseline pass even if the rule does
            not need it (to get :math:`S_c(\bar x)` and the layer's baseline
            activations).
        op_table (OpTable, optional): how ops are classified (default: the
            shipped table).
        grad_kwargs (dict, optional): extra arguments of
            :func:`torch.autograd.grad` (Captum's ``grad_kwargs``).

    Returns:
        :class:`BackendResult`.
    """
    rule = rule or GradientRule()
    table = op_table if op_table is not None else default_op_table()
    layers: list[nn.Module] = [] if layer is None else ([layer] if isinstance(layer, nn.Module) else list(layer))
    batch = inputs[0].shape[0]
    if not layers:
        for k, x in enumerate(inputs):
            if not x.is_floating_point():
                raise TypeError(
                    f"inputs[{k}] has dtype {x.dtype}; gradient methods need floating "
                    "inputs. Attribute to an embedding layer instead (Layer* classes) or "
                    "use a perturbation method."
                )
    with preserve_model_state():
        references = baseline_outputs = baseline_acts = None
        if rule.needs_reference or reference_pass:
            if baselines is None:
                raise ValueError(f"{type(rule).__name__} needs baselines.")
            shared = (
                batch > 1
                and all(b.shape[0] == 1 for b in baselines)
                and not _train_sensitive(forward_func)
                and not any(isinstance(a, Tensor) and a.dim() > 0 and a.shape[0] == batch for a in additional_args)
            )
            ref_inputs = baselines if shared else tuple(b.expand(x.shape) for b, x in zip(baselines, inputs))
            recorder = (
                RuleContext(rule, table, recording=True, leaves=() if layers else ref_inputs)
                if rule.modifies_gradient
                else None
            )
            captures = [
                _LayerCapture(m, attribute_to_layer_input, False, recorder.taint if recorder is not None else None)
                for m in layers
            ]
            try:
                with torch.no_grad(), recorder if recorder is not None else nullcontext():
                    raw = forward_func(*ref_inputs, *additional_args)
            finally:
                for c in captures:
                    c.remove()
            if recorder is not None:
                recorder.release()
            n_ref = ref_inputs[0].shape[0]
            if isinstance(raw, Tensor) and raw.dim() > 0 and raw.shape[0] == n_ref and n_ref != batch:
                raw = raw.expand((batch,) + tuple(raw.shape[1:]))
            baseline_outputs = select_target(raw, target, batch).detach()
            references = recorder.records if recorder is not None else None
            if captures:
                baseline_acts = tuple(t.detach() for c in captures for t in c.result())

        leaves = tuple(x.detach().requires_grad_(True) if x.is_floating_point() and not layers else x for x in inputs)
        context = (
            RuleContext(rule, table, references=references, leaves=() if layers else leaves)
            if rule.modifies_gradient
            else None
        )
        captures = [
            _LayerCapture(m, attribute_to_layer_input, True, context.taint if context is not None else None)
            for m in layers
        ]
        try:
            with ExitStack() as stack:
                stack.enter_context(torch.enable_grad())
                if context is not None:
                    stack.enter_context(context)
                raw = forward_func(*leaves, *additional_args)
                outputs = select_target(raw, target, batch)
        finally:
            for c in captures:
                c.remove()
        if context is not None:
            context.check_complete()
            for msg in context.warnings():
                warn(msg)
        if captures:
            per_layer = [c.result() for c in captures]
            wrt = tuple(t for ts in per_layer for t in ts)
            shapes = tuple((len(ts), c.was_tuple) for ts, c in zip(per_layer, captures))
        else:
            wrt, shapes = leaves, ()
        output_is_rule = context is not None and isinstance(raw, Tensor) and context.is_rule_output(raw)
        if context is not None:
            context.release()
        seed = torch.ones_like(outputs)
        if rule.applies_to_output and not output_is_rule:
            seed = rule.multiplier(lambda t: t, outputs.detach(), outputs.detach(), baseline_outputs, baseline_outputs)
        differentiable = [w for w in wrt if w.requires_grad]
        if outputs.requires_grad and differentiable:
            grads_d = torch.autograd.grad(
                outputs, differentiable, grad_outputs=seed, allow_unused=True, **(grad_kwargs or {})
            )
            it = iter(grads_d)
            grads_or_none = tuple(next(it) if w.requires_grad else None for w in wrt)
        else:
            grads_or_none = (None,) * len(wrt)
        grads = tuple(
            torch.zeros_like(w, dtype=w.dtype if w.is_floating_point() else torch.get_default_dtype())
            if g is None
            else g.detach()
            for g, w in zip(grads_or_none, wrt)
        )
        acts = tuple(t.detach() for t in wrt) if captures else None
        return BackendResult(grads, outputs.detach(), baseline_outputs, acts, baseline_acts, shapes)
