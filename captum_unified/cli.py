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


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default 5; --quick: 1 for train/attribute, 10 for reproduce)")
    p.add_argument("--seed", type=int, default=0, help="seed of split, init and training")
    p.add_argument("--n-train", type=int, default=None, help="training digits (default all 4,000)")
    p.add_argument("--cache-dir", default=None,
                   help="model cache folder (default $CAPTUM_UNIFIED_CACHE or ~/.cache/captum_unified)")
    p.add_argument("--quick", action="store_true", help="small sizes (tests, a first look): about a minute plus training on first use")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from captum_unified.experiments.common import METHODS
    from captum_unified.models import ACTIVATIONS, MODEL_NAMES

    parser = argparse.ArgumentParser(
        prog="captum-unified",
        description="Unified gradient attribution (Ancona et al. 2018) and Taylor "
                    "framework (Deng et al. 2021) for Captum.")
    sub = parser.add_subparsers(dest="command", metavar="{train,attribute,reproduce}")
    sub.required = True

    p = sub.add_parser("train", help="train and cache a zoo model")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None)
    _add_common(p)

    p = sub.add_parser("attribute", help="attribution images for a (cached) model and test digits")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp")
    p.add_argument("--activation", choices=sorted(ACTIVATIONS), default=None)
    p.add_argument("--method", choices=list(METHODS), nargs="+", default=["gi"],
                   help="one or more methods")
    p.add_argument("--samples", type=int, default=3, help="number of test digits")
    p.add_argument("--baseline", type=float, default=-1.0,
                   help="baseline value for IG/DeepLIFT/Occlusion-1 (-1 = black background)")
    p.add_argument("--out", default="attributions", help="output folder for PNGs")
    _add_common(p)

    p = sub.add_parser("reproduce", help="run a paper's experiment pipeline")
    p.add_argument("paper", choices=["ancona", "deng"])
    p.add_argument("--samples", type=int, default=None, help="test digits to explain (default 100; ancona 50)")
    p.add_argument("--subsets", type=int, default=None, help="random subsets per n for Sensitivity-n (default 100)")
    p.add_argument("--out", default="results", help="output folder for CSV and report")
    p.add_argument("--baseline", type=float, default=None,
                   help="value of removed pixels and of the reference input (default: ancona 0, "
                        "the paper's zero; deng -1, the black background of [-1, 1] pixels)")
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
              baseline=getattr(args, "baseline", None))
    if _quick(args):
        return ExperimentConfig.quick(**kw)
    return ExperimentConfig(**{k: v for k, v in kw.items() if v is not None})


def _cmd_train(args) -> int:
    from captum_unified.models import default_cache_dir, load_or_train

    cfg = _config(args)
    model, acc = load_or_train(args.model, args.activation, cache_dir=cfg.cache_dir, epochs=cfg.epochs,
                               batch_size=cfg.batch_size, seed=cfg.seed, n_train=cfg.n_train, show_progress=cfg.show_progress)
    print(f"{args.model} ({args.activation or 'default activation'}): test accuracy {acc:.4f}; "
          f"cache {cfg.cache_dir or default_cache_dir()}")
    return 0


def _cmd_attribute(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch
    from captum.attr import visualization as viz

    from captum_unified.data import load_mnist
    from captum_unified.experiments.common import METHODS, compute_attributions
    from captum_unified.models import load_or_train

    cfg = _config(args)
    data = load_mnist(n=cfg.n_train, seed=cfg.seed)
    model, acc = load_or_train(args.model, args.activation, cache_dir=cfg.cache_dir, epochs=cfg.epochs,
                               batch_size=cfg.batch_size, seed=cfg.seed, n_train=cfg.n_train, data=data,
                               show_progress=cfg.show_progress)
    for p in model.parameters():
        p.requires_grad_(False)
    x = data[1][0][: args.samples]
    with torch.no_grad():
        target = model(x).argmax(1)
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
                title=f"{METHODS[m][0]}, digit {i}, class {int(target[i])}")
            path = out / f"{args.model}_{m}_{i}.png"
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
    paths = module.run(cfg)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return {"train": _cmd_train, "attribute": _cmd_attribute,
                "reproduce": _cmd_reproduce}[args.command](args)
    except ImportError as e:
        name = (getattr(e, "name", None) or "").split(".")[0]
        hint = _OPTIONAL.get(name)
        msg = str(e) if hint is None or hint in str(e) else f"{e}. Install it with: {hint}"
        print(f"captum-unified: missing optional dependency: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
