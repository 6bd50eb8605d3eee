"""What the commands share: the usage error, ``--quick``, the experiment
configuration from the options, the checks run before any training, and the
zoo model of ``train`` / ``attribute``. Imported by ``--help`` too: the
functions that need torch import it when they run."""

from __future__ import annotations

import os

from captum_unified.registry import ZOO

__all__ = ["UsageError", "is_quick", "experiment_config", "check_activation", "check_samples", "train_or_load"]


def is_quick(args) -> bool:
    """``--quick`` or ``CAPTUM_UNIFIED_QUICK=1`` (the tutorials' and docs' switch)."""
    return bool(args.quick) or os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"


def experiment_config(args):
    from captum_unified.experiments.common import ExperimentConfig  # torch: not for --help

    kw = dict(
        samples=getattr(args, "samples", None),
        subsets=getattr(args, "subsets", None),
        epochs=args.epochs,
        seed=args.seed,
        n_train=args.n_train,
        cache_dir=args.cache_dir,
        out=getattr(args, "out", "results"),
        show_progress=not args.no_progress,
        baseline=getattr(args, "baseline", None),
        target=getattr(args, "target", None),
        threads=args.threads,
        recipe=getattr(args, "recipe", None),
        pixel_range=getattr(args, "pixel_range", None),
        lxt_python=getattr(args, "lxt_python", None),
    )
    if is_quick(args):
        return ExperimentConfig.quick(**kw)
    return ExperimentConfig(**{k: v for k, v in kw.items() if v is not None})


class UsageError(Exception):
    """A bad option value found after parsing; ``main`` reports it like argparse."""


def check_activation(args) -> None:
    """An activation for a model that has none."""
    if getattr(args, "activation", None) is not None and ZOO[args.model].activation is None:
        raise UsageError(f"argument --activation: model {args.model} has no activation to choose; drop --activation.")


def check_samples(samples: int, test_labels, n_train=None, what: str = "test digits") -> None:
    """``--samples`` larger than the data (``test_labels``: one entry per sample)."""
    if samples > len(test_labels):
        raise UsageError(
            f"argument --samples: {samples} is more than the {len(test_labels)} {what}"
            + (f" of --n-train {n_train}" if n_train else "")
            + f"; give at most {len(test_labels)}."
        )


def train_or_load(args, cfg, data=None):
    from captum_unified.experiments.common import recipe_for  # torch: not for --help
    from captum_unified.models import load_or_train  # torch: not for --help

    return load_or_train(
        args.model,
        args.activation,
        cache_dir=cfg.cache_dir,
        seed=cfg.seed,
        n_train=cfg.n_train,
        data=data,
        show_progress=cfg.show_progress,
        recipe=recipe_for(cfg),
    )
