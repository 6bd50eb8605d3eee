r"""Second-order Taylor terms: gradient, Hessian-vector products, the Hessian
diagonal (exact or Hutchinson) and the per-feature decomposition of
Deng et al. (AAAI 2021, "A General Taylor Attribution Framework").

Conventions (Captum's): :math:`\delta = x - \bar x`,
:math:`g = \nabla S_c(x)`, :math:`H = \nabla^2 S_c(x)`; expanding at :math:`x`,

.. math::

    S_c(x) - S_c(\bar x) = g^\top \delta - \tfrac12 \delta^\top H \delta + O(\delta^3).

Per feature :math:`i`:

* first-order term :math:`g_i \delta_i`,
* independent term :math:`-\tfrac12 H_{ii} \delta_i^2`,
* interactive term :math:`-\tfrac12 \sum_{j \ne i} H_{ij} \delta_i \delta_j`.

The feature vector of a sample is the concatenation of all inputs' per-sample
features. Samples are independent: the gradient (or HVP) of the *sum* over the
batch of :math:`S_c` gives every sample's own gradient (HVP), so models that mix
samples (BatchNorm in training mode) are not supported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from captum_unified._utils.call import AttributionCall
from captum_unified._utils.common import (
    expand_additional_args,
    expand_target,
    run_forward,
    sum_per_sample,
    warn,
)

__all__ = [
    "TaylorDecomposition",
    "gradient_and_hvp",
    "batched_hvp",
    "hessian_diagonal",
    "taylor_decomposition",
    "DEFAULT_MAX_ROWS",
]

#: Default bound on the rows (replicated samples) of one batched HVP pass.
DEFAULT_MAX_ROWS = 4096

_ZERO_HESSIAN_MESSAGE = (
    "The second-order Taylor terms are identically zero: the model is piecewise "
    "linear in its input (e.g. a ReLU network, whose Hessian is 0 almost "
    "everywhere). Second-order attribution then equals first-order attribution. "
    "To study the second-order terms of a ReLU network, run it inside "
    "`captum_unified.taylor.softplus_swap(beta)` (Deng et al. replace ReLU by Softplus)."
)


def format_call(
    inputs: Any, baselines: Any = None, target: Any = None, additional_forward_args: Any = None
) -> AttributionCall:
    """The one formatting of a Taylor function's Captum-style arguments
    (:meth:`AttributionCall.format <captum_unified._utils.call.AttributionCall.format>`:
    validation, clear errors, an empty batch refused). Integer or bool inputs
    are treated as real numbers (the expansion needs derivatives). Every public
    function of :mod:`captum_unified.taylor` calls it once and passes the call on."""
    return AttributionCall.format(inputs, baselines, target, additional_forward_args).floating()


def _flat(tensors: Sequence[Tensor], batch: int) -> Tensor:
    """Concatenate per-sample features of all inputs: shape ``(batch, N)``."""
    return torch.cat([t.reshape(batch, -1) for t in tensors], dim=1)


def _split(flat: Tensor, like: Sequence[Tensor]) -> tuple[Tensor, ...]:
    """Inverse of :func:`_flat` for a ``(..., N)`` tensor; leading dims kept."""
    lead = tuple(flat.shape[:-1])
    out, start = [], 0
    for x in like:
        n = x[0].numel()
        out.append(flat[..., start : start + n].reshape(lead + tuple(x.shape[1:])))
        start += n
    return tuple(out)


def _grad_or_zeros(out: Tensor, xs: tuple[Tensor, ...], create_graph: bool) -> tuple[Tensor, ...]:
    if not out.requires_grad:
        return tuple(torch.zeros_like(x) for x in xs)
    grads = torch.autograd.grad(out, xs, create_graph=create_graph, allow_unused=True)
    return tuple(torch.zeros_like(x) if g is None else g for g, x in zip(grads, xs))


def gradient_and_hvp(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    vectors: tuple[Tensor, ...] | None,
    target: Any = None,
    additional_args: tuple[Any, ...] = (),
) -> tuple[Tensor, tuple[Tensor, ...], tuple[Tensor, ...] | None]:
    r"""One forward pass, one gradient and (if ``vectors`` is given) one
    Hessian-vector product per sample, by double backward.

    Args:
        forward_func (Callable): the model.
        inputs (tuple[Tensor, ...]): formatted inputs, batch first (not modified;
            detached copies are differentiated).
        vectors (tuple[Tensor, ...], optional): one vector per sample, same shapes
            as ``inputs``; ``None`` computes the gradient only.
        target: Captum's output selection.
        additional_args (tuple): extra ``forward_func`` arguments.

    Returns:
        ``(outputs, gradients, hvps)``: :math:`S_c(x)` of shape ``(batch,)`` (detached),
        :math:`\nabla S_c(x)` and :math:`\nabla^2 S_c(x)\,v` with the inputs'
        shapes (``hvps`` is ``None`` without ``vectors``).
    """
    xs = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
    with torch.enable_grad():
        out = run_forward(forward_func, xs, target, additional_args)
        grads = _grad_or_zeros(out.sum(), xs, create_graph=vectors is not None)
        hvps = None
        if vectors is not None:
            dot = cast(Tensor, sum((g * v.to(g.dtype)).sum() for g, v in zip(grads, vectors)))
            hvps = _grad_or_zeros(dot, xs, create_graph=False)
    return out.detach(), tuple(g.detach() for g in grads), hvps


def batched_hvp(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    vectors: Callable[[int, int], Tensor],
    n_vectors: int,
    target: Any = None,
    additional_args: tuple[Any, ...] = (),
    max_chunk: int | None = None,
    vectorize: str = "auto",
) -> Tensor:
    r"""Hessian-vector products with many vectors per sample, vectorised.

    Two vectorisations, both exact:

    * ``"vmap"``: one forward pass and one gradient with ``create_graph=True``
      on the batch, then for each chunk of ``k`` vectors one backward pass of the
      gradient vmapped over the vectors
      (``torch.autograd.grad(..., is_grads_batched=True)``).
    * ``"replicate"``: the batch is replicated ``k`` times (rows ``m * batch + b``)
      and one gradient plus one backward of :math:`\sum_{m,b} g_{mb}^\top v_{mb}`
      give all ``k * batch`` products (works for any op, costs a forward pass
      and a gradient of the replicated batch per chunk).

    ``"auto"`` tries ``"vmap"`` and falls back to ``"replicate"`` if an op has
    no batching rule.

    Args:
        forward_func (Callable): the model.
        inputs (tuple[Tensor, ...]): formatted inputs, batch first.
        vectors (Callable): ``vectors(start, stop)`` returns the flat vectors
            ``start..stop-1``, shape ``(stop - start, batch, N)`` where ``N`` is the
            number of features per sample over all inputs.
        n_vectors (int): how many vectors in all.
        target: Captum's output selection.
        additional_args (tuple): extra ``forward_func`` arguments.
        max_chunk (int, optional): at most this many vectors per pass (bounds
            memory: a pass holds ``max_chunk * batch`` vectors and their
            backward). Default: ``DEFAULT_MAX_ROWS // batch``.
        vectorize (str, optional): ``"auto"``, ``"vmap"`` or ``"replicate"``.

    Returns:
        Tensor of shape ``(n_vectors, batch, N)``: :math:`H v` per vector and sample.
    """
    if vectorize not in ("auto", "vmap", "replicate"):
        raise ValueError(f"vectorize must be 'auto', 'vmap' or 'replicate', got {vectorize!r}.")
    batch = inputs[0].shape[0]
    n_feat = sum(x[0].numel() for x in inputs)
    if max_chunk is None:
        max_chunk = max(1, DEFAULT_MAX_ROWS // max(batch, 1))
    if int(max_chunk) < 1:
        raise ValueError(f"max_chunk must be >= 1, got {max_chunk}.")
    chunk = int(max_chunk)
    dtype = inputs[0].dtype if inputs[0].is_floating_point() else torch.get_default_dtype()
    result = torch.empty(n_vectors, batch, n_feat, dtype=dtype, device=inputs[0].device)
    if vectorize in ("auto", "vmap"):
        try:
            _hvp_vmap(forward_func, inputs, vectors, n_vectors, target, additional_args, chunk, result)
            return result
        except RuntimeError:
            if vectorize == "vmap":
                raise
    for start in range(0, n_vectors, chunk):
        stop = min(start + chunk, n_vectors)
        k = stop - start
        rep = tuple(
            x.detach().unsqueeze(0).expand((k,) + tuple(x.shape)).reshape((k * batch,) + tuple(x.shape[1:]))
            for x in inputs
        )
        v = vectors(start, stop).reshape(k * batch, n_feat)
        vecs = _split(v, inputs)
        _, _, hv = gradient_and_hvp(
            forward_func,
            rep,
            vecs,
            expand_target(target, k) if k > 1 else target,
            expand_additional_args(additional_args, k) if k > 1 else additional_args,
        )
        assert hv is not None  # vectors given
        result[start:stop] = _flat(hv, k * batch).reshape(k, batch, n_feat)
    return result


def _hvp_vmap(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    vectors: Callable[[int, int], Tensor],
    n_vectors: int,
    target: Any,
    additional_args: tuple[Any, ...],
    chunk: int,
    result: Tensor,
) -> None:
    batch = inputs[0].shape[0]
    xs = tuple(x.detach().clone().requires_grad_(True) for x in inputs)
    with torch.enable_grad():
        out = run_forward(forward_func, xs, target, additional_args)
        grads = _grad_or_zeros(out.sum(), xs, create_graph=True)
        live = [k for k, g in enumerate(grads) if g.requires_grad]
        for start in range(0, n_vectors, chunk):
            stop = min(start + chunk, n_vectors)
            k = stop - start
            if not live:
                result[start:stop] = 0
                continue
            vecs = _split(vectors(start, stop), inputs)  # each (k, batch, *shape)
            hv = torch.autograd.grad(
                [grads[i] for i in live],
                xs,
                grad_outputs=[vecs[i].to(grads[i].dtype) for i in live],
                retain_graph=stop < n_vectors,
                is_grads_batched=True,
                allow_unused=True,
            )
            hv = tuple(
                torch.zeros((k,) + tuple(x.shape), dtype=x.dtype, device=x.device) if h is None else h
                for h, x in zip(hv, xs)
            )
            result[start:stop] = torch.cat([h.reshape(k, batch, -1) for h in hv], dim=2)


def hessian_diagonal(
    forward_func: Callable,
    inputs: tuple[Tensor, ...],
    target: Any = None,
    additional_args: tuple[Any, ...] = (),
    method: str = "exact",
    n_samples: int = 64,
    seed: int | None = None,
    max_chunk: int | None = None,
    vectorize: str = "auto",
) -> Tensor:
    r"""Diagonal of the input Hessian :math:`H_{ii} = \partial^2 S_c / \partial x_i^2`
    per sample, shape ``(batch, N)`` (features of all inputs concatenated).

    * ``"exact"``: :math:`H_{ii} = e_i^\top H e_i`, one HVP per feature with the
      unit vector :math:`e_i`, ``max_chunk`` features per vectorised pass.
    * ``"hutchinson"``: the unbiased estimate
      :math:`\mathrm{diag}(H) \approx \frac1K \sum_k v_k \odot H v_k` with
      Rademacher :math:`v_k` (``K = n_samples``, drawn from a generator seeded
      with ``seed``); its variance is :math:`\frac1K \sum_{j \ne i} H_{ij}^2`.

    Args:
        forward_func (Callable): the model.
        inputs (tuple[Tensor, ...]): formatted inputs, batch first.
        target: Captum's output selection.
        additional_args (tuple): extra ``forward_func`` arguments.
        method (str): ``"exact"`` or ``"hutchinson"``. Default: ``"exact"``.
        n_samples (int): Rademacher vectors for ``"hutchinson"``. Default: 64.
        seed (int, optional): seed of the Rademacher generator (the global RNG
            is not touched). Default: a fresh nondeterministic seed.
        max_chunk (int, optional): vectors per vectorised pass, see
            :func:`batched_hvp`.
        vectorize (str, optional): ``"auto"``, ``"vmap"`` or ``"replicate"``,
            see :func:`batched_hvp`.

    Returns:
        Tensor ``(batch, N)``.
    """
    batch = inputs[0].shape[0]
    n_feat = sum(x[0].numel() for x in inputs)
    dtype = inputs[0].dtype if inputs[0].is_floating_point() else torch.get_default_dtype()
    device = inputs[0].device
    if method == "exact":

        def unit(start: int, stop: int) -> Tensor:
            k = stop - start
            v = torch.zeros(k, batch, n_feat, dtype=dtype, device=device)
            idx = torch.arange(start, stop, device=device)
            v[torch.arange(k, device=device), :, idx] = 1.0
            return v

        hv = batched_hvp(forward_func, inputs, unit, n_feat, target, additional_args, max_chunk, vectorize)
        idx = torch.arange(n_feat, device=device)
        return hv[idx, :, idx].t().contiguous()
    if method == "hutchinson":
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
        gen = torch.Generator(device="cpu")
        if seed is None:
            gen.seed()
        else:
            gen.manual_seed(int(seed))
        signs = (torch.randint(0, 2, (int(n_samples), batch, n_feat), generator=gen) * 2 - 1).to(
            dtype=dtype, device=device
        )
        hv = batched_hvp(
            forward_func, inputs, lambda s, e: signs[s:e], int(n_samples), target, additional_args, max_chunk, vectorize
        )
        return (signs * hv).mean(dim=0)
    raise ValueError(f"hessian_diagonal must be 'exact' or 'hutchinson', got {method!r}.")


_hessian_diagonal_fn = hessian_diagonal


@dataclass
class TaylorDecomposition:
    r"""The second-order Taylor terms of every feature (Deng et al. 2021).

    Tensor fields have the inputs' shapes and tuple-ness.

    Attributes:
        first_order: :math:`g_i \delta_i`.
        independent: :math:`-\tfrac12 H_{ii} \delta_i^2`.
        interactive: :math:`-\tfrac12 \sum_{j \ne i} H_{ij} \delta_i \delta_j`.
        error: per sample ``(batch,)``,
            :math:`\epsilon = (S_c(x) - S_c(\bar x)) - \sum_i a_i` with
            :math:`a_i` the sum of the three terms.
        hessian_diagonal: :math:`H_{ii}`, inputs' shapes (exact or estimated).
        output_difference: :math:`S_c(x) - S_c(\bar x)` per sample.
    """

    first_order: Tensor | tuple[Tensor, ...]
    independent: Tensor | tuple[Tensor, ...]
    interactive: Tensor | tuple[Tensor, ...]
    error: Tensor
    hessian_diagonal: Tensor | tuple[Tensor, ...]
    output_difference: Tensor

    def _combine(self, *fields: Tensor | tuple[Tensor, ...]) -> Tensor | tuple[Tensor, ...]:
        if isinstance(fields[0], Tensor):
            return sum(fields[1:], fields[0])
        return tuple(sum(parts[1:], parts[0]) for parts in zip(*fields))

    @property
    def attribution(self) -> Tensor | tuple[Tensor, ...]:
        r"""Second-order Taylor attribution :math:`g_i\delta_i - \tfrac12 \delta_i (H\delta)_i`
        (first + independent + interactive), equal to the Integrated Gradients
        reformulation (Theorem 5)."""
        return self._combine(self.first_order, self.independent, self.interactive)


def _warn_if_zero(hvps: tuple[Tensor, ...], delta: tuple[Tensor, ...]) -> None:
    if all(bool((d == 0).all()) for d in delta):
        return
    if all(bool((h == 0).all()) for h in hvps):
        warn(_ZERO_HESSIAN_MESSAGE)


def taylor_decomposition(
    forward_func: Callable,
    inputs: Tensor | tuple[Tensor, ...],
    baselines: Any = None,
    target: Any = None,
    additional_forward_args: Any = None,
    hessian_diagonal: str = "exact",
    n_samples: int = 64,
    seed: int | None = None,
    max_chunk: int | None = None,
) -> TaylorDecomposition:
    r"""Second-order Taylor decomposition of :math:`S_c(x) - S_c(\bar x)` into
    per-feature first-order, independent and interactive terms.

    With :math:`\delta = x - \bar x`, :math:`g = \nabla S_c(x)`,
    :math:`H = \nabla^2 S_c(x)` (Captum's sign convention, expansion at :math:`x`):

    .. math::

        a_i = \underbrace{g_i\delta_i}_{\text{first order}}
              \underbrace{- \tfrac12 H_{ii}\delta_i^2}_{\text{independent}}
              \underbrace{- \tfrac12 \textstyle\sum_{j\ne i} H_{ij}\delta_i\delta_j}_{\text{interactive}},
        \qquad \epsilon = S_c(x) - S_c(\bar x) - \textstyle\sum_i a_i .

    Cost: one gradient and one HVP (:math:`H\delta`) for the total, plus the
    Hessian diagonal (``N`` batched HVPs exact, ``n_samples`` with Hutchinson)
    for the split into independent and interactive terms. No ``N × N`` Hessian is
    formed.

    Args:
        forward_func (Callable): the model or any function built from torch ops.
        inputs (Tensor or tuple[Tensor, ...]): inputs, batch first.
        baselines (scalar, Tensor, tuple, optional): :math:`\bar x` (Captum's
            forms). Default: zeros.
        target (int, tuple, Tensor, list, optional): Captum's output selection.
        additional_forward_args (Any, optional): extra ``forward_func`` args.
        hessian_diagonal (str, optional): ``"exact"`` or ``"hutchinson"``.
            Default: ``"exact"``.
        n_samples (int, optional): Rademacher vectors for Hutchinson. Default: 64.
        seed (int, optional): Hutchinson seed. Default: None.
        max_chunk (int, optional): HVP vectors per vectorised pass.

    Returns:
        :class:`TaylorDecomposition`.

    Warns:
        AttributionWarning: if the second-order terms are identically zero
        (ReLU network); use :func:`~captum_unified.taylor.softplus_swap`.
    """
    call = format_call(inputs, baselines, target, additional_forward_args)
    return _decompose(forward_func, call, hessian_diagonal, n_samples, seed, max_chunk)


def _decompose(
    forward_func: Callable,
    call: AttributionCall,
    hessian_diagonal: str = "exact",
    n_samples: int = 64,
    seed: int | None = None,
    max_chunk: int | None = None,
) -> TaylorDecomposition:
    """:func:`taylor_decomposition` of a formatted call."""
    fmt, target, args = call.inputs, call.target, call.additional_args
    delta = tuple(d.detach() for d in call.deltas)
    out, grads, hvps = gradient_and_hvp(forward_func, fmt, delta, target, args)
    assert hvps is not None  # vectors given
    _warn_if_zero(hvps, delta)
    diag_flat = _hessian_diagonal_fn(forward_func, fmt, target, args, hessian_diagonal, n_samples, seed, max_chunk)
    diag = _split(diag_flat, fmt)
    first = tuple(g * d for g, d in zip(grads, delta))
    indep = tuple(-0.5 * h * d * d for h, d in zip(diag, delta))
    total2 = tuple(-0.5 * d * hv for d, hv in zip(delta, hvps))
    inter = tuple(t - i for t, i in zip(total2, indep))
    diff = out - call.baseline_forward(forward_func)
    error = diff - sum_per_sample(first) - sum_per_sample(total2)
    return TaylorDecomposition(
        first_order=call.output(first),
        independent=call.output(indep),
        interactive=call.output(inter),
        error=error.detach(),
        hessian_diagonal=call.output(diag),
        output_difference=diff.detach(),
    )
