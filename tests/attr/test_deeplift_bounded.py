"""DeepLIFT stays exact and bounded when input and baseline are far apart
(issue 17): Captum's own test models with its far baselines, softmax and
attention swept to x1000 logit scales, Hugging Face models with large
initialisations and zero baselines, a trained character-level GPT, models that
fold their batch; every number checked from forward passes of the untouched
model, boundedness against many-step Integrated Gradients where that converges.

Completeness is measured relative to ``|f(x) - f(b)|`` plus the model's own
floating-point noise: the gap between its forward pass in the tested dtype and
in float64 (a float32 model whose logits are 1e4 cannot compute a change of 1e-6
in its softmax output; nor can any attribution of it)."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
from captum.attr import NoiseTunnel

import captum_unified as cu
from captum_unified.backend.finite import NonFiniteError
from captum_unified.rules import RULES

TOL = {torch.float32: 1e-4, torch.float64: 1e-8}


def _target_output(model, x, target):
    with torch.no_grad():
        out = model(x)
    return out[:, target] if out.dim() > 1 else out


def assert_complete(model, x, b, attr, target, dtype):
    """|sum attr - (f(x) - f(b))| <= tol |f(x) - f(b)| + 10 x the model's own rounding in ``dtype``:
    its float32 forward pass's gap to float64 (scaled by eps64 / eps32 for float64) plus a few
    ulps of the outputs (1e-12 of them in float64)."""
    bb = b.expand_as(x) if isinstance(b, torch.Tensor) else torch.full_like(x, float(b))
    fx, fb = _target_output(model, x, target).double(), _target_output(model, bb, target).double()
    m32, m64 = _as(model, torch.float32), _as(model, torch.float64)
    gap = sum(
        (_target_output(m32, t.float(), target).double() - _target_output(m64, t.double(), target)).abs()
        for t in (x, bb)
    )
    eps = torch.finfo(dtype).eps
    # float64: outputs saturated in float32 (gap 0) still carry the rounding of logits of 1e4 and more
    floor = {torch.float32: 4 * eps, torch.float64: 1e-12}[dtype]
    noise = gap * (eps / torch.finfo(torch.float32).eps) + floor * (fx.abs() + fb.abs())
    err = (attr.double().flatten(1).sum(1) - (fx - fb)).abs()
    bound = TOL[dtype] * (fx - fb).abs() + 10 * noise + 1e3 * torch.finfo(dtype).tiny  # (values that underflow)
    assert torch.isfinite(attr).all()
    assert (err <= bound).all(), f"errors {err.tolist()} > bounds {bound.tolist()}"


def _as(model, dtype):
    import copy

    return copy.deepcopy(model).to(dtype)


def _dl(model, x, b, target, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)
        return cu.DeepLiftRescale(model, **kw).attribute(x, baselines=b, target=target)


# --------------------------------------------------------- captum's models
def _captum_models():
    from captum.testing.helpers.basic_models import (
        BasicModel_ConvNet,
        BasicModel_ConvNet_MaxPool1d,
        BasicModel_ConvNet_MaxPool3d,
        BasicModel_MaxPool_ReLU,
    )

    return [
        ("ConvNet", BasicModel_ConvNet, (4, 1, 10, 10)),
        ("MaxPool1d", BasicModel_ConvNet_MaxPool1d, (4, 1, 10)),
        ("MaxPool3d", BasicModel_ConvNet_MaxPool3d, (2, 1, 10, 10, 10)),
        ("MaxPool_ReLU_inplace", lambda: BasicModel_MaxPool_ReLU(inplace=True), (4, 1, 6)),
    ]


@pytest.mark.parametrize("name, make, shape", _captum_models(), ids=[c[0] for c in _captum_models()])
@pytest.mark.parametrize("scale", [1, 20, 500])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_captum_test_models_with_far_baselines(name, make, shape, scale, dtype):
    torch.manual_seed(0)
    model = make().to(dtype).eval()
    x = torch.randn(shape, dtype=dtype)
    b = scale * torch.randn(shape, dtype=dtype)
    attr = _dl(model, x, b, 0)
    assert_complete(model, x, b, attr, 0, dtype)


# --------------------------------------------------- softmax and attention
def _softmax_model(scale, dtype):
    torch.manual_seed(1)
    lin = nn.Linear(8, 5)
    with torch.no_grad():
        lin.weight.mul_(scale)
        lin.bias.mul_(scale)
    return nn.Sequential(lin, nn.Softmax(-1)).to(dtype).eval()


class Block(nn.Module):
    """LayerNorm, softmax attention (q/k scaled), GELU MLP, residuals."""

    def __init__(self, scale, d=16, heads=2):
        super().__init__()
        torch.manual_seed(2)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        with torch.no_grad():
            self.q.weight.mul_(scale)
            self.k.weight.mul_(scale)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads, self.head = heads, nn.Linear(d, 3)

    def forward(self, x):
        b, n, d = x.shape
        y = self.ln1(x)
        q, k, v = (m(y).view(b, n, self.heads, -1).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, -1)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(1))


@pytest.mark.parametrize("scale", [1, 10, 100, 1000])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_softmax_and_attention_exact_at_every_logit_scale(scale, dtype):
    g = torch.Generator().manual_seed(3)
    for model, shape in ((_softmax_model(scale, dtype), (16, 8)), (Block(scale).to(dtype).eval(), (4, 6, 16))):
        x = torch.randn(shape, generator=g).to(dtype)
        b = torch.randn(shape, generator=g).to(dtype)
        for target in (0, 2):
            attr = _dl(model, x, b, target)
            assert_complete(model, x, b, attr, target, dtype)


@pytest.mark.parametrize("scale", [1, 3, 10])
def test_bounded_against_integrated_gradients_where_it_converges(scale):
    """Sum |attr| of the order of 256-step IG's, and correlated with it, where
    IG itself is complete (the plain Shapley split: 1e5 x and more at x10)."""
    g = torch.Generator().manual_seed(4)
    for model, shape in ((_softmax_model(scale, torch.float64), (32, 8)), (Block(scale).double().eval(), (4, 6, 16))):
        x = torch.randn(shape, generator=g, dtype=torch.float64)
        b = torch.randn(shape, generator=g, dtype=torch.float64)
        ig = cu.IntegratedGradients(model).attribute(x, baselines=b, target=0, n_steps=256)
        df = _target_output(model, x, 0) - _target_output(model, b, 0)
        assert ((ig.flatten(1).sum(1) - df).abs() <= 1e-3 * df.abs().max()).all()  # IG converged here
        attr = _dl(model, x, b, 0)
        ratio = attr.abs().sum() / ig.abs().sum()
        corr = torch.corrcoef(torch.stack([attr.flatten(), ig.flatten()]))[0, 1]
        assert 0.4 < ratio < 2.5, (type(model).__name__, float(ratio))
        assert corr > 0.75, (type(model).__name__, float(corr))
    if scale == 10:  # the old split on the same block: far from bounded
        shapley = _dl(Block(10).double().eval(), x, b, 0, norm="decompose", softmax="shift")
        assert shapley.abs().sum() > 100 * ig.abs().sum()


# --------------------------------------------------------- Hugging Face
transformers = pytest.importorskip("transformers")


def _hf(kind, init, dtype):
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    if kind == "gpt2":
        cfg = transformers.GPT2Config(
            vocab_size=50, n_positions=16, n_embd=32, n_layer=2, n_head=4, initializer_range=init
        )
        model = transformers.GPT2LMHeadModel(cfg)
    elif kind == "llama":
        cfg = transformers.LlamaConfig(
            vocab_size=50,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            max_position_embeddings=16,
            initializer_range=init,
        )
        model = transformers.LlamaForCausalLM(cfg)
    else:
        cfg = transformers.T5Config(vocab_size=50, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4)
        model = transformers.T5EncoderModel(cfg)
    return model.to(dtype).eval()


class LogProb(nn.Module):
    """Embeddings -> log p of every token at the last position (T5: a slice of its last state)."""

    def __init__(self, model, kind):
        super().__init__()
        self.model, self.kind = model, kind

    def forward(self, e):
        out = self.model(inputs_embeds=e)
        if self.kind == "t5":
            return out.last_hidden_state[:, -1, :8]
        return torch.log_softmax(out.logits[:, -1], -1)


@pytest.mark.parametrize(
    "kind, init, base", [("gpt2", 1.0, "zero"), ("gpt2", 1.0, "random"), ("llama", 0.3, "zero"), ("t5", 1.0, "zero")]
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_hugging_face_models_with_large_weights_and_zero_baselines(kind, init, base, dtype):
    model = _hf(kind, init, dtype)
    f = LogProb(model, kind)
    ids = torch.randint(0, 50, (2, 10), generator=torch.Generator().manual_seed(5))
    e = model.get_input_embeddings()(ids).detach()
    b = (
        torch.zeros_like(e)
        if base == "zero"
        else torch.randn(e.shape, generator=torch.Generator().manual_seed(6)).to(dtype)
    )
    attr = _dl(f, e, b, 3)
    if kind == "llama" and dtype == torch.float64:
        # LlamaRMSNorm computes in float32 even in a float64 model: float32's precision there
        df = _target_output(f, e, 3) - _target_output(f, b, 3)
        err = (attr.flatten(1).sum(1) - df).abs()
        assert (err <= 1e-5 * df.abs() + 1e-6).all(), err
    else:
        assert_complete(f, e, b, attr, 3, dtype)
    # bounded: of the order of the output change (the Shapley split: 1e9 x and more)
    df = (_target_output(f, e, 3) - _target_output(f, b, 3)).abs()
    mass = attr.abs().flatten(1).sum(1)
    assert (mass <= 100 * df + 1e-6).all(), (mass / df).tolist()


# ------------------------------------------------------ a trained model
def test_trained_char_gpt_complete_and_its_token_deletion_above_random_and_gradient_x_input():
    from captum_unified.text import encode_text, load_corpus, load_or_train_char_lm

    model = load_or_train_char_lm("gpt2", "quick").model
    ids_all = encode_text(load_corpus("pydoc").validation)
    g = torch.Generator().manual_seed(0)
    n, length = 24, 32
    starts = torch.randint(0, len(ids_all) - length - 1, (n,), generator=g)
    ids = torch.stack([ids_all[s : s + length] for s in starts])
    emb = model.get_input_embeddings()(ids).detach()
    with torch.no_grad():
        target = model(input_ids=ids).logits[:, -1].argmax(-1)
    f = LogProb(model, "gpt2")
    base = torch.zeros_like(emb)
    attr = _dl(f, emb, base, target)
    with torch.no_grad():
        df = f(emb).gather(1, target[:, None])[:, 0] - f(base).gather(1, target[:, None])[:, 0]
    assert ((attr.flatten(1).sum(1) - df).abs() <= 1e-4 * df.abs() + 1e-5).all()

    def logp(e):
        with torch.no_grad():
            return f(e).gather(1, target[:, None])[:, 0]

    def deletion(scores):  # LeRF - MoRF: delete tokens (zero embedding) least / most relevant first
        rows = torch.arange(n)
        curves = []
        for order in (scores.argsort(1), scores.argsort(1, descending=True)):
            e, curve = emb.clone(), [logp(emb)]
            for k in range(length):
                e[rows, order[:, k]] = 0
                curve.append(logp(e))
            curves.append(torch.stack(curve, 1).mean(1))
        return float((curves[0] - curves[1]).mean())

    dl = deletion(attr.sum(-1))
    gi = deletion(cu.GradientXInput(f).attribute(emb, target=target).sum(-1))
    rand = deletion(torch.rand(n, length, generator=g))
    assert dl > rand + 1.0 and dl > gi + 1.0, (dl, gi, rand)


# --------------------------------------------------- models that fold the batch
class Windows(nn.Module):
    """Swin's window partition: the batch folded into the windows and back."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(7)
        self.ln, self.q, self.head = nn.LayerNorm(4), nn.Linear(4, 4), nn.Linear(4, 3)

    def forward(self, x):  # (B, H, W, C)
        b, h, w, c = x.shape
        x = self.ln(x).view(b, h // 2, 2, w // 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, 4, c)
        x = torch.softmax(self.q(x) @ x.transpose(-1, -2), -1) @ x
        x = x.view(b, h // 2, w // 2, 2, 2, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return self.head(x.mean((1, 2)))


class Folded(nn.Module):
    """``reshape(B * k, ...)``: each sample split into k rows, then joined."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(8)
        self.l1, self.l2 = nn.Linear(3, 3), nn.Linear(12, 2)

    def forward(self, x):
        b = x.shape[0]
        h = torch.tanh(self.l1(x.reshape(b * 4, 3)))
        return self.l2((h * torch.sigmoid(h)).reshape(b, 12))


class SeqFirstAttention(nn.Module):
    """nn.MultiheadAttention on (L, B, E), the batch in the middle."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(9)
        self.mha, self.head = nn.MultiheadAttention(8, 2), nn.Linear(8, 2)

    def forward(self, x):  # (B, L, E)
        s = x.transpose(0, 1)
        out, _ = self.mha(s, s, s)
        return self.head(out.mean(0))


@pytest.mark.parametrize(
    "make, shape",
    [(Windows, (3, 4, 4, 4)), (Folded, (3, 12)), (SeqFirstAttention, (3, 5, 8))],
    ids=["swin", "fold", "mha"],
)
def test_models_that_fold_the_batch_take_scalar_and_batch_1_baselines(make, shape):
    model = make().double().eval()
    x = torch.randn(shape, dtype=torch.float64)
    one = torch.randn((1, *shape[1:]), dtype=torch.float64)
    full = _dl(model, x, one.expand(shape).clone(), 0)
    torch.testing.assert_close(_dl(model, x, one, 0), full, atol=1e-12, rtol=1e-10)
    assert_complete(model, x, one, full, 0, torch.float64)
    zeros = _dl(model, x, torch.zeros(shape, dtype=torch.float64), 0)
    torch.testing.assert_close(_dl(model, x, 0.0, 0), zeros, atol=1e-12, rtol=1e-10)


def test_control_flow_that_depends_on_the_input_is_still_an_error():
    def f(x):
        h = torch.tanh(x)
        return torch.sigmoid(h).sum(-1, keepdim=True) if x.sum() > 0 else h.sum(-1, keepdim=True)

    with pytest.raises(RuntimeError, match="control flow"):
        cu.DeepLiftRescale(f).attribute(torch.ones(2, 3), baselines=-torch.ones(2, 3), target=0)


# ------------------------------------------------ every rule, with deltas
@pytest.mark.parametrize("name", [n for n in RULES if RULES[n]().modifies_gradient])
def test_modified_gradient_with_every_rule_returns_deltas_also_in_noise_tunnel(name):
    model = nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    x, b = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, 5, dtype=torch.float64)
    method = cu.ModifiedGradient(model, RULES[name]())
    attr, delta = method.attribute(x, baselines=b, target=0, return_convergence_delta=True)
    df = _target_output(model, x, 0) - _target_output(model, b, 0)
    torch.testing.assert_close(delta, attr.sum(-1) - df)  # Captum's convention: sum(attr) - (f(x) - f(b))
    attr, delta = NoiseTunnel(method).attribute(
        x, baselines=b, target=0, nt_samples=2, stdevs=0.1, return_convergence_delta=True
    )
    assert delta.shape == (6,) and torch.isfinite(delta).all()


# ------------------------------------------------------------ no NaN or inf
def test_a_model_that_overflows_is_an_error_naming_the_op():
    class Overflows(nn.Module):
        def forward(self, x):
            return torch.exp(50 * x).sum(-1, keepdim=True)

    with pytest.raises(NonFiniteError, match="'torch.exp' in the baseline pass"):
        cu.DeepLiftRescale(Overflows()).attribute(torch.zeros(2, 3), baselines=torch.full((2, 3), 3.0), target=0)


def test_a_backward_overflow_is_an_error_naming_the_op():
    """sqrt at 0: a finite output, an infinite derivative (Gradient*Input would give inf * 0 = NaN)."""

    def f(x):
        return (torch.sqrt(x) + x).sum(-1, keepdim=True)

    with pytest.raises(NonFiniteError, match="backward pass of op .*'torch.sqrt'"):
        cu.GradientXInput(f).attribute(torch.tensor([[0.0, 1.0, 2.0]]), target=0)


def test_an_overflow_of_the_rule_not_of_the_model_says_so_and_names_the_bounded_option():
    """The plain Shapley split of softmax on sharpened attention: the model's own softmax is finite,
    the split's halves are not; the error must not blame the model (nor suggest float64, which fails too)."""
    model = Block(1000).double().eval()
    g = torch.Generator().manual_seed(3)
    x, b = (torch.randn((2, 6, 16), generator=g, dtype=torch.float64) for _ in range(2))
    with pytest.raises(NonFiniteError, match="rule's treatment of op 'torch.softmax'.*softmax='logsumexp'") as err:
        _dl(model, x, b, 0, softmax="shift", norm="decompose")
    assert "model's own forward pass" not in str(err.value)
