# %% [markdown]
# # The unified backend on your own model
#
# Ancona et al. (ICLR 2018) show that Gradient*Input, epsilon-LRP and DeepLIFT
# (Rescale) are all *one* backward pass — the chain rule with each element-wise
# nonlinearity's derivative `f'(z)` replaced by a rule `g(z)`. `captum_unified`
# implements that backend once; every method is a Captum attribution class.
#
# This script runs in under a minute: `python tutorials/01_unified_backend.py`
# (set `CAPTUM_UNIFIED_QUICK=1` for even smaller sizes).

# %%
import os
import warnings

import torch
from captum.attr import DeepLift
from torch import nn

import captum_unified as cu

QUICK = os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"
torch.manual_seed(0)
warnings.filterwarnings("ignore", message="Setting forward, backward hooks")

# %% [markdown]
# ## A model written any way you like
#
# Nonlinearities may be modules, functional calls (`torch.tanh`), tensor methods
# (`x.sigmoid()`), and one activation module may be reused at several places.
# The backend intercepts all of them; Captum's `DeepLift` hooks modules only and
# does not support a reused module.


class MyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 8)
        self.fc3 = nn.Linear(8, 8)
        self.fc4 = nn.Linear(8, 3)
        self.act = nn.Softplus()  # reused twice below

    def forward(self, x):
        h = self.act(self.fc1(x))
        h = torch.tanh(self.fc2(h))  # functional activation
        h = self.act(self.fc3(h))  # the same module again
        return self.fc4(h).sigmoid()  # tensor method as the output nonlinearity


model = MyNet().double().eval()  # float64, so that methods can be compared to 1e-10
x = torch.randn(4 if QUICK else 16, 6, dtype=torch.float64)
baseline = torch.zeros_like(x)
target = 0

# %% [markdown]
# ## The methods, all on the same backend

# %%
gi = cu.GradientXInput(model).attribute(x, target=target)
lrp = cu.EpsilonLRP(model, epsilon=1e-6).attribute(x, target=target)
dl, dl_delta = cu.DeepLiftRescale(model).attribute(x, baselines=baseline, target=target, return_convergence_delta=True)
ig, ig_delta = cu.IntegratedGradients(model).attribute(
    x, baselines=baseline, target=target, n_steps=32 if QUICK else 128, return_convergence_delta=True
)
occ = cu.Occlusion1(model).attribute(x, baselines=0.0, target=target)

print("DeepLIFT completeness |delta| max:", float(dl_delta.abs().max()))
print("IG completeness       |delta| max:", float(ig_delta.abs().max()))
assert dl_delta.abs().max() < 1e-8, "DeepLIFT (Rescale) sums to S(x) - S(baseline)"

# %% [markdown]
# ## Comparison with Captum's DeepLift
#
# Captum's `DeepLift` needs every nonlinearity to be a distinct module. We write
# the same network that way (same weights) and compare: both implement the
# Rescale rule, so the attributions agree.


class MyNetModules(nn.Module):
    def __init__(self, src: MyNet):
        super().__init__()
        self.fc1, self.fc2, self.fc3, self.fc4 = src.fc1, src.fc2, src.fc3, src.fc4
        self.a1, self.a2, self.a3, self.a4 = nn.Softplus(), nn.Tanh(), nn.Softplus(), nn.Sigmoid()

    def forward(self, x):
        return self.a4(self.fc4(self.a3(self.fc3(self.a2(self.fc2(self.a1(self.fc1(x))))))))


# %%
ref = MyNetModules(model).eval()
captum_dl = DeepLift(ref).attribute(x.clone().requires_grad_(), baselines=baseline, target=target).detach()
print("max |ours - Captum DeepLift|:", float((dl - captum_dl).abs().max()))
assert torch.allclose(dl, captum_dl, atol=1e-8)

# %% [markdown]
# ## Your own rule
#
# Subclass `cu.Rule` and implement `multiplier(f, z, out, ref_z, ref_out, op)`, which
# returns `g(z)`. `f` is the element-wise nonlinearity, `z` its input,
# `out = f(z)` and `op` which op it is (`op.name`, e.g. `"tanh"`; the backend
# always passes it). Set `needs_reference = True` to get `ref_z`/`ref_out` from
# a forward pass on the baseline. Here: a "secant from the baseline, clipped at
# 0" rule, and the plain gradient written as a rule (which must equal GI).


# %%
class PositiveSecant(cu.Rule):
    needs_reference = True

    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        dz = z - ref_z
        small = dz.abs() < 1e-10
        secant = (out - ref_out) / torch.where(small, torch.ones_like(dz), dz)
        return torch.where(small, cu.derivative(f, z), secant).clamp(min=0)


class MyGradient(cu.Rule):
    def multiplier(self, f, z, out, ref_z=None, ref_out=None, op=None):
        return cu.derivative(f, z)


custom = cu.ModifiedGradient(model, PositiveSecant()).attribute(x, baselines=baseline, target=target)
mine = cu.ModifiedGradient(model, MyGradient()).attribute(x, target=target)
print("custom rule attributions, first sample:", custom[0])
assert torch.allclose(mine, gi, atol=1e-10), "the gradient as a rule gives Gradient*Input"
# every nonlinearity here is monotonic, so the secant is already >= 0 and the
# clipped rule equals DeepLIFT (Rescale)
assert torch.allclose(custom, dl, atol=1e-8)

# %% [markdown]
# ## Beyond element-wise nonlinearities: LSTMs and attention
#
# Ancona et al.'s modified chain rule changes the derivative of element-wise
# functions only; through *products* of two input-dependent values (LSTM gates,
# attention weights) their DeepLIFT keeps the ordinary product rule and loses
# completeness (§3.1). Here the backend classifies every op the model calls
# (see the docs page "What the backend does with each op"): a fused `nn.LSTM` or
# `F.scaled_dot_product_attention` is decomposed into linear ops, element-wise
# functions and products, and DeepLIFT's default product rule is the two-player
# Shapley split `(a - a')(b + b')/2 + (a + a')(b - b')/2 = ab - a'b'`, which
# keeps it exactly complete. `products="gradient"` is Ancona et al.'s original.


# %%
class TinyLSTM(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.head = nn.Linear(8, 2)

    def forward(self, seq):
        return self.head(self.lstm(seq)[0][:, -1])


lstm = TinyLSTM().double().eval()
seq = torch.randn(4, 10, 3, dtype=torch.float64)
seq_base = torch.zeros(1, 10, 3, dtype=torch.float64)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", cu.AttributionWarning)  # products='gradient' warns that it is incomplete
    _, delta_ancona = cu.DeepLiftRescale(lstm, products="gradient").attribute(
        seq, baselines=seq_base, target=1, return_convergence_delta=True
    )
_, delta_shapley = cu.DeepLiftRescale(lstm).attribute(seq, baselines=seq_base, target=1, return_convergence_delta=True)
print("LSTM completeness |delta| max, ordinary product rule:", float(delta_ancona.abs().max()))
print("LSTM completeness |delta| max, Shapley product rule: ", float(delta_shapley.abs().max()))
assert float(delta_shapley.abs().max()) < 1e-10 < float(delta_ancona.abs().max())

# %% [markdown]
# An op the backend has no rule for is never passed silently: it keeps its
# gradient and the call warns, naming it. If such an op is element-wise, give
# the method an op table that knows it (a value passed to the call; nothing
# global changes):


# %%
def with_i0(x):
    return model(torch.special.i0(x) - 1.0)


with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always", cu.AttributionWarning)
    cu.DeepLiftRescale(with_i0).attribute(x, baselines=baseline, target=target)
message = str(caught[-1].message)
print("warning:", message[: message.index(". ")])
table = cu.default_op_table().with_elementwise("i0", torch.special.i0, torch.Tensor.i0)
_, delta_i0 = cu.DeepLiftRescale(with_i0, op_table=table).attribute(
    x, baselines=baseline, target=target, return_convergence_delta=True
)
print("with i0 in the op table, completeness |delta| max:", float(delta_i0.abs().max()))

# %% [markdown]
# ## Summary
#
# | method | rule `g(z)` |
# |---|---|
# | Gradient*Input, IG | `f'(z)` |
# | epsilon-LRP | `f(z) / (z + eps sign z)` |
# | DeepLIFT (Rescale) | `(f(z) - f(z̄)) / (z - z̄)` |

# epsilon-LRP's sum is far from S(x) - S(0) here: Softplus and Sigmoid have
# f(0) != 0, where g(z) = f(z)/z blows up near 0 (Ancona et al. Sec. 4, point 5;
# the backend warns). DeepLIFT and IG stay complete.

# %%
for name, a in [("GI", gi), ("eps-LRP", lrp), ("DeepLIFT", dl), ("IG", ig), ("Occlusion-1", occ)]:
    print(f"{name:12s} sum over features, sample 0: {float(a[0].sum()):+.5f}")
with torch.no_grad():
    print("S(x) - S(0), sample 0:", float(model(x[:1])[0, target] - model(baseline[:1])[0, target]))
