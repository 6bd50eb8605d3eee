r"""Recurrent networks: the fused ``torch.lstm`` / ``gru`` / ``rnn_tanh`` /
``rnn_relu`` (multi-layer, bidirectional, ``batch_first``, projections,
packed sequences) and the cells, stepped by hand: gates are sigmoids and
tanhs, their combinations products, each with the rule. ``torch.lstm`` also
has a fused kernel (:func:`captum_unified.ops.fused.fused_lstm`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_unified.ops.calls import arg, functions
from captum_unified.ops.fused import fused_lstm
from captum_unified.ops.rows import CompositeOp
from captum_unified.ops.table import NOT_DECOMPOSED

__all__ = ["lstm_cell", "gru_cell", "rnn_cell", "ROWS"]


def lstm_cell(
    x_proj: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor | None, w_hr: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """One LSTM step from the input projection ``x W_ih^T + b_ih``."""
    gates = x_proj + F.linear(h, w_hh, b_hh)
    i, f, g, o = gates.chunk(4, -1)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    h = o * torch.tanh(c)
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, c


def gru_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None) -> Tensor:
    """One GRU step (torch's formulation: ``n = tanh(x_n + r * (W_hn h + b_hn))``)."""
    hp = F.linear(h, w_hh, b_hh)
    xr, xz, xn = x_proj.chunk(3, -1)
    hr, hz, hn = hp.chunk(3, -1)
    r = torch.sigmoid(xr + hr)
    z = torch.sigmoid(xz + hz)
    n = torch.tanh(xn + r * hn)
    return (1 - z) * n + z * h


def rnn_cell(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor | None, act: Callable) -> Tensor:
    return act(x_proj + F.linear(h, w_hh, b_hh))


def _step(kind: str, proj: Tensor, h: Tensor, c: Tensor | None, w_hh, b_hh, w_hr) -> tuple[Tensor, Tensor | None]:
    """One time step of an LSTM / GRU / RNN from the input projection."""
    if kind == "lstm":
        assert c is not None  # an LSTM's hx is (h0, c0)
        return lstm_cell(proj, h, c, w_hh, b_hh, w_hr)
    if kind == "gru":
        return gru_cell(proj, h, w_hh, b_hh), None
    return rnn_cell(proj, h, w_hh, b_hh, torch.tanh if kind == "rnn_tanh" else torch.relu), None


def _rnn_layers(kind, x, hx, params, has_biases, num_layers, dropout, train, bidirectional, run):
    """The layers and directions of a fused RNN (weights, projections,
    inter-layer dropout, final states); ``run(proj, h, c, step, reverse)``
    runs one direction over the projected input and returns
    ``(outputs, h, c)``. ``x`` is time-major (padded) or packed data."""
    h0, c0 = hx if kind == "lstm" else (hx, None)
    dirs = 2 if bidirectional else 1
    n_per = len(params) // (num_layers * dirs)
    layer_input = x
    h_out: list[Tensor] = []
    c_out: list[Tensor] = []
    for layer in range(num_layers):
        outs = []
        for d in range(dirs):
            k = layer * dirs + d
            p = params[k * n_per : (k + 1) * n_per]
            w_hh = p[1]
            b_ih, b_hh = (p[2], p[3]) if has_biases else (None, None)
            w_hr = p[4 if has_biases else 2] if kind == "lstm" and len(p) in (3, 5) else None

            def step(proj_t, h, c, w_hh=w_hh, b_hh=b_hh, w_hr=w_hr):
                return _step(kind, proj_t, h, c, w_hh, b_hh, w_hr)

            y, h, c = run(F.linear(layer_input, p[0], b_ih), h0[k], None if c0 is None else c0[k], step, d == 1)
            outs.append(y)
            h_out.append(h)
            if c is not None:
                c_out.append(c)
        layer_input = torch.cat(outs, -1) if dirs > 1 else outs[0]
        if dropout and train and layer < num_layers - 1:
            layer_input = F.dropout(layer_input, dropout, True)
    if kind == "lstm":
        return layer_input, torch.stack(h_out, 0), torch.stack(c_out, 0)
    return layer_input, torch.stack(h_out, 0)


def _run_padded(proj, h, c, step, reverse):
    """One direction over a time-major ``(T, B, 4H)`` projection."""
    ys: list[Tensor] = [proj] * proj.shape[0]
    for t in reversed(range(proj.shape[0])) if reverse else range(proj.shape[0]):
        h, c = step(proj[t], h, c)
        ys[t] = h
    return torch.stack(ys, 0), h, c


def _run_packed(batch_sizes: list[int]):
    """One direction over packed data (``pack_padded_sequence``): at step
    ``t`` the first ``batch_sizes[t]`` sequences are active (torch sorts them
    by length); a finished sequence keeps its last state (forward direction),
    one not yet started holds ``h0`` (backward direction)."""
    starts = [0]
    for n in batch_sizes:
        starts.append(starts[-1] + n)

    def run(proj, h, c, step, reverse):
        ys: list[Tensor] = [proj] * len(batch_sizes)
        for t in reversed(range(len(batch_sizes))) if reverse else range(len(batch_sizes)):
            n = batch_sizes[t]
            h_t, c_t = step(proj[starts[t] : starts[t] + n], h[:n], None if c is None else c[:n])
            ys[t] = h_t
            h = torch.cat([h_t, h[n:]], 0)
            if c is not None and c_t is not None:
                c = torch.cat([c_t, c[n:]], 0)
        return torch.cat(ys, 0), h, c

    return run


def _rnn(kind: str):
    """Decomposition of the fused ``torch.lstm`` / ``gru`` / ``rnn_tanh`` /
    ``rnn_relu`` (multi-layer, bidirectional, batch_first, projections,
    packed sequences)."""

    def decompose(ctx, func, args, kwargs, consts):
        if len(args) < 2:
            return NOT_DECOMPOSED
        if isinstance(args[1], Tensor) and args[1].dtype == torch.int64 and len(args) == 9:
            # packed: (data, batch_sizes, hx, params, has_biases, layers, dropout, train, bidirectional)
            x, batch_sizes, hx, params, has_biases, num_layers, dropout, train, bidirectional = args
            return _rnn_layers(
                kind,
                x,
                hx,
                params,
                has_biases,
                num_layers,
                dropout,
                train,
                bidirectional,
                run=_run_packed(batch_sizes.tolist()),
            )
        if kind == "lstm" and isinstance(args[1], Tensor):
            return NOT_DECOMPOSED
        x, hx, params, has_biases, num_layers, dropout, train, bidirectional, batch_first = args[:9]
        seq = x.transpose(0, 1) if batch_first else x  # (T, B, F)
        output, *states = _rnn_layers(
            kind, seq, hx, params, has_biases, num_layers, dropout, train, bidirectional, run=_run_padded
        )
        return (output.transpose(0, 1) if batch_first else output, *states)

    return decompose


def _rnn_cell(kind: str):
    def decompose(ctx, func, args, kwargs, consts):
        x, hx = arg(args, kwargs, 0, "input"), arg(args, kwargs, 1, "hx")
        w_ih, w_hh = arg(args, kwargs, 2, "w_ih"), arg(args, kwargs, 3, "w_hh")
        b_ih = arg(args, kwargs, 4, "b_ih")
        b_hh = arg(args, kwargs, 5, "b_hh")
        h, c = hx if kind == "lstm" else (hx, None)
        h, c = _step(kind, F.linear(x, w_ih, b_ih), h, c, w_hh, b_hh, None)
        return (h, c) if kind == "lstm" else h

    return decompose


T = torch

#: The fused recurrent layers and the cells.
ROWS: tuple[CompositeOp, ...] = (
    CompositeOp("lstm", _rnn("lstm"), functions((T, "lstm")), fused=fused_lstm),
    CompositeOp("gru", _rnn("gru"), functions((T, "gru"))),
    CompositeOp("rnn_tanh", _rnn("rnn_tanh"), functions((T, "rnn_tanh"))),
    CompositeOp("rnn_relu", _rnn("rnn_relu"), functions((T, "rnn_relu"))),
    CompositeOp("lstm_cell", _rnn_cell("lstm"), functions((T, "lstm_cell"))),
    CompositeOp("gru_cell", _rnn_cell("gru"), functions((T, "gru_cell"))),
    CompositeOp("rnn_tanh_cell", _rnn_cell("rnn_tanh"), functions((T, "rnn_tanh_cell"))),
    CompositeOp("rnn_relu_cell", _rnn_cell("rnn_relu"), functions((T, "rnn_relu_cell"))),
)
