"""Training recipes of the model zoo: how a zoo model is trained (part of its
cache key). Plain data, no torch: the command line lists the recipes in its
``--help`` without importing torch; :mod:`captum_unified.models` trains with them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["RECIPES", "TrainingRecipe"]


@dataclass(frozen=True)
class TrainingRecipe:
    """How a zoo model is trained (part of its cache key).

    Args:
        optimizer (str): ``"adam"`` or ``"adadelta"``.
        lr (float): learning rate (Adadelta: 1.0, Keras' default).
        epochs (int): training epochs; with ``patience`` the most epochs.
        batch_size (int): minibatch size.
        patience (int, optional): early stopping: stop when the validation loss
            has not improved for this many epochs and keep the weights of the
            best epoch (Keras' ``EarlyStopping(restore_best_weights=True)``).
            ``None``: no early stopping, no validation split.
        val_fraction (float): with ``patience``, the stratified share of the
            training digits held out for validation (not trained on).
        weight_decay (float): L2 penalty (the optimizer's ``weight_decay``).
        rho (float): Adadelta's decay (Keras 0.95; PyTorch's default is 0.9).
        eps (float): Adadelta's epsilon (Keras ``K.epsilon()`` = 1e-7).
    """

    optimizer: str = "adam"
    lr: float = 1e-3
    epochs: int = 5
    batch_size: int = 128
    patience: int | None = None
    val_fraction: float = 0.1
    weight_decay: float = 0.0
    rho: float = 0.95
    eps: float = 1e-7

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adadelta"):
            raise ValueError(f"optimizer must be 'adam' or 'adadelta', got {self.optimizer!r}.")
        if int(self.epochs) < 1 or int(self.batch_size) < 1:
            raise ValueError(f"epochs and batch_size must be >= 1, got {self.epochs} and {self.batch_size}.")
        if self.patience is not None and (int(self.patience) < 0 or not 0 < self.val_fraction < 1):
            raise ValueError("patience must be >= 0 and val_fraction in (0, 1) for early stopping.")

    def replace(self, **changes) -> TrainingRecipe:
        return dataclasses.replace(self, **changes)

    def key(self) -> str:
        """Short text for cache file names (defaults left out)."""
        k = f"e{self.epochs}-b{self.batch_size}-lr{self.lr:g}"
        if self.optimizer != "adam":
            k += f"-{self.optimizer}"
            if (self.rho, self.eps) != (0.95, 1e-7):
                k += f"-rho{self.rho:g}-eps{self.eps:g}"
        if self.patience is not None:
            k += f"-es{self.patience}v{self.val_fraction:g}"
        if self.weight_decay:
            k += f"-wd{self.weight_decay:g}"
        return k

    def describe(self) -> str:
        """One line for reports."""
        opt = (
            f"Adam (lr {self.lr:g})"
            if self.optimizer == "adam"
            else f"Adadelta (lr {self.lr:g}, rho {self.rho:g}, eps {self.eps:g})"
        )
        text = f"{opt}, batch {self.batch_size}, "
        if self.patience is None:
            text += f"{self.epochs} epochs"
        else:
            text += (
                f"early stopping on the validation loss (patience {self.patience}, at most "
                f"{self.epochs} epochs, best epoch kept; {self.val_fraction:.0%} of the training "
                "digits held out)"
            )
        if self.weight_decay:
            text += f", weight decay {self.weight_decay:g}"
        return text


#: Named training recipes. ``"adadelta-es"`` is Ancona et al.'s App. C.1 ("trained
#: using Adadelta and early stopping"), with Keras' Adadelta defaults; the patience
#: and validation share are not in the paper (ours: 10 epochs, 10%; Adadelta's validation
#: loss at lr 1 is noisy, and a short patience stops the sigmoid nets early).
RECIPES: dict[str, TrainingRecipe] = {
    "adam": TrainingRecipe("adam", lr=1e-3, epochs=5, batch_size=128),
    "adadelta-es": TrainingRecipe("adadelta", lr=1.0, epochs=100, batch_size=128, patience=10),
}
