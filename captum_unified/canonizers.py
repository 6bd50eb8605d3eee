r"""Canonizers: modules reached as the fused op they compute.

Hugging Face ships its activations and norms as modules that spell the math out
op by op: GPT-2's ``NewGELUActivation`` is ``0.5 * x * (1 + tanh(...))`` and
LLaMA's ``LlamaRMSNorm`` is ``x * rsqrt(mean(x^2) + eps)``. The backend then
applies its rules to every op of the spelled-out formula (a product, a
``tanh``, an ``rsqrt``), which is exact for DeepLIFT but not what epsilon-LRP's
published rules mean: LRP treats GELU as one element-wise nonlinearity and an
RMS norm's scale as a constant (Ali et al., ICML 2022; Achtibat et al., ICML
2024). Inside :func:`canonize` such a module computes the fused torch op
instead (``F.gelu(x, approximate="tanh")``, ``F.rms_norm``), whose rule the
backend knows; the model's function is the same (tested for every row).
Zennit calls these *canonizers*.

.. list-table:: :data:`MODULE_MAP` (first matching row wins: exact class names, then patterns in order)
   :header-rows: 1

   * - module class (name or pattern)
     - computed as
   * - ``NewGELUActivation``, ``GELUTanh``, ``FastGELUActivation`` (transformers)
     - :func:`gelu_tanh`: ``F.gelu(x, approximate="tanh")``
   * - ``GELUActivation`` (transformers)
     - :func:`gelu_erf`: ``F.gelu(x)``
   * - ``Gemma*RMSNorm`` (transformers)
     - :func:`rms_norm_one_plus_weight`: ``F.rms_norm(x) * (1 + weight)``
   * - ``*RMSNorm`` (``LlamaRMSNorm``, ``MistralRMSNorm``, ``Qwen2RMSNorm``, ...), ``*T5LayerNorm``
     - :func:`rms_norm`: ``weight * F.rms_norm(x)``

:data:`BACKEND_MAP`, applied inside every pass of the backend
(:class:`PassCanonizer`), has the GELU rows and two RMS norm rows,
:func:`rms_norm_one_plus_weight_in_float32` (``Gemma*RMSNorm``) and
:func:`rms_norm_in_float32` (``*RMSNorm``), which compute as ``GemmaRMSNorm``
and ``LlamaRMSNorm`` do (in float32 whatever the input's dtype, operation for
operation) as one normalisation for the rules, and are applied only where the
probe reproduces the module to 1e-12 (any other ``*RMSNorm`` keeps its ops,
silently).

Adding one is one line in :data:`MODULE_MAP`: the class name (or an
:mod:`fnmatch` pattern) and a function ``(module, x) -> Tensor`` computing what
the module's ``forward`` computes; ``tests/canonizers/test_canonizers.py`` checks every row
against the module's own forward.

Keys are class names, not classes, so that ``import captum_unified`` does not
import transformers (or timm). A pattern such as ``*RMSNorm`` reaches the many
copies transformers generates from ``LlamaRMSNorm`` (about 180 models); since a
name says nothing certain about the math, every matched module is checked when
the context opens: its own ``forward`` and the row's function run on a small
fixed probe (two rows, one at a scale where the norm's ``eps`` matters, one
where GELU's ``tanh`` and ``erf`` forms differ), without its hooks, and a module
whose results differ (relative 1e-5: float32 rounding inside the module passes,
a different formula does not) is left as it is, with an
:class:`~captum_unified.AttributionWarning` naming it.

Precision: transformers' norms compute in float32 also for float64 inputs (their
upcast is meant for half precision). :data:`MODULE_MAP`'s fused op computes in
the input's precision, float32 at least, so inside :func:`canonize` a float64
model stays float64 throughout; in float32 the two agree to float32 rounding.
:data:`BACKEND_MAP`'s row computes as the module does, so that DeepLIFT is
complete against the model as shipped.
"""

from __future__ import annotations

import fnmatch
import math
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.module import register_module_forward_pre_hook
from torch.overrides import handle_torch_function, has_torch_function_unary
from torch.utils.hooks import RemovableHandle

from captum_unified._utils.common import warn

__all__ = [
    "BACKEND_MAP",
    "MODULE_MAP",
    "PassCanonizer",
    "Fused",
    "canonize",
    "canonical_op",
    "gelu_tanh",
    "gelu_erf",
    "rms_norm",
    "rms_norm_one_plus_weight",
    "rms_norm_in_float32",
    "rms_norm_float32",
    "rms_in_float32",
    "rms_norm_one_plus_weight_in_float32",
    "rms_norm_one_plus_weight_float32",
    "gemma_rms_in_float32",
]

#: ``(module, x) -> Tensor``: what the module's forward computes, as fused torch ops.
Fused = Callable[[nn.Module, Tensor], Tensor]

#: the probe's tolerance, relative to its largest output (see the module docstring)
PROBE_RTOL = 1e-5
#: the tolerance for rows marked ``exact_only`` (applied only where they reproduce the module)
EXACT_RTOL = 1e-12


def gelu_tanh(module: nn.Module, x: Tensor) -> Tensor:
    r"""``F.gelu(x, approximate="tanh")``:
    :math:`\tfrac12 x (1 + \tanh(\sqrt{2/\pi}(x + 0.044715 x^3)))`."""
    return F.gelu(x, approximate="tanh")


def gelu_erf(module: nn.Module, x: Tensor) -> Tensor:
    r"""``F.gelu(x)``: :math:`\tfrac12 x (1 + \mathrm{erf}(x / \sqrt 2))`."""
    return F.gelu(x)


def _eps(module: nn.Module) -> float:
    for name in ("variance_epsilon", "eps", "epsilon"):
        value = getattr(module, name, None)
        if isinstance(value, (int, float)):
            return float(value)
    raise AttributeError(f"{type(module).__name__} has no variance_epsilon / eps attribute")


def _normalised(module: nn.Module, x: Tensor) -> Tensor:
    """``F.rms_norm`` over the last dimension, in the input's precision (float32 at least)."""
    up = x if x.dtype in (torch.float32, torch.float64) else x.float()
    return F.rms_norm(up, x.shape[-1:], None, _eps(module))


def rms_norm(module: nn.Module, x: Tensor) -> Tensor:
    r"""``weight * F.rms_norm(x, eps)``: :math:`w \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon}`
    (LLaMA and T5 style: normalise, cast back to the input's dtype, scale; no
    weight if the module has none)."""
    y = _normalised(module, x).to(x.dtype)
    weight = getattr(module, "weight", None)
    return y if weight is None else weight * y


def rms_norm_one_plus_weight(module: nn.Module, x: Tensor) -> Tensor:
    r"""``F.rms_norm(x, eps) * (1 + weight)`` (Gemma style: the weight is stored
    as an offset from 1; scaled before the cast back)."""
    y = _normalised(module, x)
    weight = cast(Tensor, module.weight)
    return (y * (1.0 + weight.to(y.dtype))).to(x.dtype)


def _normalised_float32(t: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """``t`` cast to float32, times ``rsqrt(mean(t ** 2) + eps)`` (float32 out)."""
    up = t.to(torch.float32)
    return up * torch.rsqrt(up.pow(2).mean(dims, keepdim=True) + eps)


def rms_in_float32(t: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """transformers' RMS norm arithmetic: cast to float32, ``t * rsqrt(mean(t ** 2) + eps)``, cast back."""
    return _normalised_float32(t, dims, eps).to(t.dtype)


def rms_norm_float32(x: Tensor, normalized_shape: Sequence[int], eps: float) -> Tensor:
    r""":math:`x / \sqrt{\mathrm{mean}(x^2) + \epsilon}` over the last
    ``len(normalized_shape)`` dimensions, computed as transformers' RMS norms
    (``LlamaRMSNorm`` and the classes copied from it) compute it: in float32
    whatever ``x``'s dtype, returned in ``x``'s dtype (no weight).

    Inside the backend's mode it is one normalisation of ``x`` with the rule's
    norm policy, whose multipliers are computed from ``x`` and the output as
    they are: a float64 model stays exact (the float32 rounding inside is
    part of the output's change the policy accounts for; op by op, the cast
    to float32 and the float32 gradients of the region cost about
    :math:`10^{-8}` relative). The backend's module map computes those
    modules with it (:data:`~captum_unified.canonizers.BACKEND_MAP`)."""
    if has_torch_function_unary(x):
        return handle_torch_function(rms_norm_float32, (x,), x, normalized_shape, eps)
    dims = tuple(range(-len(normalized_shape), 0))
    return rms_in_float32(x, dims, float(eps))


def rms_norm_in_float32(module: nn.Module, x: Tensor) -> Tensor:
    r"""``weight * rms_norm_float32(x, eps)``: what ``LlamaRMSNorm`` (and the
    transformers classes copied from it, and Meta's reference ``RMSNorm``)
    computes, operation for operation: normalise in float32 whatever ``x``'s
    dtype, cast back, scale. One normalisation of ``x`` for the backend
    (:func:`rms_norm_float32`), so a float64 model
    stays exact. Applied only where the probe reproduces the module to 1e-12
    (``exact_only``); any other ``*RMSNorm`` is silently left to its own ops."""
    y = rms_norm_float32(x, x.shape[-1:], _eps(module))
    weight = getattr(module, "weight", None)
    return y if weight is None else weight * y


rms_norm_in_float32.exact_only = True  # type: ignore[attr-defined]


def gemma_rms_in_float32(t: Tensor, weight: Tensor, dims: tuple[int, ...], eps: float) -> Tensor:
    """Gemma's RMS norm arithmetic: cast to float32, normalise, scale by ``1 + weight`` in float32, cast back."""
    return (_normalised_float32(t, dims, eps) * (1.0 + weight.float())).type_as(t)


def rms_norm_one_plus_weight_float32(x: Tensor, weight: Tensor, eps: float) -> Tensor:
    r""":math:`(1 + w) \odot x / \sqrt{\mathrm{mean}(x^2) + \epsilon}` over the last
    dimension, computed as transformers' Gemma RMS norms compute it: in
    float32 whatever ``x``'s dtype, the scale applied before the cast back.
    Inside the backend's mode it is one normalisation of ``x`` (the scale a
    constant after it), as :func:`rms_norm_float32`."""
    if has_torch_function_unary(x):
        return handle_torch_function(rms_norm_one_plus_weight_float32, (x,), x, weight, eps)
    return gemma_rms_in_float32(x, weight, (-1,), float(eps))


def rms_norm_one_plus_weight_in_float32(module: nn.Module, x: Tensor) -> Tensor:
    r"""What ``GemmaRMSNorm`` (and its copies) computes, operation for
    operation (:func:`rms_norm_one_plus_weight_float32`). Applied only where
    the probe reproduces the module to 1e-12 (``exact_only``)."""
    return rms_norm_one_plus_weight_float32(x, cast(Tensor, module.weight), _eps(module))


rms_norm_one_plus_weight_in_float32.exact_only = True  # type: ignore[attr-defined]

_GELUS: dict[str, Fused] = {
    "NewGELUActivation": gelu_tanh,
    "GELUTanh": gelu_tanh,
    "FastGELUActivation": gelu_tanh,
    "GELUActivation": gelu_erf,
}

#: The rows the backend applies by itself inside its mode (every
#: :class:`~captum_unified.RuleContext`, so every attribution of the package):
#: module classes whose fused op computes the module's function to rounding in
#: the input's precision, and the RMS norms that compute as ``GemmaRMSNorm`` or
#: ``LlamaRMSNorm`` do (exactly, else left alone). Read-only; exact names
#: first, then patterns in order.
BACKEND_MAP: Mapping[str, Fused] = MappingProxyType(
    {**_GELUS, "Gemma*RMSNorm": rms_norm_one_plus_weight_in_float32, "*RMSNorm": rms_norm_in_float32}
)

#: module class name (or :mod:`fnmatch` pattern) -> what it computes as fused
#: ops: the GELU rows of :data:`BACKEND_MAP` and the RMS norms in the input's
#: precision, for :func:`canonize`. Read-only; exact names are looked up first,
#: then patterns in this order.
MODULE_MAP: Mapping[str, Fused] = MappingProxyType(
    {
        **_GELUS,
        "Gemma*RMSNorm": rms_norm_one_plus_weight,
        "*RMSNorm": rms_norm,
        "*T5LayerNorm": rms_norm,
    }
)


def canonical_op(module: nn.Module, module_map: Mapping[str, Fused] = MODULE_MAP) -> Fused | None:
    """The row of ``module_map`` for ``module``'s class, or None."""
    name = type(module).__name__
    if name in module_map:
        return module_map[name]
    for pattern, fused in module_map.items():
        if any(c in pattern for c in "*?[") and fnmatch.fnmatchcase(name, pattern):
            return fused
    return None


class _CanonicalForward:
    """What a canonized module's ``forward`` is inside :func:`canonize`."""

    __slots__ = ("module", "fused")

    def __init__(self, module: nn.Module, fused: Fused) -> None:
        self.module = module
        self.fused = fused

    def __call__(self, *args: Tensor, **kwargs: Tensor) -> Tensor:
        if len(args) + len(kwargs) != 1:
            raise TypeError(
                f"{type(self.module).__name__} is canonized to {self.fused.__name__}, which takes one tensor; "
                f"it was called with {len(args)} positional and {len(kwargs)} keyword arguments."
            )
        return self.fused(self.module, args[0] if args else next(iter(kwargs.values())))


def _probe(module: nn.Module) -> Tensor:
    """Two fixed rows: one at scale 0.01 (where an RMS norm's ``eps`` matters),
    one spanning about [-2.5, 3.5] (where GELU's forms differ); float64, on the
    module's device. No random numbers (the global generator stays as it is)."""
    weight = getattr(module, "weight", None)
    width = weight.shape[-1] if isinstance(weight, Tensor) and weight.dim() >= 1 else 8
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    base = torch.sin(torch.arange(width, dtype=torch.float64, device=device) * 1.7 + 0.3)
    return torch.stack([0.01 * base, 3.0 * base + 0.5])


def _mismatch(module: nn.Module, fused: Fused) -> str | None:
    """None if ``fused`` computes what the module's own forward does on the
    probe; otherwise why not. The module's class ``forward`` is called directly
    (its hooks do not run)."""
    try:
        with torch.no_grad():
            x = _probe(module)
            own = type(module).forward(module, x)
            new = fused(module, x)
    except Exception as exc:  # a forward that needs more than one tensor, a meta device, ...
        return f"the probe failed ({type(exc).__name__}: {exc})"
    if not isinstance(own, Tensor) or own.shape != new.shape:
        return "its forward returns something else than one tensor of the input's shape"
    err = (own.double() - new.double()).abs().max().item()
    scale = own.double().abs().max().item()
    rtol = EXACT_RTOL if getattr(fused, "exact_only", False) else PROBE_RTOL
    if not math.isfinite(err) or err > rtol * max(scale, 1e-30):
        return f"its forward differs from the row's function by {err:.2g} (largest output {scale:.2g})"
    return None


@contextmanager
def canonize(model: nn.Module, module_map: Mapping[str, Fused] = MODULE_MAP) -> Iterator[dict[str, str]]:
    r"""Inside the block, every submodule of ``model`` whose class is in
    ``module_map`` computes the row's fused op (``F.gelu``, ``F.rms_norm``)
    instead of its own op-by-op forward.

    Only the module's ``forward`` attribute changes (an instance attribute
    shadows the class's method; its forward hooks, pre-hooks, parameters,
    buffers and state dict are untouched and still run). On exit, also when the
    block raises, each module's ``__dict__`` is as before. Nested blocks are
    free: a module already canonized is left to the outer block. A module whose
    ``forward`` was already replaced on the instance (accelerate's device
    hooks, a user's wrapper) is left as it is, with a warning.

    Args:
        model (torch.nn.Module): the model (or any module holding it, such as
            Captum's LLM forward wrapper or an inseq model).
        module_map (Mapping[str, Fused], optional): class name or pattern ->
            fused function. Default: :data:`MODULE_MAP`.

    Yields:
        dict[str, str]: qualified module name -> the fused function's name, for
        the modules canonized by this block.

    Example::

        >>> from captum_unified.canonizers import canonize
        >>> with canonize(model):
        ...     attr = cu.LayerEpsilonLRP(model, model.transformer.wte, products="gate").attribute(ids, target=t)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(
            f"canonize needs the torch.nn.Module whose submodules it canonizes, got {type(model).__name__}; "
            "pass the model itself (not a function that calls it)."
        )
    changed: list[nn.Module] = []
    done: dict[str, str] = {}
    try:
        for name, module in model.named_modules():
            fused = canonical_op(module, module_map)
            own = module.__dict__.get("forward")
            if fused is None or isinstance(own, _CanonicalForward):
                continue
            # a forward set on the instance (accelerate's device hooks, a user's
            # wrapper) may do more than the class's math: keep it
            why = "its forward was replaced on the instance" if own is not None else _mismatch(module, fused)
            if why is not None:
                warn(
                    f"canonize: module {name or '(the model)'} ({type(module).__name__}) matches the module map's "
                    f"row for {fused.__name__} but {why}; it is left as it is (the backend sees its ops one by one). "
                    "Add an exact row for its class to the module map."
                )
                continue
            module.__dict__["forward"] = _CanonicalForward(module, fused)
            changed.append(module)
            done[name] = fused.__name__
        yield done
    finally:
        for module in changed:
            del module.__dict__["forward"]


class PassCanonizer:
    """The canonizers of one pass of the backend's mode: while the pass runs,
    the modules it calls that match ``module_map`` compute the row's fused op.

    :class:`~captum_unified.RuleContext` opens it when the mode is entered and
    closes it when the mode is left (also when the pass raises). While open,
    one global forward pre-hook (torch's
    :func:`~torch.nn.modules.module.register_module_forward_pre_hook`) sees
    every module call of this thread: the first call of a module not met
    before canonizes the matching modules below it, as :func:`canonize` does
    (an instance ``forward`` that shadows the class's, after the same probe).
    A module's own forward is already under way when its hook runs, so a
    matching module is reached through a module called before it (its parent)
    -- in a model, always. Closing removes the hook and every instance
    ``forward`` set, so the model and torch are as before.

    Args:
        module_map (Mapping[str, Fused]): class name or pattern -> fused
            function (the backend uses :data:`BACKEND_MAP`).
        note (Callable[[str, str], None]): receives ``(module name, message)``
            for a matching module left as it is (the context's report).
    """

    def __init__(self, module_map: Mapping[str, Fused], note: Callable[[str, str], None]) -> None:
        self.module_map = module_map
        self.note = note
        self.canonized: dict[str, str] = {}  # qualified name -> fused function's name, this pass
        self._seen: set[int] = set()
        self._rows: dict[type, Fused | None] = {}  # module class -> its row (looked up once per class)
        self._changed: list[nn.Module] = []
        self._handle: RemovableHandle | None = None
        self._thread = 0

    def open(self) -> None:
        """Start canonizing the modules this thread calls."""
        if self._handle is None and self.module_map:
            self._thread = threading.get_ident()
            self._handle = register_module_forward_pre_hook(self._pre_hook)

    def close(self) -> None:
        """Remove the hook and every instance ``forward`` this pass set."""
        handle, self._handle = self._handle, None
        try:
            if handle is not None:
                handle.remove()
        finally:
            for module in self._changed:
                if isinstance(module.__dict__.get("forward"), _CanonicalForward):
                    del module.__dict__["forward"]
            self._changed.clear()
            self._seen.clear()

    def _pre_hook(self, module: nn.Module, args: object) -> None:
        if id(module) in self._seen or threading.get_ident() != self._thread:
            return None
        for name, sub in module.named_modules():
            if id(sub) in self._seen:
                continue
            self._seen.add(id(sub))
            if sub is module:
                continue  # its forward is already under way
            cls = type(sub)
            if cls not in self._rows:
                self._rows[cls] = canonical_op(sub, self.module_map)
            fused = self._rows[cls]
            own = sub.__dict__.get("forward")
            if fused is None or isinstance(own, _CanonicalForward):
                continue
            why = "its forward was replaced on the instance" if own is not None else _mismatch(sub, fused)
            if why is not None and getattr(fused, "exact_only", False):
                continue  # a row for the modules it reproduces exactly: the others keep their own ops, silently
            if why is not None:
                self.note(
                    name,
                    f"Module {name} ({type(sub).__name__}) matches the backend's module map (row "
                    f"{fused.__name__}) but {why}; it is left as it is (the backend sees its ops one by one).",
                )
                continue
            sub.__dict__["forward"] = _CanonicalForward(sub, fused)
            self._changed.append(sub)
            self.canonized[name] = fused.__name__
        return None
