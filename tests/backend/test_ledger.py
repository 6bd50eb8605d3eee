"""The relevance ledger (issue #21, item 9): where relevance went, op by op.

Checked against what does not come from the ledger:

* an explicit layer-by-layer epsilon-LRP written from Ancona et al. Eq. 1-2
  (no autograd): the relevance at every layer's input, what each layer's bias
  absorbs and what epsilon absorbs must equal the ledger's rows;
* the totals against forward passes of the untouched model (the output's
  relevance is S_c(x), or S_c(x) - S_c(x_bar) for DeepLIFT) and against the
  attributions' sum;
* Euler's theorem for the warning: a product of three input-dependent factors
  differentiated by the product rule gives the inputs exactly 3x the output's
  relevance, and a LayerNorm differentiated by its gradient (scale-invariant)
  gives them 0; on bias-free piecewise-linear models every row conserves.
"""

from __future__ import annotations

import csv
import io
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from conftest import DTYPE, hook_count, randn
from torch import nn
from torch.overrides import _get_current_function_mode_stack

import captum_unified as cu
from captum_unified.backend.ledger import LedgerRow, RelevanceLedger


def _sign(z):
    return torch.where(z >= 0, torch.ones_like(z), -torch.ones_like(z))


def _ledger(method, *args, **kwargs):
    """Attributions, the ledger and the ConservationWarnings of one call."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with cu.relevance_ledger(method) as ledger:
            attr = method.attribute(*args, **kwargs)
    conservation = [str(w.message) for w in caught if issubclass(w.category, cu.ConservationWarning)]
    return attr, ledger, conservation


def _total(attr):
    return float(sum(a.sum() for a in attr)) if isinstance(attr, tuple) else float(attr.sum())


def _rows(ledger, name):
    return [r for r in ledger.rows if r.name == name]


# ------------------------------------------------------------------ oracle
def explicit_lrp(linears, acts, x, target, eps):
    """Ancona et al. Eq. 1-2 layer by layer, float64, no autograd. Returns the
    relevance summed over the batch at each linear layer's input, the relevance
    each layer's bias absorbs, what epsilon absorbs there, and the output's
    relevance.

        r_i = sum_j z_ji / (z_j + eps sign(z_j)) r_j,  z_ji = w_ji a_i,  z_j = sum_i z_ji + b_j
    bias share: b_j / (z_j + eps s_j) r_j;  epsilon share: eps s_j / (z_j + eps s_j) r_j.
    Element-wise nonlinearities pass relevance on unchanged."""
    with torch.no_grad():
        a_s = [x]
        for k, lin in enumerate(linears):
            z = a_s[-1] @ lin.weight.T + lin.bias
            a_s.append(acts[k](z) if k < len(linears) - 1 else z)
        out = a_s[-1]
        rows = torch.arange(x.shape[0])
        r = torch.zeros_like(out)
        r[rows, target] = out[rows, target]  # Eq. 1
        output = float(r.sum())
        at_input, bias, stab = [], [], []
        for k in reversed(range(len(linears))):
            lin, a = linears[k], a_s[k]
            z_ji = a[:, None, :] * lin.weight[None]
            z_j = z_ji.sum(-1) + lin.bias
            denom = z_j + eps * _sign(z_j)
            bias.insert(0, float((lin.bias / denom * r).sum()))
            stab.insert(0, float((eps * _sign(z_j) / denom * r).sum()))
            r = (z_ji / denom[:, :, None] * r[:, :, None]).sum(1)  # Eq. 2
            at_input.insert(0, float(r.sum()))
    return at_input, bias, stab, output


@pytest.mark.parametrize("acts", [("relu", "relu"), ("tanh", "relu"), ("relu", "tanh")])
def test_rows_equal_explicit_layerwise_lrp(acts):
    torch.manual_seed(0)
    widths = (5, 7, 6, 3)
    linears = [nn.Linear(a, b).double() for a, b in zip(widths[:-1], widths[1:])]
    with torch.no_grad():
        for lin in linears:
            lin.bias.mul_(4.0)  # biases that carry a visible share
    fns = [{"relu": torch.relu, "tanh": torch.tanh}[a] for a in acts]
    mods = [{"relu": nn.ReLU, "tanh": nn.Tanh}[a]() for a in acts]
    model = nn.Sequential(linears[0], mods[0], linears[1], mods[1], linears[2]).eval()
    x, eps, target = randn(4, 5, seed=1), 0.05, 2
    at_input, bias, stab, output = explicit_lrp(linears, fns, x, target, eps)
    attr, ledger, _ = _ledger(cu.EpsilonLRP(model, epsilon=eps), x, target=target)

    lin_rows = _rows(ledger, "F.linear")
    act_rows = [r for r in ledger.rows if r.kind == "elementwise"]
    assert len(lin_rows) == 3 and len(act_rows) == 2
    for k in range(3):
        assert lin_rows[k].relevance_in == pytest.approx(at_input[k], rel=1e-9, abs=1e-12)
        assert lin_rows[k].bias == pytest.approx(bias[k], rel=1e-9, abs=1e-12)
        assert lin_rows[k].unexplained == pytest.approx(0.0, abs=1e-12)
    # epsilon: the explicit rule divides at the linear layer; the modified gradient at the
    # nonlinearity above it (and at the explained output for the last layer)
    for k in range(2):
        assert act_rows[k].stabiliser == pytest.approx(stab[k], rel=1e-9, abs=1e-12)
        assert act_rows[k].relevance_in == pytest.approx(lin_rows[k].relevance_out, rel=1e-12)
    assert ledger.output_stabiliser == pytest.approx(stab[2], rel=1e-9, abs=1e-12)
    assert ledger.output == pytest.approx(output, rel=1e-12)
    assert ledger.inputs == pytest.approx(at_input[0], rel=1e-9)
    assert ledger.inputs == pytest.approx(_total(attr), rel=1e-12)
    assert abs(ledger.stabiliser) > 1e-4 * abs(ledger.output)  # epsilon large enough to be checked
    assert ledger.ratio == pytest.approx(1.0, abs=1e-9)
    assert abs(ledger.untracked) < 1e-12


def test_rows_equal_explicit_lrp_of_a_convolution():
    """A conv layer written as Eq. 2 over its patches (F.unfold / F.fold)."""
    torch.manual_seed(0)
    conv, fc = nn.Conv2d(2, 3, 3, padding=1).double(), nn.Linear(3 * 5 * 5, 4).double()
    model = nn.Sequential(conv, nn.ReLU(), nn.Flatten(), fc).eval()
    x, eps, target = randn(2, 2, 5, 5, seed=3), 0.01, 1
    with torch.no_grad():
        z = conv(x)
        a = torch.relu(z).flatten(1)
        out = fc(a)
        r = torch.zeros_like(out)
        r[:, target] = out[:, target]
        zf = out
        denom = zf + eps * _sign(zf)
        r = ((a[:, None, :] * fc.weight[None]) / denom[:, :, None] * r[:, :, None]).sum(1)  # at the flatten
        r = r.reshape(z.shape).flatten(2)  # (B, O, L): relu passes it on; relevance of z
        patches = F.unfold(x, 3, padding=1)  # (B, C*9, L)
        w = conv.weight.flatten(1)  # (O, C*9)
        zj = z.flatten(2)
        d = zj + eps * _sign(zj)
        conv_bias = float((conv.bias[None, :, None] / d * r).sum())
        r_patch = torch.einsum("bil,oi,bol->bil", patches, w, r / d)
        r_in = F.fold(r_patch, (5, 5), 3, padding=1)
    attr, ledger, _ = _ledger(cu.EpsilonLRP(model, epsilon=eps), x, target=target)
    (row,) = _rows(ledger, "torch.conv2d")
    assert row.relevance_in == pytest.approx(float(r_in.sum()), rel=1e-9)
    assert row.bias == pytest.approx(conv_bias, rel=1e-9)
    assert attr.sum().item() == pytest.approx(float(r_in.sum()), rel=1e-9)
    assert ledger.ratio == pytest.approx(1.0, abs=1e-9)


# ------------------------------------------------------------ conservation
class BiasFreeResNet(nn.Module):
    """Residual CNN without biases: in-place ReLUs, max-pooling, a residual add,
    average pooling: piecewise linear and positively homogeneous."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1, bias=False)
        self.relu = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(2)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1, bias=False)
        self.fc = nn.Linear(4, 3, bias=False)

    def forward(self, x):
        h = self.pool(self.relu(self.stem(x)))
        out = self.c2(self.relu(self.c1(h)))
        out += h
        return self.fc(F.adaptive_avg_pool2d(self.relu(out), 1).flatten(1))


def test_bias_free_model_conserves_to_1e6():
    torch.manual_seed(0)
    model = BiasFreeResNet().double().eval()
    x = randn(3, 2, 8, 8, seed=2)
    attr, ledger, warned = _ledger(cu.EpsilonLRP(model, epsilon=1e-9), x, target=1)
    with torch.no_grad():
        s = float(model(x)[:, 1].sum())
    assert ledger.output == pytest.approx(s, rel=1e-12)
    assert ledger.inputs == pytest.approx(_total(attr), rel=1e-12)
    assert ledger.bias == 0.0
    assert ledger.inputs / ledger.output == pytest.approx(1.0, abs=1e-6)
    assert all(abs(r.unexplained) <= 1e-9 * abs(s) for r in ledger.rows)
    names = {r.name for r in ledger.rows}
    assert {"torch.conv2d", "F.relu", "F.max_pool2d", "Tensor.add_"} <= names
    assert not warned


def test_gradient_x_input_on_a_bias_free_relu_net_is_conservative():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6, bias=False), nn.ReLU(), nn.Linear(6, 2, bias=False)).double()
    x = randn(3, 4, seed=4)
    attr, ledger, warned = _ledger(cu.GradientXInput(model), x, target=0)
    assert ledger.rule == "GradientRule"
    assert ledger.inputs == pytest.approx(ledger.output, rel=1e-12)
    assert not warned


# ---------------------------------------------------------------- warnings
class TripleProduct(nn.Module):
    """f(x) = (A x) * (B x) * (C x), bias-free: homogeneous of degree 3."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.c = (nn.Linear(4, 3, bias=False) for _ in range(3))

    def forward(self, x):
        return self.a(x) * self.b(x) * self.c(x)


def test_warns_where_the_product_rule_triples_relevance():
    torch.manual_seed(0)
    model = TripleProduct().double()
    x = randn(2, 4, seed=5)
    attr, ledger, warned = _ledger(cu.EpsilonLRP(model, epsilon=1e-12, products="gradient"), x, target=0)
    # Euler: sum_i x_i df/dx_i = 3 f for a homogeneous f of degree 3
    assert ledger.ratio == pytest.approx(3.0, rel=1e-9)
    assert len(warned) == 1 and "Tensor.mul" in warned[0]
    muls = _rows(ledger, "Tensor.mul")
    assert [r.ratio for r in muls] == pytest.approx([2.0, 2.0], rel=1e-9)  # each product rule doubles
    # the conservative policy: no warning, ratio 1
    _, ledger_u, warned_u = _ledger(cu.EpsilonLRP(model, epsilon=1e-12, products="uniform"), x, target=0)
    assert ledger_u.ratio == pytest.approx(1.0, rel=1e-9)
    assert not warned_u


def test_warns_where_a_layer_norm_keeps_its_gradient():
    """LayerNorm is scale-invariant (homogeneous of degree 0): through its
    gradient no relevance reaches the inputs."""
    torch.manual_seed(0)
    norm = nn.LayerNorm(6, eps=1e-12, elementwise_affine=False)  # eps > 0 breaks the invariance a little
    model = nn.Sequential(nn.Linear(5, 6, bias=False), norm, nn.Linear(6, 2)).double()
    x = randn(3, 5, seed=6)
    attr, ledger, warned = _ledger(cu.EpsilonLRP(model, norm="gradient"), x, target=1)
    assert abs(ledger.inputs) < 1e-9 * abs(ledger.output)
    assert len(warned) == 1 and "F.layer_norm" in warned[0]
    _, ledger_c, warned_c = _ledger(cu.EpsilonLRP(model, norm="constant"), x, target=1)
    assert ledger_c.ratio == pytest.approx(1.0, abs=1e-6)
    assert not warned_c


def test_large_biases_are_explained_not_warned():
    """y = w.x + b with |b| >> |w.x|: the inputs get a tiny share of S(x),
    all of it accounted for by the bias (by hand: bias row = b * S/(S + eps))."""
    model = nn.Linear(4, 1).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[0.1, -0.2, 0.3, 0.05]]))
        model.bias.fill_(50.0)
    x = randn(2, 4, seed=7)
    eps = 1e-9
    attr, ledger, warned = _ledger(cu.EpsilonLRP(model, epsilon=eps), x, target=0)
    with torch.no_grad():
        wx = x @ model.weight.T
        s = wx + 50.0
        seed = s / (s + eps)
    assert ledger.output == pytest.approx(float(s.sum()), rel=1e-12)
    assert ledger.bias == pytest.approx(float((50.0 * seed).sum()), rel=1e-12)
    assert ledger.inputs == pytest.approx(float((wx * seed).sum()), rel=1e-9)
    assert abs(ledger.inputs) < 0.05 * abs(ledger.output)  # a totals-only check would cry wolf
    assert ledger.ratio == pytest.approx(1.0, abs=1e-9)
    assert not warned


def test_warning_names_the_worst_op_only_when_far():
    row = LedgerRow(4, "torch.exp", "unknown", relevance_out=1.0, relevance_in=5.0)
    ledger = RelevanceLedger()
    ledger._fill([row], "EpsilonLRPRule", output=1.0, stabiliser=0.0, inputs=5.0)
    msg = ledger.conservation_message()
    assert msg is not None and "torch.exp #4" in msg and "ratio 5" in msg
    ledger._fill([row], "EpsilonLRPRule", output=1.0, stabiliser=0.0, inputs=-0.5)
    assert ledger.conservation_message() is not None  # the opposite sign
    ledger._fill([row], "EpsilonLRPRule", output=1.0, stabiliser=0.0, inputs=1.9)
    assert ledger.conservation_message() is None  # within 2x
    ledger._fill([row], "EpsilonLRPRule", output=1.0, stabiliser=0.0, inputs=0.6)
    assert ledger.conservation_message() is None
    assert issubclass(cu.ConservationWarning, cu.AttributionWarning)
    assert issubclass(cu.ConservationWarning, UserWarning)


# ----------------------------------------------------------------- models
class SmallResNet(nn.Module):
    """Residual CNN as people bring them: BatchNorm, in-place ReLUs, max-pool, biases."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(2, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True))
        self.pool = nn.MaxPool2d(2)
        self.block = nn.Sequential(
            nn.Conv2d(6, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.Conv2d(6, 6, 3, padding=1)
        )
        self.relu = nn.ReLU(inplace=True)
        self.fc = nn.Linear(6, 3)

    def forward(self, x):
        h = self.pool(self.stem(x))
        h = self.relu(self.block(h) + h)
        return self.fc(h.mean((2, 3)))


def _resnet():
    torch.manual_seed(0)
    model = SmallResNet().double().eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.3, 0.3)
                m.running_var.uniform_(0.5, 1.5)
    return model, randn(3, 2, 8, 8, seed=8)


class Recurrent(nn.Module):
    def __init__(self, cell) -> None:
        super().__init__()
        self.rnn = cell(5, 7, batch_first=True)
        self.fc = nn.Linear(7, 3)

    def forward(self, x):
        return self.fc(self.rnn(x)[0][:, -1])


class TinyTransformer(nn.Module):
    """nn.TransformerEncoderLayer (LayerNorm, multi-head attention, GELU) and a head."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, 16, dropout=0.0, activation="gelu", batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.layer(x).mean(1))


def _checks(model, x, method, target, conservative, **kwargs):
    """What every model must satisfy (see the module docstring)."""
    attr, ledger, warned = _ledger(method, x, target=target, **kwargs)
    plain = method.attribute(x, target=target, **kwargs)  # the ledger changes nothing
    torch.testing.assert_close(attr, plain, rtol=1e-9, atol=1e-12)
    with torch.no_grad():
        s = model(x)[:, target]
        if "baselines" in kwargs:
            s = s - model(kwargs["baselines"].expand_as(x))[:, target]
    scale = float(s.abs().sum())
    assert ledger.output == pytest.approx(float(s.sum()), rel=1e-9, abs=1e-12)
    assert ledger.inputs == pytest.approx(_total(attr), rel=1e-9, abs=1e-12)
    assert abs(ledger.untracked) <= 1e-8 * scale  # every op of the model has its row
    assert all(math.isfinite(r.relevance_in) for r in ledger.rows)
    if conservative:
        assert abs(ledger.inputs - ledger.expected) <= 1e-6 * scale
        assert not warned
    assert hook_count(model) == 0 and not _get_current_function_mode_stack()
    assert method._ledger is None
    return ledger, warned


def test_residual_cnn_with_batchnorm_and_inplace_relus():
    model, x = _resnet()
    ledger, _ = _checks(model, x, cu.EpsilonLRP(model), 2, conservative=True)
    assert abs(ledger.bias) > 1e-3 * abs(ledger.output)  # conv biases and BatchNorm shifts absorb
    kinds = {(r.name, r.kind) for r in ledger.rows}
    assert ("F.batch_norm", "composite") in kinds and ("F.max_pool2d", "composite") in kinds
    ledger, _ = _checks(model, x, cu.DeepLiftRescale(model), 2, conservative=True, baselines=0.1 * randn(1, 2, 8, 8))
    assert ledger.bias == 0.0 and ledger.unmeasured == 0


@pytest.mark.parametrize("cell", [nn.LSTM, nn.GRU])
@pytest.mark.parametrize("products", ["uniform", "gate"])
def test_recurrent_layers_conserve_up_to_their_biases(cell, products):
    torch.manual_seed(0)
    model = Recurrent(cell).double().eval()
    x = randn(2, 4, 5, seed=9)
    ledger, _ = _checks(model, x, cu.EpsilonLRP(model, products=products), 1, conservative=True)
    # the ledger follows the layer op by op: its biases and gates have rows
    assert len(_rows(ledger, "torch.sigmoid")) >= 4
    assert abs(ledger.bias) > 1e-3 * abs(ledger.output)


def test_recurrent_product_rule_is_named():
    torch.manual_seed(0)
    model = Recurrent(nn.LSTM).double().eval()
    x = randn(2, 4, 5, seed=9)
    ledger, warned = _checks(model, x, cu.EpsilonLRP(model, products="gradient"), 1, conservative=False)
    assert warned and "Tensor.mul" in warned[0]
    ledger, _ = _checks(
        model, x, cu.DeepLiftRescale(model), 1, conservative=True, baselines=0.1 * randn(1, 4, 5, seed=10)
    )


def test_transformer_layer():
    torch.manual_seed(0)
    model = TinyTransformer().double().eval()
    x = randn(2, 5, 8, seed=11)
    ledger, _ = _checks(model, x, cu.EpsilonLRP(model, products="gate"), 0, conservative=True)
    names = {r.name for r in ledger.rows}
    assert "F.layer_norm" in names and "F.linear" in names  # attention followed op by op


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_hugging_face_models_as_they_ship(arch):
    hf = pytest.importorskip("hf_helpers")
    lm = getattr(hf, arch)()

    class Logits(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, emb):
            return self.lm(inputs_embeds=emb).logits[:, -1]

    model = Logits().eval()
    emb = lm.get_input_embeddings()(torch.tensor([[1, 5, 6, 7, 8, 9]])).detach()
    # gate: attention weights and gates are constant weights (AttnLRP with the gate policy): conservative
    ledger, _ = _checks(model, emb, cu.EpsilonLRP(model, products="gate"), 4, conservative=True)
    assert len(ledger.rows) > 50
    ledger, _ = _checks(model, emb, cu.DeepLiftRescale(model), 4, conservative=True, baselines=torch.zeros_like(emb))


# ---------------------------------------------------------- API and traces
def test_rows_csv_and_str():
    model, x = _resnet()
    _, ledger, _ = _ledger(cu.EpsilonLRP(model), x, target=0)
    rows = ledger.to_rows()
    assert len(rows) == len(ledger.rows)
    assert set(rows[0]) == {
        "index",
        "op",
        "kind",
        "relevance_out",
        "relevance_in",
        "bias",
        "stabiliser",
        "unexplained",
        "ratio",
    }
    assert [r["index"] for r in rows] == sorted(r["index"] for r in rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    assert buf.getvalue().count("\n") == len(rows) + 1
    text = str(ledger)
    assert "torch.conv2d" in text and "inputs receive" in text and "EpsilonLRPRule" in text
    assert "RelevanceLedger" in repr(ledger)


def test_each_call_replaces_the_account_and_nothing_outside_the_block():
    model, x = _resnet()
    lrp = cu.EpsilonLRP(model)
    with cu.relevance_ledger(lrp) as ledger:
        lrp.attribute(x, target=0)
        first = ledger.output
        lrp.attribute(x[:1], target=0)
    with torch.no_grad():
        last = float(model(x[:1])[:, 0].sum())
    assert ledger.output == pytest.approx(last, rel=1e-9) and first != ledger.output
    lrp.attribute(x, target=0)  # after the block: nothing recorded
    assert ledger.output == pytest.approx(last, rel=1e-9)


class Raises(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        torch.relu(self.fc(x))
        raise RuntimeError("model failed")


def test_no_trace_when_the_call_raises():
    model = Raises().double()
    lrp = cu.EpsilonLRP(model)
    x = randn(2, 4)
    with pytest.raises(RuntimeError, match="model failed"):
        with cu.relevance_ledger(lrp):
            lrp.attribute(x, target=0)
    assert lrp._ledger is None and hook_count(model) == 0 and not _get_current_function_mode_stack()
    assert x.grad is None and not x.requires_grad


def test_bad_use_is_a_clear_error():
    model = nn.Linear(3, 2).double()
    with pytest.raises(TypeError, match="modified-gradient method"):
        with cu.relevance_ledger(cu.IntegratedGradients(model)):
            pass
    lrp = cu.EpsilonLRP(model)
    with cu.relevance_ledger(lrp), pytest.raises(RuntimeError, match="already has an open ledger"):
        with cu.relevance_ledger(lrp):
            pass
    assert lrp._ledger is None


def test_float32_models():
    model, x = _resnet()
    model = model.float()
    _, ledger, warned = _ledger(cu.EpsilonLRP(model), x.float(), target=1)
    assert ledger.ratio == pytest.approx(1.0, abs=1e-4)
    assert not warned
    assert DTYPE is torch.float64  # the ledger sums in float64 whatever the model's dtype


def test_inside_captum_noise_tunnel():
    from captum.attr import NoiseTunnel

    model, x = _resnet()
    lrp = cu.EpsilonLRP(model)
    with cu.relevance_ledger(lrp) as ledger:
        NoiseTunnel(lrp).attribute(x, nt_type="smoothgrad", nt_samples=2, stdevs=0.1, target=0)
    assert ledger.rows and ledger.ratio == pytest.approx(1.0, abs=1e-6)  # the noisy batch's account


def test_dropout_in_train_mode_draws_what_it_would_without_the_ledger():
    """The bias column evaluates ops at zero input; the random state is restored,
    so the model's dropout masks are the same with and without the ledger."""

    class Dropped(nn.Module):  # F.dropout called by keyword: a linear op whose constant term is evaluated
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = nn.Linear(6, 8), nn.Linear(8, 2)

        def forward(self, x):
            h = torch.relu(F.dropout(self.a(x), p=0.5, training=True))
            return self.b(F.dropout(h, p=0.5, training=True))  # a second mask: drawn after the first's zeros

    torch.manual_seed(0)
    model = Dropped().double()
    x = randn(4, 6, seed=12)
    lrp = cu.EpsilonLRP(model)
    torch.manual_seed(5)
    with cu.relevance_ledger(lrp) as ledger:
        with_ledger = lrp.attribute(x, target=0)
    torch.manual_seed(5)
    without = lrp.attribute(x, target=0)
    torch.testing.assert_close(with_ledger, without, rtol=0, atol=0)
    assert ledger.ratio == pytest.approx(1.0, abs=1e-9)
