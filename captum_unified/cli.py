"""Command line: ``captum-unified`` / ``python -m captum_unified``.

Subcommands: ``train`` (train and cache a zoo model), ``attribute`` (attribution
PNGs for a few test digits), ``reproduce {ancona,deng}`` (experiment pipeline).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import List, Optional

__all__ = ["main", "build_parser"]

_OPTIONAL = {"mlxtend": "pip install mlxtend", "sklearn": "pip install scikit-learn"}


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value


def _pixel_range(text: str) -> tuple:
    from captum_unified.data import PIXEL_RANGES

    try:
        value = tuple(float(v) for v in text.split(","))
    except ValueError:
        value = ()
    if value not in PIXEL_RANGES:
        raise argparse.ArgumentTypeError(
            f"expected one of {', '.join(f'{a:g},{b:g}' for a, b in PIXEL_RANGES)}, got {text!r}")
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=_positive_int, default=None,
                   help="training epochs (most epochs with early stopping; default: the training recipe's; "
                        "--quick: 1 for train/attribute, 10 for reproduce)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init, training and sample draw")
    p.add_argument("--n-train", type=_positive_int, default=None, help="training digits (default all 4,000)")
    p.add_argument("--threads", type=_positive_int, default=None,
                   help="torch threads (default: torch's). Reruns with the same count give identical numbers; "
                        "the docs' results use 1")
    p.add_argument("--cache-dir", default=None,
                   help="model cache folder (default $CAPTUM_UNIFIED_CACHE or ~/.cache/captum_unified)")
    p.add_argument("--quick", action="store_true", help="small sizes (tests, a first look): about a minute plus training on first use")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from captum_unified.experiments.common import METHODS, TARGETS
    from captum_unified.models import ACTIVATIONS, MODEL_NAMES, RECIPES

    parser = argparse.ArgumentParser(
        prog="captum-unified",
        description="Unified gradient attribution (Ancona et al. 2018) and Taylor "
                    "framework (Deng et al. 2021) for Captum.")
    sub = parser.add_subparsers(dest="command", metavar="{train,attribute,reproduce}")
    sub.required = True

    models = ", ".join(MODEL_NAMES)
    recipes = sorted(RECIPES)
    p = sub.add_parser("train", help="train and cache a zoo model")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp", metavar="MODEL", help=models)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None,
                   help="the model's nonlinearity (default: the paper's; deng_poly has none)")
    p.add_argument("--recipe", choices=recipes, default="adam", help="training recipe (default adam)")
    _add_common(p)

    p = sub.add_parser("attribute", help="attribution images for a (cached) model and test digits")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp", metavar="MODEL", help=models)
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None,
                   help="the model's nonlinearity (default: the paper's; deng_poly has none)")
    p.add_argument("--recipe", choices=recipes, default="adam", help="training recipe (default adam)")
    p.add_argument("--method", choices=list(METHODS), nargs="+", default=["gi"],
                   help="one or more methods")
    p.add_argument("--samples", type=_positive_int, default=3,
                   help="number of test digits, drawn class-stratified (default 3)")
    p.add_argument("--target", choices=sorted(TARGETS), default="true",
                   help="explain the true class (default) or the predicted one")
    p.add_argument("--baseline", type=float, default=-1.0,
                   help="baseline value for IG/DeepLIFT/Occlusion-1 (-1 = black background)")
    p.add_argument("--out", default="attributions", help="output folder for PNGs")
    _add_common(p)

    p = sub.add_parser("reproduce", help="run a paper's experiment pipeline")
    p.add_argument("paper", choices=["ancona", "deng"])
    p.add_argument("--samples", type=_positive_int, default=None,
                   help="test digits to explain, drawn class-stratified (default: ancona 50, deng 100)")
    p.add_argument("--subsets", type=_positive_int, default=None,
                   help="ancona: random subsets per n for Sensitivity-n (default 100); not used by deng")
    p.add_argument("--target", choices=sorted(TARGETS), default=None,
                   help="explain the true class (default, as the papers) or the predicted one")
    p.add_argument("--recipe", choices=recipes, default=None,
                   help="training recipe (default adadelta-es, Ancona et al.'s Adadelta with early stopping; "
                        "--quick: adam)")
    p.add_argument("--pixel-range", type=_pixel_range, default=None, metavar="LO,HI",
                   help="pixel scaling -1,1 or 0,1 (default: ancona -1,1 as the paper; deng 0,1)")
    p.add_argument("--out", default="results", help="output folder for CSV and report")
    p.add_argument("--baseline", type=float, default=None,
                   help="value of removed pixels and of the reference input (default 0: ancona's zero, "
                        "the black background of deng's [0, 1] pixels)")
    _add_common(p)
    return parser


def _quick(args) -> bool:
    """``--quick`` or ``CAPTUM_UNIFIED_QUICK=1`` (the tutorials' and docs' switch)."""
    return bool(args.quick) or os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"


def _config(args):
    from captum_unified.experiments.common import ExperimentConfig

    kw = dict(samples=getattr(args, "samples", None), subsets=getattr(args, "subsets", None),
              epochs=args.epochs, seed=args.seed, n_train=args.n_train, cache_dir=args.cache_dir,
              out=getattr(args, "out", "results"), show_progress=not args.no_progress,
              baseline=getattr(args, "baseline", None), target=getattr(args, "target", None),
              threads=args.threads, recipe=getattr(args, "recipe", None),
              pixel_range=getattr(args, "pixel_range", None))
    if _quick(args):
        return ExperimentConfig.quick(**kw)
    return ExperimentConfig(**{k: v for k, v in kw.items() if v is not None})


class _UsageError(Exception):
    """A bad option value found after parsing; ``main`` reports it like argparse."""


def _check(args) -> None:
    """An activation for a model that has none."""
    from captum_unified.models import has_activation

    if getattr(args, "activation", None) is not None and not has_activation(args.model):
        raise _UsageError(f"argument --activation: model {args.model} has no activation to choose; "
                          "drop --activation.")


def _check_samples(samples: int, test_labels, n_train) -> None:
    if samples > len(test_labels):
        raise _UsageError(f"argument --samples: {samples} is more than the {len(test_labels)} test digits"
                          + (f" of --n-train {n_train}" if n_train else "") + f"; give at most {len(test_labels)}.")


def _train_or_load(args, cfg, data=None):
    from captum_unified.experiments.common import recipe_for
    from captum_unified.models import load_or_train

    return load_or_train(args.model, args.activation, cache_dir=cfg.cache_dir, seed=cfg.seed, n_train=cfg.n_train,
                         data=data, show_progress=cfg.show_progress, recipe=recipe_for(cfg))


def _cmd_train(args) -> int:
    from captum_unified.experiments.common import set_threads
    from captum_unified.models import default_cache_dir

    cfg = _config(args)
    set_threads(cfg)
    model, acc = _train_or_load(args, cfg)
    print(f"{args.model} ({args.activation or 'default activation'}): test accuracy {acc:.4f}; "
          f"cache {cfg.cache_dir or default_cache_dir()}")
    return 0


def _cmd_attribute(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch
    from captum.attr import visualization as viz

    from captum_unified.data import load_mnist
    from captum_unified.experiments.common import (
        METHODS, compute_attributions, draw_samples, select_targets, set_threads,
    )
    from captum_unified.models import default_activation

    cfg = _config(args)
    set_threads(cfg)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed)
    _check_samples(args.samples, data[1][1], cfg.n_train)
    model, acc = _train_or_load(args, cfg, data)
    for p in model.parameters():
        p.requires_grad_(False)
    x, labels = draw_samples(data[1], args.samples, cfg.seed)
    target = select_targets(model, x, labels, args.target)
    with torch.no_grad():
        predicted = model(x).argmax(1)
    act = args.activation or default_activation(args.model) or "none"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for m in args.method:
        attr, _ = compute_attributions(model, m, x, target, args.baseline, cfg.ig_steps)
        for i in range(len(x)):
            a = attr[i].permute(1, 2, 0).numpy()
            if not (abs(a).max() > 0):
                a = a + 1e-12  # visualize_image_attr cannot normalise an all-zero map
            fig, _ = viz.visualize_image_attr(
                a, original_image=((x[i].permute(1, 2, 0) + 1) / 2).numpy(), method="blended_heat_map",
                sign="all", show_colorbar=True, use_pyplot=False,
                title=f"{METHODS[m][0]}: true class {int(labels[i])}, predicted {int(predicted[i])}, "
                      f"explained {int(target[i])}")
            path = out / f"{args.model}_{act}_{m}_{i}.png"
            fig.savefig(path)
            written.append(path)
    print(f"model test accuracy {acc:.4f}; wrote {len(written)} PNG files to {out}")
    return 0


def _cmd_reproduce(args) -> int:
    from captum_unified.experiments import ancona, deng

    cfg = _config(args)
    module = {"ancona": ancona, "deng": deng}[args.paper]
    # each pipeline's own default sizes, where not given on the command line
    for k, v in (module.QUICK_DEFAULTS if _quick(args) else module.DEFAULTS).items():
        if getattr(args, k, None) is None:
            setattr(cfg, k, v)
    from captum_unified.data import load_mnist

    _check_samples(cfg.samples, load_mnist(n=cfg.n_train, seed=cfg.seed)[1][1], cfg.n_train)
    paths = module.run(cfg)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check(args)
        return {"train": _cmd_train, "attribute": _cmd_attribute,
                "reproduce": _cmd_reproduce}[args.command](args)
    except _UsageError as e:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        subparsers.choices[args.command].error(str(e))
    except ImportError as e:
        name = (getattr(e, "name", None) or "").split(".")[0]
        hint = _OPTIONAL.get(name)
        msg = str(e) if hint is None or hint in str(e) else f"{e}. Install it with: {hint}"
        print(f"captum-unified: missing optional dependency: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
