"""Backend v2 (issue 11, SPEC §5): every op a model calls is classified, and
DeepLIFT is exactly complete on the models people bring.

Oracles: completeness is checked against the model's own outputs
``S(x) - S(baseline)`` computed without the backend; in-place / keyword calls
against their out-of-place positional twins; fused ops against the same model
written with primitive ops; Captum's DeepLift / LRP / IntegratedGradients on
Captum's own test models.
"""

from __future__ import annotations

import math
import re
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import DTYPE, assert_close, randn

import captum_unified as cu

REL = 1e-5  # issue 11: delta <= 1e-5 relative to |S(x) - S(x_bar)| in float64


def _gap(model, x, base, target, layer_input=None):
    with torch.no_grad():
        b = base.expand_as(x) if base.shape != x.shape else base
        return model(x)[:, target] - model(b)[:, target]


def _assert_complete(model, x, base, target=1, method=None, **kw):
    """DeepLIFT's delta is tiny relative to the true output change, and the
    delta it reports equals the gap computed from the model itself."""
    method = method or cu.DeepLiftRescale(model)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        attr, delta = method.attribute(x, baselines=base, target=target, return_convergence_delta=True, **kw)
    gap = _gap(model, x, base, target)
    total = sum(a.sum(tuple(range(1, a.dim()))) for a in (attr if isinstance(attr, tuple) else (attr,)))
    assert_close(delta, total - gap, atol=1e-12, rtol=1e-9)
    assert (delta.abs() <= REL * gap.abs() + 1e-12).all(), (delta, gap)
    return attr


# ----------------------------------------------------------------- models
class ResidualCNN(nn.Module):
    """Residual CNN with BatchNorm, max-pooling and in-place ReLUs (result of
    the in-place call not reassigned)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(2, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU(inplace=True)
        self.c1 = nn.Conv2d(4, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 4, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.gpool = nn.AdaptiveMaxPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        h = self.relu(self.bn(self.stem(x)))
        r = self.c1(h)
        self.relu(r)  # in place, not reassigned
        r = self.c2(r)
        r += h
        F.relu(r, inplace=True)
        h = self.pool(r)
        return self.fc(self.gpool(h).flatten(1))


class RecurrentClassifier(nn.Module):
    def __init__(self, kind=nn.LSTM, embed=True, bidirectional=True, batch_first=True) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 6) if embed else None
        self.rnn = kind(6, 5, num_layers=2, batch_first=batch_first, bidirectional=bidirectional)
        self.batch_first = batch_first
        self.fc = nn.Linear(10 if bidirectional else 5, 3)

    def forward(self, x):
        if self.emb is not None:
            x = self.emb(x)
        if not self.batch_first:
            x = x.transpose(0, 1)
        out = self.rnn(x)[0]
        last = out[:, -1] if self.batch_first else out[-1]
        return self.fc(last)


class Transformer(nn.Module):
    def __init__(self, norm_first: bool) -> None:
        super().__init__()
        layer = nn.TransformerEncoderLayer(
            8, 2, 16, dropout=0.0, batch_first=True, norm_first=norm_first, activation="gelu"
        )
        self.enc = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.enc(x).mean(1))


class SDPAModel(nn.Module):
    """Fused attention with a causal mask or an additive float mask."""

    def __init__(self, fused: bool = True, causal: bool = True) -> None:
        super().__init__()
        self.q, self.k, self.v = nn.Linear(6, 8), nn.Linear(6, 8), nn.Linear(6, 8)
        self.fc = nn.Linear(8, 3)
        self.fused, self.causal = fused, causal

    def forward(self, x):
        b, t, _ = x.shape
        q, k, v = (m(x).view(b, t, 2, 4).transpose(1, 2) for m in (self.q, self.k, self.v))
        mask = None if self.causal else torch.linspace(-1.0, 1.0, t * t, dtype=x.dtype).view(t, t)
        if self.fused:
            o = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal)
        else:  # the same by hand
            s = q @ k.transpose(-2, -1) / math.sqrt(4)
            if self.causal:
                s = s.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
            else:
                s = s + mask
            o = torch.softmax(s, -1) @ v
        return self.fc(torch.tanh(o.transpose(1, 2).reshape(b, t, 8)).mean(1))


class HandLSTM(nn.Module):
    """One-layer LSTM written with primitive ops, sharing nn.LSTM's weights."""

    def __init__(self, lstm: nn.LSTM, fc: nn.Linear) -> None:
        super().__init__()
        self.lstm, self.fc = lstm, fc

    def forward(self, x):
        w_ih, w_hh = self.lstm.weight_ih_l0, self.lstm.weight_hh_l0
        b = self.lstm.bias_ih_l0 + self.lstm.bias_hh_l0
        h = x.new_zeros(x.shape[0], w_hh.shape[1])
        c = torch.zeros_like(h)
        for t in range(x.shape[1]):
            i, f, g, o = (x[:, t] @ w_ih.T + h @ w_hh.T + b).chunk(4, 1)
            c = i.sigmoid() * g.tanh() + f.sigmoid() * c
            h = o.sigmoid() * torch.tanh(c)
        return self.fc(h)


class FusedLSTM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(4, 5, batch_first=True)
        self.fc = nn.Linear(5, 3)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, -1])


def _seeded(model, seed=0):
    torch.manual_seed(seed)
    for p in model.parameters():
        nn.init.normal_(p, 0, 0.5)
    return model.to(DTYPE).eval()


# ------------------------------------------------------ completeness (CI)
def test_residual_cnn_with_maxpool_and_inplace_relus_is_complete():
    torch.manual_seed(0)
    model = ResidualCNN().to(DTYPE).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics
        model.bn.running_mean.uniform_(-0.5, 0.5)
        model.bn.running_var.uniform_(0.5, 2.0)
    x, base = randn(3, 2, 8, 8, seed=1), randn(1, 2, 8, 8, seed=2)
    _assert_complete(model, x, base)
    _assert_complete(model, x, randn(3, 2, 8, 8, seed=3))


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU, nn.RNN])
@pytest.mark.parametrize("bidirectional,batch_first", [(True, True), (False, False)])
def test_recurrent_classifiers_are_complete_at_float_inputs(kind, bidirectional, batch_first):
    torch.manual_seed(1)
    model = (
        RecurrentClassifier(kind, embed=False, bidirectional=bidirectional, batch_first=batch_first).to(DTYPE).eval()
    )
    _assert_complete(model, randn(3, 7, 6, seed=4), randn(3, 7, 6, seed=5))


@pytest.mark.parametrize("kind", [nn.LSTM, nn.GRU])
def test_recurrent_classifiers_are_complete_at_the_embedding_from_token_ids(kind):
    torch.manual_seed(2)
    model = RecurrentClassifier(kind).to(DTYPE).eval()
    ids = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(0))
    base = torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(1))
    method = cu.LayerDeepLiftRescale(model, model.emb)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        attr, delta = method.attribute(ids, baselines=base, target=2, return_convergence_delta=True)
    assert attr.shape == (3, 7, 6) and attr.dtype == DTYPE
    gap = _gap(model, ids, base, 2)
    assert_close(delta, attr.sum((1, 2)) - gap, atol=1e-12, rtol=1e-9)
    assert (delta.abs() <= REL * gap.abs()).all()


@pytest.mark.parametrize("norm_first", [False, True])
def test_transformer_encoder_stack_is_complete(norm_first):
    torch.manual_seed(3)
    model = Transformer(norm_first).to(DTYPE).eval()
    _assert_complete(model, randn(3, 5, 8, seed=6), randn(3, 5, 8, seed=7))


@pytest.mark.parametrize("causal", [True, False])
def test_scaled_dot_product_attention_is_complete_and_equals_primitive_ops(causal):
    torch.manual_seed(4)
    fused = SDPAModel(True, causal).to(DTYPE).eval()
    hand = SDPAModel(False, causal).to(DTYPE).eval()
    hand.load_state_dict(fused.state_dict())
    x, base = randn(3, 4, 6, seed=8), randn(3, 4, 6, seed=9)
    a_fused = _assert_complete(fused, x, base)
    a_hand = _assert_complete(hand, x, base)
    assert_close(a_fused, a_hand, atol=1e-12, rtol=1e-9)


def test_fused_lstm_equals_the_same_lstm_written_with_primitive_ops():
    fused = _seeded(FusedLSTM(), 5)
    hand = HandLSTM(fused.lstm, fused.fc).to(DTYPE).eval()
    x, base = randn(3, 6, 4, seed=10), randn(1, 6, 4, seed=11)
    with torch.no_grad():
        assert_close(fused(x), hand(x), atol=1e-12)
    for make in (
        cu.DeepLiftRescale,
        lambda m: cu.EpsilonLRP(m, 1e-6),
        lambda m: cu.DeepLiftRescale(m, products="gradient"),
    ):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            kw = {} if isinstance(make(fused), cu.EpsilonLRP) else {"baselines": base}
            a = make(fused).attribute(x, target=0, **kw)
            b = make(hand).attribute(x, target=0, **kw)
        assert_close(a, b, atol=1e-12, rtol=1e-9)


def test_ancona_original_products_report_the_true_gap_on_an_lstm():
    """products="gradient" (Ancona et al. §3.1): not complete through the
    gates; it warns, and the delta it returns is the true gap."""
    model = _seeded(FusedLSTM(), 6)
    x, base = randn(4, 6, 4, seed=12), randn(4, 6, 4, seed=13)
    with pytest.warns(cu.AttributionWarning, match="products='gradient'"):
        attr, delta = cu.DeepLiftRescale(model, products="gradient").attribute(
            x, baselines=base, target=1, return_convergence_delta=True
        )
    gap = _gap(model, x, base, 1)
    assert_close(delta, attr.sum((1, 2)) - gap, atol=1e-12, rtol=1e-9)
    assert (delta.abs() > 1e-3 * gap.abs()).any()


# ---------------------------------------------------------- call styles
def _mlp_weights(seed=7):
    g = torch.Generator().manual_seed(seed)
    return [
        torch.randn(6, 4, generator=g, dtype=DTYPE),
        torch.randn(6, generator=g, dtype=DTYPE),
        torch.randn(3, 6, generator=g, dtype=DTYPE),
    ]


CALLS = {
    # name: (the call on h, its out-of-place positional twin)
    "torch.relu_": (lambda h: torch.relu_(h), torch.relu),
    "Tensor.relu_": (lambda h: h.relu_(), torch.relu),
    "F.relu(inplace)": (lambda h: F.relu(h, inplace=True), torch.relu),
    "nn.ReLU(inplace)": (lambda h: nn.ReLU(inplace=True)(h), torch.relu),
    "Tensor.sigmoid_": (lambda h: h.sigmoid_(), torch.sigmoid),
    "nn.LeakyReLU(inplace)": (lambda h: nn.LeakyReLU(0.2, inplace=True)(h), lambda h: F.leaky_relu(h, 0.2)),
    "torch.tanh(input=)": (lambda h: torch.tanh(input=h), torch.tanh),
    "F.softplus(input=, beta=)": (lambda h: F.softplus(input=h, beta=2), lambda h: F.softplus(h, 2)),
    "F.gelu(input=)": (lambda h: F.gelu(input=h), F.gelu),
}


class CallNet(nn.Module):
    def __init__(self, call, inplace_unassigned: bool) -> None:
        super().__init__()
        self.w1, self.b1, self.w2 = (nn.Parameter(t) for t in _mlp_weights())
        self.call, self.unassigned = call, inplace_unassigned

    def forward(self, x):
        h = x @ self.w1.T + self.b1
        if self.unassigned:
            self.call(h)  # the result is not reassigned
        else:
            h = self.call(h)
        return h @ self.w2.T


@pytest.mark.parametrize("name", list(CALLS))
def test_inplace_and_keyword_calls_equal_their_out_of_place_twins(name):
    call, twin = CALLS[name]
    inplace = "_" in name.split("(")[0][-2:] or "inplace" in name
    model, ref = CallNet(call, inplace).eval(), CallNet(twin, False).eval()
    x, base = randn(4, 4, seed=20), randn(1, 4, seed=21)
    with torch.no_grad():
        assert_close(model(x), ref(x), atol=1e-12)
    for make, kw in [
        (cu.DeepLiftRescale, {"baselines": base}),
        (lambda m: cu.EpsilonLRP(m, 1e-3), {}),
        (lambda m: cu.ModifiedGradient(m, cu.RescaleRule()), {"baselines": base}),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", cu.AttributionWarning)
            assert_close(
                make(model).attribute(x, target=2, **kw),
                make(ref).attribute(x, target=2, **kw),
                atol=1e-12,
                rtol=1e-9,
                msg=name,
            )
    _assert_complete(model, x, base, target=2)


# ---------------------------------------------------- unknown ops, table
class CumprodNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 3)

    def forward(self, x):
        return self.lin(torch.cumprod(torch.sigmoid(x), dim=1))


def test_unknown_op_warns_naming_it():
    model = CumprodNet().to(DTYPE).eval()
    x = randn(2, 4, seed=1)
    for method in (cu.DeepLiftRescale(model), cu.EpsilonLRP(model, 0.1)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            method.attribute(x, target=0)
        messages = [str(w.message) for w in caught if issubclass(w.category, cu.AttributionWarning)]
        assert any(re.search(r"torch\.cumprod \(1x\)", m) for m in messages), messages
        # epsilon-LRP also warns about sigmoid's f(0) != 0; nothing else is said
        assert all("cumprod" in m or "sigmoid" in m for m in messages), messages


def test_ops_on_constants_are_not_products():
    """``h * torch.ones_like(h)`` multiplies by a constant: no product warning."""

    def f(x):
        h = torch.tanh(x)
        return (h * torch.ones_like(h) * h.detach()).sum(1, keepdim=True)

    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)
        cu.DeepLiftRescale(f, products="gradient").attribute(randn(3, 4, seed=2), baselines=0.1, target=0)


def test_op_table_is_a_value_extended_per_method():
    table = cu.default_op_table()
    with pytest.raises(TypeError):
        table[torch.cumprod] = None  # immutable
    assert table.lookup(torch.special.i0) is None

    def f(x):
        return torch.special.i0(x).sum(1, keepdim=True)

    x = randn(3, 4, seed=3)
    with pytest.warns(cu.AttributionWarning, match="i0"):
        cu.DeepLiftRescale(f).attribute(x, baselines=0.2, target=0)
    extended = table.with_elementwise("i0", torch.special.i0, torch.Tensor.i0)
    _assert_complete(
        f, x, torch.full((1, 4), 0.2, dtype=DTYPE), target=0, method=cu.DeepLiftRescale(f, op_table=extended)
    )
    assert cu.default_op_table().lookup(torch.special.i0) is None  # nothing global changed


def test_square_is_elementwise_in_every_call_no_global_registration():
    """Epsilon-LRP through ``h.square()`` does not depend on what ran before
    (the old backend's global registry changed it at run time)."""

    def f(x):
        return x.square() @ torch.ones(4, 2, dtype=x.dtype)

    x = randn(3, 4, seed=4)
    first = cu.EpsilonLRP(f, 1e-12).attribute(x, target=1)
    from captum_unified.experiments import deng  # noqa: F401  (used to register square globally)

    again = cu.EpsilonLRP(f, 1e-12).attribute(x, target=1)
    assert_close(first, again, atol=0, rtol=0)
    assert_close(first, x * x, atol=1e-9)  # g(z) = z^2 / z = z, times x


# --------------------------------------------------------- product rules
def test_uniform_and_gate_product_policies_by_hand():
    """y = sigmoid(a) * b with a = x1, b = x2: ε-LRP's uniform rule gives each
    factor half of the ordinary gradient; the gate rule gives the gate nothing
    (Arras et al. 2017)."""

    def f(x):
        return torch.sigmoid(x[:, :1]) * x[:, 1:2]

    x = torch.tensor([[0.7, 2.0], [-1.2, 0.5]], dtype=DTYPE)
    s, b = torch.sigmoid(x[:, 0]), x[:, 1]
    g_sig = s / (x[:, 0] + 1e-9)  # epsilon rule at the sigmoid (f(0) != 0 warns)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        uni = cu.EpsilonLRP(f, 1e-9, products="uniform").attribute(x, target=0)
        gate = cu.EpsilonLRP(f, 1e-9, products="gate").attribute(x, target=0)
    stab = lambda y: y / (y + 1e-9)  # noqa: E731  output stabiliser
    y = s * b
    assert_close(uni, torch.stack([x[:, 0] * g_sig * 0.5 * b, x[:, 1] * 0.5 * s], 1) * stab(y)[:, None], atol=1e-8)
    assert_close(gate, torch.stack([torch.zeros_like(b), x[:, 1] * s], 1) * stab(y)[:, None], atol=1e-8)


# ------------------------------------------------------ train mode, state
class BNNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linears = nn.ModuleList([nn.Linear(4, 6), nn.Linear(6, 3)])
        self.bn = nn.BatchNorm1d(6)
        self.drop = nn.Dropout(0.3)

    def forward(self, x):
        return self.linears[1](self.drop(torch.relu(self.bn(self.linears[0](x)))))


def test_train_mode_shared_baseline_runs_warns_and_leaves_buffers():
    torch.manual_seed(8)
    model = BNNet().to(DTYPE).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.warns(cu.AttributionWarning, match="train mode"):
        cu.DeepLiftRescale(model).attribute(randn(5, 4, seed=1), baselines=0.0, target=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    assert model.training


def test_train_mode_batchnorm_is_decomposed_with_batch_statistics():
    """With batch statistics every output depends on every sample, so
    completeness holds for the batch as a whole: the attributions of all
    samples sum to the change of the summed outputs."""
    torch.manual_seed(9)
    model = BNNet().to(DTYPE).train()
    model.drop.p = 0.0
    x, base = randn(5, 4, seed=2), randn(5, 4, seed=3)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        attr = cu.DeepLiftRescale(model).attribute(x, baselines=base, target=1)
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k
    gap = _gap(model, x, base, 1)
    assert abs(float(attr.sum() - gap.sum())) <= REL * float(gap.abs().sum())


# ---------------------------------------------- Captum's own test models
def test_epsilon_lrp_equals_captum_on_convnet_ending_in_relu():
    """The stabiliser is applied once when the last op is a nonlinearity."""
    from captum.attr import LRP
    from captum.attr._utils.lrp_rules import EpsilonRule as CaptumEpsilon
    from captum.testing.helpers.basic_models import BasicModel_ConvNet_One_Conv

    model = BasicModel_ConvNet_One_Conv().double()
    x = torch.arange(1, 17, dtype=DTYPE).view(1, 1, 4, 4)
    x = torch.cat([x, 0.5 * x + 3])
    for eps in (0.1, 1.0):
        ours, delta = cu.EpsilonLRP(model, eps).attribute(x, target=1, return_convergence_delta=True)
        for m in (model.conv1, model.fc1):
            m.rule = CaptumEpsilon(epsilon=eps)
        theirs, their_delta = LRP(model).attribute(x, target=1, return_convergence_delta=True)
        assert_close(ours, theirs, atol=1e-9)
        assert_close(delta, their_delta, atol=1e-9)


def test_epsilon_lrp_equals_captum_lrp_on_tanh_networks():
    """Captum's LRP passes relevance through Tanh unchanged, which is f(z)/z in
    modified-gradient form: it is an oracle on Tanh nets."""
    from captum.attr import LRP

    torch.manual_seed(10)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 6), nn.Tanh(), nn.Linear(6, 3)).to(DTYPE).eval()
    x = randn(4, 5, seed=5)
    ours = cu.EpsilonLRP(model, 1e-9).attribute(x, target=2)
    theirs = LRP(model).attribute(x, target=2)
    assert_close(ours, theirs, atol=1e-9, rtol=1e-7)


def test_deeplift_on_captum_linear_maxpool_linear_model():
    from captum.attr import DeepLift
    from captum.testing.helpers.basic_models import LinearMaxPoolLinearModel

    model = LinearMaxPoolLinearModel().double()
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0], [3.0, 5.0, 1.0, 2.0]], dtype=DTYPE)
    base = torch.tensor([[0.0, 4.0, 1.0, 2.0], [1.0, 2.0, 3.0, 4.0]], dtype=DTYPE)
    ours, delta = cu.DeepLiftRescale(model).attribute(x, base, return_convergence_delta=True)
    assert_close(delta, torch.zeros(2, dtype=DTYPE), atol=1e-12)  # Captum's test expects [0, 0]
    assert_close(ours, DeepLift(model).attribute(x, base), atol=1e-12)


def test_deeplift_equals_captum_on_captum_maxpool_convnet():
    from captum.attr import DeepLift
    from captum.testing.helpers.basic_models import BasicModel_ConvNet

    torch.manual_seed(11)
    model = BasicModel_ConvNet().double()
    x, base = randn(3, 1, 10, 10, seed=6), randn(3, 1, 10, 10, seed=7)
    ours = _assert_complete(model, x, base, target=1)
    assert_close(ours, DeepLift(model).attribute(x, base, target=1), atol=1e-10)


def test_deeplift_maxpool_rule_at_exact_ties_equals_captum():
    """Windows where the input equals the baseline (and, after the ReLU, all
    zero in both passes) give 0 / 0 secants: the rule takes the gradient of
    max there, as Captum's DeepLift does, and stays complete."""
    from captum.attr import DeepLift
    from captum.testing.helpers.basic_models import BasicModel_ConvNet

    torch.manual_seed(13)
    model = BasicModel_ConvNet().double()
    x, base = randn(3, 1, 10, 10, seed=8), randn(3, 1, 10, 10, seed=9)
    x[:, :, :5] = base[:, :, :5]  # the top half equals the baseline exactly
    ours = _assert_complete(model, x, base, target=1)
    assert_close(ours, DeepLift(model).attribute(x, base, target=1), atol=1e-10)
    assert bool((ours[:, :, :3] == 0).all())  # no difference, no attribution


def test_integrated_gradients_float32_sums_steps_accurately():
    from captum.attr import IntegratedGradients as CaptumIG

    torch.manual_seed(12)
    net = nn.Sequential(nn.Linear(10, 20), nn.Tanh(), nn.Linear(20, 3))
    x = torch.randn(4, 10)
    exact = CaptumIG(net.double()).attribute(x.double(), target=1, n_steps=500)
    net.float()
    ours = cu.IntegratedGradients(net).attribute(x, target=1, n_steps=500)
    theirs = CaptumIG(net).attribute(x, target=1, n_steps=500)
    err_ours = float((ours.double() - exact).abs().max())
    err_theirs = float((theirs.double() - exact).abs().max())
    assert err_ours <= max(2 * err_theirs, 1e-6), (err_ours, err_theirs)


def test_layer_methods_accept_token_ids_like_captum():
    """From integer token ids, at the embedding: LayerDeepLiftRescale equals
    DeepLiftRescale on the rest of the model fed the embeddings (Captum's
    LayerDeepLift is not complete on this model: delta ~0.2), and
    LayerGradientXActivation equals Captum's."""
    from captum.attr import LayerGradientXActivation

    class Bag(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4)
            self.fc1, self.fc2 = nn.Linear(4, 5), nn.Linear(5, 2)

        def tail(self, e):
            return self.fc2(torch.relu(self.fc1(e.mean(1))))

        def forward(self, ids):
            return self.tail(self.emb(ids))

    torch.manual_seed(13)
    model = Bag().to(DTYPE).eval()
    ids = torch.tensor([[1, 2, 3], [4, 5, 6]])
    base = torch.zeros_like(ids)
    ours, delta = cu.LayerDeepLiftRescale(model, model.emb).attribute(
        ids, base, target=1, return_convergence_delta=True
    )
    with torch.no_grad():
        e, e_base = model.emb(ids), model.emb(base)
    assert_close(ours, cu.DeepLiftRescale(model.tail).attribute(e, e_base, target=1), atol=1e-12)
    assert delta.abs().max() < 1e-12
    assert_close(
        cu.LayerGradientXActivation(model, model.emb).attribute(ids, target=0),
        LayerGradientXActivation(model, model.emb).attribute(ids, target=0),
        atol=1e-12,
    )


# ------------------------------------- fused ops == the same ops written by hand
class FusedGRU(nn.Module):
    def __init__(s):
        super().__init__()
        s.gru, s.fc = nn.GRU(4, 5, batch_first=True), nn.Linear(5, 3)

    def forward(s, x):
        return s.fc(s.gru(x)[0][:, -1])


class HandGRU(nn.Module):
    """One-layer GRU written with primitive ops, sharing nn.GRU's weights."""

    def __init__(self, gru: nn.GRU, fc: nn.Linear) -> None:
        super().__init__()
        self.gru, self.fc = gru, fc

    def forward(self, x):
        g = self.gru
        h = x.new_zeros(x.shape[0], g.hidden_size)
        for t in range(x.shape[1]):
            ir, iz, i_n = (x[:, t] @ g.weight_ih_l0.T + g.bias_ih_l0).chunk(3, 1)
            hr, hz, h_n = (h @ g.weight_hh_l0.T + g.bias_hh_l0).chunk(3, 1)
            r, z = torch.sigmoid(ir + hr), torch.sigmoid(iz + hz)
            n = torch.tanh(i_n + r * h_n)
            h = (1 - z) * n + z * h
        return self.fc(h)


class LNNet(nn.Module):
    """nn.LayerNorm, or the same normalisation by hand (mean, rsqrt)."""

    def __init__(self, hand: bool) -> None:
        super().__init__()
        self.l1, self.ln, self.fc, self.hand = nn.Linear(4, 6), nn.LayerNorm(6), nn.Linear(6, 3), hand

    def forward(self, x):
        h = self.l1(x)
        if self.hand:
            d = h - h.mean(-1, keepdim=True)
            h = d * torch.rsqrt((d * d).mean(-1, keepdim=True) + self.ln.eps) * self.ln.weight + self.ln.bias
        else:
            h = self.ln(h)
        return self.fc(torch.tanh(h))


class MHANet(nn.Module):
    """nn.MultiheadAttention, or the same attention by hand (softmax, matmuls)."""

    def __init__(self, hand: bool) -> None:
        super().__init__()
        self.mha, self.fc, self.hand = nn.MultiheadAttention(8, 2, batch_first=True), nn.Linear(8, 3), hand

    def forward(self, x):
        if not self.hand:
            o = self.mha(x, x, x, need_weights=False)[0]
        else:
            b, t, e = x.shape
            qkv = (x @ self.mha.in_proj_weight.T + self.mha.in_proj_bias).chunk(3, -1)
            q, k, v = (u.view(b, t, 2, 4).transpose(1, 2) for u in qkv)
            a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(4), -1) @ v
            o = self.mha.out_proj(a.transpose(1, 2).reshape(b, t, e))
        return self.fc(torch.tanh(o).mean(1))


def _hand_pairs():
    fg = _seeded(FusedGRU(), 5)
    yield "nn.GRU", fg, HandGRU(fg.gru, fg.fc).to(DTYPE).eval(), (3, 6, 4)
    for cls, shape in ((LNNet, (3, 4)), (MHANet, (3, 5, 8))):
        fused = _seeded(cls(False), 5)
        hand = cls(True).to(DTYPE).eval()
        hand.load_state_dict(fused.state_dict())
        yield cls.__name__, fused, hand, shape


@pytest.mark.parametrize("pair", list(_hand_pairs()), ids=lambda p: p[0])
def test_fused_gru_layer_norm_and_attention_equal_the_same_ops_by_hand(pair):
    """An independent oracle for the decompositions: nn.GRU, nn.LayerNorm and
    nn.MultiheadAttention against the same computation written with
    primitive ops (sigmoid/tanh/products; mean/rsqrt; softmax and matmuls)."""
    _, fused, hand, shape = pair
    x, base = randn(*shape, seed=12), randn(*shape, seed=13)
    with torch.no_grad():
        assert_close(fused(x), hand(x), atol=1e-12, rtol=1e-12)
    for make in (cu.DeepLiftRescale, cu.GradientXInput):
        kw = {"baselines": base} if make is cu.DeepLiftRescale else {}
        assert_close(
            make(fused).attribute(x, target=0, **kw), make(hand).attribute(x, target=0, **kw), atol=1e-12, rtol=1e-9
        )
    _assert_complete(fused, x, base)


class PackedRNN(nn.Module):
    """A recurrent classifier on variable-length sequences: packed (the way
    NLP models call it) or, as the oracle, one unpadded sequence at a time."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.rnn = getattr(nn, kind)(3, 4, num_layers=2, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(8, 2)

    def forward(self, x, lengths, packed=True):
        if packed:
            seq = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            out, h = self.rnn(seq)
            out, _ = nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        else:
            out, h = self.rnn(x[:, : int(lengths[0])])
        h = h[0] if isinstance(h, tuple) else h
        return self.fc(torch.cat([h[-2], h[-1]], -1)) + out.sum(1)[:, :2]


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_packed_sequences_are_decomposed_and_equal_one_sequence_at_a_time(kind):
    model = _seeded(PackedRNN(kind), 14)
    lengths = torch.tensor([5, 2, 4])
    x, base = randn(3, 5, 3, seed=15), randn(3, 5, 3, seed=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error", cu.AttributionWarning)  # no unknown op
        attr, delta = cu.DeepLiftRescale(model).attribute(
            x, baselines=base, target=1, additional_forward_args=(lengths,), return_convergence_delta=True
        )
    with torch.no_grad():
        gap = model(x, lengths)[:, 1] - model(base, lengths)[:, 1]
    assert_close(delta, attr.sum((1, 2)) - gap, atol=1e-12, rtol=1e-9)
    assert (delta.abs() <= REL * gap.abs() + 1e-12).all(), (delta, gap)
    for i, n in enumerate(lengths.tolist()):
        one = cu.DeepLiftRescale(model).attribute(
            x[i : i + 1, :n],
            baselines=base[i : i + 1, :n],
            target=1,
            additional_forward_args=(lengths[i : i + 1], False),
        )
        assert_close(attr[i : i + 1, :n], one, atol=1e-12, rtol=1e-9)
        assert bool((attr[i, n:] == 0).all())  # padding does not reach the output


class CellLoop(nn.Module):
    """nn.LSTMCell / GRUCell / RNNCell stepped by hand, or the matching
    one-layer nn.LSTM / GRU / RNN with the same weights."""

    def __init__(self, kind: str, cell: bool) -> None:
        super().__init__()
        self.kind, self.cell = kind, cell
        self.rnn = getattr(nn, kind + "Cell")(3, 4) if cell else getattr(nn, kind)(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        if not self.cell:
            return self.fc(self.rnn(x)[0][:, -1])
        h = x.new_zeros(x.shape[0], 4)
        c = torch.zeros_like(h)
        for t in range(x.shape[1]):
            if self.kind == "LSTM":
                h, c = self.rnn(x[:, t], (h, c))
            else:
                h = self.rnn(x[:, t], h)
        return self.fc(h)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_rnn_cells_are_complete_and_equal_the_fused_layer(kind):
    cell = _seeded(CellLoop(kind, True), 17)
    layer = CellLoop(kind, False).to(DTYPE).eval()
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(layer.rnn, name + "_l0").copy_(getattr(cell.rnn, name))
        layer.fc.load_state_dict(cell.fc.state_dict())
    x, base = randn(3, 4, 3, seed=18), randn(3, 4, 3, seed=19)
    with torch.no_grad():
        assert_close(cell(x), layer(x), atol=1e-12, rtol=1e-12)
    a_cell = _assert_complete(cell, x, base)
    assert_close(a_cell, _assert_complete(layer, x, base), atol=1e-12, rtol=1e-9)
