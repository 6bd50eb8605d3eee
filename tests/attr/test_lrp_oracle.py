"""epsilon-LRP against an explicit layer-by-layer relevance propagation written
from Ancona et al. Eq. 1-2 (Bach et al.'s epsilon rule):

    r^(L)_i = S_i(x) for the target unit, 0 otherwise                 (Eq. 1)
    r_i = sum_j z_ji / (z_j + eps * sign(z_j)) * r_j,                   (Eq. 2)
          z_ji = w_ji x_i,   z_j = sum_i z_ji + b_j,   sign(0) = +1

and every element-wise nonlinearity passes relevance through unchanged
(relevance of x_j = f(z_j) is the relevance of z_j). The oracle never calls
autograd and knows nothing about the modified chain rule."""

from __future__ import annotations

import warnings

import pytest
import torch
from captum.attr import LRP as CLRP
from conftest import ACT_FN, DTYPE, assert_close, make_mlp, make_sequential_mlp, randn

import captum_unified as cu


def _sign(z):
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def lrp_oracle(linears, act, x, target, eps):
    """Explicit epsilon-LRP on Linear-act-...-Linear, per sample, in float64."""
    f = ACT_FN[act]
    batch = x.shape[0]
    with torch.no_grad():
        acts = [x]
        for k, lin in enumerate(linears):
            z = acts[-1] @ lin.weight.T + (lin.bias if lin.bias is not None else 0)
            acts.append(f(z) if k < len(linears) - 1 else z)
        out = acts[-1]
        targets = torch.as_tensor(target).expand(batch) if not isinstance(target, list) else torch.tensor(target)
        r = torch.zeros_like(out)
        r[torch.arange(batch), targets] = out[torch.arange(batch), targets]  # Eq. 1
        for k in reversed(range(len(linears))):
            lin, a = linears[k], acts[k]
            W = lin.weight  # (out, in)
            b = lin.bias if lin.bias is not None else torch.zeros(W.shape[0], dtype=DTYPE)
            z_ji = a[:, None, :] * W[None, :, :]  # (B, out, in)
            z_j = z_ji.sum(-1) + b  # (B, out)
            denom = z_j + eps * _sign(z_j)
            r = (z_ji / denom[:, :, None] * r[:, :, None]).sum(1)  # Eq. 2
            # the nonlinearity below passes r through unchanged
    return r


CASES = [
    ("tanh", (5, 6, 4, 3)),
    ("sigmoid", (5, 6, 4, 3)),
    ("softplus", (5, 6, 4, 3)),
    ("tanh", (4, 3, 2)),
    ("sigmoid", (3, 7, 5, 6, 2)),
    ("softplus", (6, 2)),  # one Linear layer only: Eq. 2 once
    ("relu", (5, 8, 6, 3)),
]


@pytest.mark.parametrize("act,widths", CASES)
@pytest.mark.parametrize("eps", [1e-3, 0.1])
@pytest.mark.parametrize("bias", [True, False])
def test_epsilon_lrp_equals_explicit_relevance_propagation(act, widths, eps, bias):
    model = make_mlp(widths, act, bias=bias, seed=len(widths) + int(bias))
    x = randn(5, widths[0], seed=3)
    n_out = widths[-1]
    for target in [0, n_out - 1, [k % n_out for k in range(5)]]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            ours = cu.EpsilonLRP(model, epsilon=eps).attribute(x, target=target)
        oracle = lrp_oracle(list(model.linears), act, x, target, eps)
        assert_close(ours, oracle, atol=1e-10, rtol=1e-8, msg=f"{act}/{widths}/{eps}/{target}")


def test_stabiliser_matters_at_this_epsilon():
    """Guard: the oracle with eps=1e-3 differs from the oracle with eps->0, so
    the agreement above actually tests how epsilon enters (not just Prop. 1)."""
    model = make_mlp((5, 6, 4, 3), "tanh", seed=4)
    x = randn(5, 5, seed=3) * 0.01  # small pre-activations: epsilon is significant
    a = lrp_oracle(list(model.linears), "tanh", x, 1, 1e-3)
    b = lrp_oracle(list(model.linears), "tanh", x, 1, 1e-12)
    assert (a - b).abs().max() > 1e-3 * a.abs().max()
    ours = cu.EpsilonLRP(model, epsilon=1e-3).attribute(x, target=1)
    assert_close(ours, a, atol=1e-12, rtol=1e-8)


def test_epsilon_lrp_delta_is_relevance_absorbed():
    """return_convergence_delta gives S_c(x) - sum(R) (Captum LRP's convention)."""
    model = make_mlp((5, 6, 4, 3), "tanh", seed=5)
    x = randn(4, 5, seed=3)
    attr, delta = cu.EpsilonLRP(model, epsilon=1e-3).attribute(x, target=2, return_convergence_delta=True)
    oracle = lrp_oracle(list(model.linears), "tanh", x, 2, 1e-3)
    with torch.no_grad():
        s = model(x)[:, 2]
    assert_close(delta, s - oracle.sum(1), atol=1e-10)


def test_epsilon_rule_sign_of_zero_is_plus_one():
    rule = cu.EpsilonLRPRule(1e-3)
    z = torch.tensor([0.0, -0.0, 1e-12, -1e-12], dtype=DTYPE)
    out = torch.sigmoid(z)
    g = rule.multiplier(torch.sigmoid, z, out)
    expected = out / (z + 1e-3 * torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=DTYPE))
    assert_close(g, expected, atol=0, rtol=1e-12)
    assert g[0] > 0 and g[1] > 0


def test_captum_lrp_on_tanh_follows_eq2_too():
    """Observed in Captum 0.9.0: its LRP passes relevance unchanged through
    nn.Tanh (no derivative factor), so on Tanh MLPs it agrees with Eq. 2 and
    with ours."""
    model = make_sequential_mlp((5, 6, 4, 3), "tanh", seed=7)
    x = randn(4, 5, seed=3)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    oracle = lrp_oracle(linears, "tanh", x, 1, 1e-9)
    theirs = CLRP(model).attribute(x, target=1).detach()
    ours = cu.EpsilonLRP(model, epsilon=1e-9).attribute(x, target=1)
    assert_close(ours, oracle, atol=1e-8)
    assert_close(theirs, oracle, atol=1e-8)


def test_captum_lrp_refuses_sigmoid_where_ours_follows_eq2():
    """Observed in Captum 0.9.0: LRP has no rule for nn.Sigmoid and raises;
    ours follows Eq. 2 there (and warns, see test_no_trace_and_errors)."""
    model = make_sequential_mlp((5, 6, 4, 3), "sigmoid", seed=7)
    x = randn(4, 5, seed=3)
    with pytest.raises(TypeError, match="no rule"):
        CLRP(model).attribute(x, target=1)
    linears = [m for m in model if isinstance(m, torch.nn.Linear)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        ours = cu.EpsilonLRP(model, epsilon=1e-9).attribute(x, target=1)
    assert_close(ours, lrp_oracle(linears, "sigmoid", x, 1, 1e-9), atol=1e-8)


# --------------------------------------------------------------------------
# DeepLIFT (Rescale) by explicit relevance propagation, Ancona Eq. 3-4:
#   r^(L) = S_c(x) - S_c(x_bar) at the target unit                      (Eq. 3)
#   r_i = sum_j (z_ji - zbar_ji) / (sum_i' z_ji' - sum_i' zbar_ji') r_j  (Eq. 4)
# over each Linear layer; the Rescale nonlinearity passes relevance through.
# Covers activations Captum's DeepLift has no rule for (GELU, Softplus, SiLU).
def deeplift_oracle(linears, act, x, xbar, target):
    f = ACT_FN[act]
    batch = x.shape[0]
    with torch.no_grad():
        acts, refs = [x], [xbar.expand_as(x)]
        for k, lin in enumerate(linears):
            z, zb = lin(acts[-1]), lin(refs[-1])
            if k < len(linears) - 1:
                z, zb = f(z), f(zb)
            acts.append(z)
            refs.append(zb)
        r = torch.zeros_like(acts[-1])
        rows = torch.arange(batch)
        r[rows, target] = acts[-1][rows, target] - refs[-1][rows, target]  # Eq. 3
        for k in reversed(range(len(linears))):
            W = linears[k].weight
            dz_ji = (acts[k] - refs[k])[:, None, :] * W[None]  # z_ji - zbar_ji
            r = (dz_ji / dz_ji.sum(-1, keepdim=True) * r[:, :, None]).sum(1)  # Eq. 4
    return r


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "softplus", "gelu", "silu", "elu", "relu"])
@pytest.mark.parametrize("widths", [(5, 6, 4, 3), (3, 7, 2)])
def test_deeplift_equals_explicit_rescale_propagation(act, widths):
    model = make_mlp(widths, act, seed=sum(widths))
    x = randn(4, widths[0], seed=5)
    for xbar in (torch.zeros(1, widths[0], dtype=DTYPE), randn(1, widths[0], seed=6), randn(4, widths[0], seed=7)):
        for target in (0, widths[-1] - 1):
            ours = cu.DeepLiftRescale(model).attribute(x, baselines=xbar, target=target)
            oracle = deeplift_oracle(list(model.linears), act, x, xbar, target)
            assert_close(ours, oracle, atol=1e-10, rtol=1e-8, msg=f"{act}/{widths}")
