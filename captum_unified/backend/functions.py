r"""The autograd functions through which the backend applies a rule.

Each computes an op's ordinary forward value and saves what the rule says its
backward pass multiplies by:

* :class:`ElementwiseRule` -- ``out = f(z)``, backward ``grad * g(z)``;
* :class:`BilinearRule` -- a product of two factors, backward by the product
  policy's partners (closed form for ``mul`` and ``matmul``);
* :class:`MaxRule` / :class:`MaxPoolRule` -- DeepLIFT's max rule;
* :class:`VectorRule` -- a vector op (a normalisation, ``logsumexp``) whose
  value the caller computed and whose backward a rule's policy gives.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

__all__ = ["ElementwiseRule", "BilinearRule", "MaxRule", "MaxPoolRule", "VectorRule"]


def _fresh(out: Tensor, *inputs: Tensor) -> Tensor:
    """``out`` as a tensor of its own: an autograd function whose output is a
    view (``squeeze``, torch's 1-d pooling) or one of its inputs cannot be
    written in place afterwards (``nn.ReLU(inplace=True)`` after max-pooling)."""
    if out._base is not None or any(out is t for t in inputs):
        return out.clone()
    return out


class ElementwiseRule(torch.autograd.Function):
    """``out = f(z)``; backward multiplies by the rule's ``g(z)`` (computed
    in the forward pass, the only tensor saved)."""

    @staticmethod
    def forward(ctx, z, f, g_of):
        out = f(z)
        g = g_of(z, out)
        ctx.save_for_backward(g)
        return _fresh(out, z)

    @staticmethod
    def backward(ctx, grad_out):
        (g,) = ctx.saved_tensors
        return grad_out * g, None, None


class BilinearRule(torch.autograd.Function):
    """``out = fn(a, b)`` for a bilinear ``fn``; backward takes
    ``d fn(a, b_) / da`` and ``d fn(a_, b) / db`` (the product policy)."""

    @staticmethod
    def forward(ctx, a, b, fn, a_, b_, closed):
        ctx.fn, ctx.closed = fn, closed
        ctx.a_meta = (a.shape, a.dtype, a.device)
        ctx.b_meta = (b.shape, b.dtype, b.device)
        ctx.has = (a_ is not None, b_ is not None)
        ctx.save_for_backward(a_ if a_ is not None else a.new_empty(0), b_ if b_ is not None else b.new_empty(0))
        return _fresh(fn(a, b), a, b)

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


class MaxRule(torch.autograd.Function):
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
        return _fresh(y.squeeze(-1), v)

    @staticmethod
    def backward(ctx, grad):
        (m,) = ctx.saved_tensors
        return grad.unsqueeze(-1) * m, None, None, None


class MaxPoolRule(torch.autograd.Function):
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
        return _fresh(y, x)

    @staticmethod
    def backward(ctx, grad):
        i_f, j_f, m_i, m_j = ctx.saved_tensors
        shape = ctx.in_shape
        gf = grad.flatten(2)
        gin = gf.new_zeros(shape[0], shape[1], math.prod(shape[2:]))
        gin.scatter_add_(2, i_f, gf * m_i).scatter_add_(2, j_f, gf * m_j)
        return gin.view(shape), None, None, None, None, None


class VectorRule(torch.autograd.Function):
    """``y = compute(x)`` (a vector op: a normalisation, ``logsumexp``);
    backward ``backward(grad)``, the map ``make_backward(y)`` returns: the
    rule's policy, built from the input and baseline passes (e.g.
    :math:`g \\mapsto M^\\top g`)."""

    @staticmethod
    def forward(ctx, x, compute, make_backward):
        y = compute(x)
        ctx.backward_map = make_backward(y)
        return _fresh(y, x)

    @staticmethod
    def backward(ctx, grad):
        return ctx.backward_map(grad), None, None
