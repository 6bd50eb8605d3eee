"""Command line: ``captum-unified`` / ``python -m captum_unified``.

Subcommands: ``train`` (train and cache a zoo model), ``attribute`` (attribution
PNGs for a few test digits), ``reproduce {ancona,deng}`` (experiment pipeline),
``evaluate`` (methods x metrics over a data set, resumable; under ``torchrun``
the samples are shared by the processes).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

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
            f"expected one of {', '.join(f'{a:g},{b:g}' for a, b in PIXEL_RANGES)}, got {text!r}"
        )
    return value


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--epochs",
        type=_positive_int,
        default=None,
        help="training epochs (most epochs with early stopping; default: the training recipe's; "
        "--quick: 1 for train/attribute, 10 for reproduce)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of split, init, training and sample draw")
    p.add_argument("--n-train", type=_positive_int, default=None, help="training digits (default all 4,000)")
    p.add_argument(
        "--threads",
        type=_positive_int,
        default=None,
        help="torch threads (default: torch's). Reruns with the same count give identical numbers; "
        "the docs' results use 1",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="model cache folder (default $CAPTUM_UNIFIED_CACHE or ~/.cache/captum_unified)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="small sizes (tests, a first look): about a minute plus training on first use",
    )
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def build_parser() -> argparse.ArgumentParser:
    from captum_unified.experiments.common import METHODS, TARGETS
    from captum_unified.models import ACTIVATIONS, MODEL_NAMES, RECIPES

    parser = argparse.ArgumentParser(
        prog="captum-unified",
        description="Unified gradient attribution (Ancona et al. 2018) and Taylor "
        "framework (Deng et al. 2021) for Captum.",
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,attribute,reproduce,evaluate}")
    sub.required = True

    models = ", ".join(MODEL_NAMES)
    recipes = sorted(RECIPES)
    p = sub.add_parser("train", help="train and cache a zoo model")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp", metavar="MODEL", help=models)
    p.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default=None,
        help="the model's nonlinearity (default: the paper's; deng_poly has none)",
    )
    p.add_argument("--recipe", choices=recipes, default="adam", help="training recipe (default adam)")
    _add_common(p)

    p = sub.add_parser("attribute", help="attribution images for a (cached) model and test digits")
    p.add_argument("--model", choices=MODEL_NAMES, default="ancona_mlp", metavar="MODEL", help=models)
    p.add_argument(
        "--activation",
        choices=sorted(ACTIVATIONS),
        default=None,
        help="the model's nonlinearity (default: the paper's; deng_poly has none)",
    )
    p.add_argument("--recipe", choices=recipes, default="adam", help="training recipe (default adam)")
    p.add_argument("--method", choices=list(METHODS), nargs="+", default=["gi"], help="one or more methods")
    p.add_argument(
        "--samples", type=_positive_int, default=3, help="number of test digits, drawn class-stratified (default 3)"
    )
    p.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default="true",
        help="explain the true class (default) or the predicted one",
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=-1.0,
        help="baseline value for IG/DeepLIFT/Occlusion-1 (-1 = black background)",
    )
    p.add_argument("--out", default="attributions", help="output folder for PNGs")
    _add_common(p)

    p = sub.add_parser("reproduce", help="run a paper's experiment pipeline")
    p.add_argument("paper", choices=["ancona", "deng"])
    p.add_argument(
        "--samples",
        type=_positive_int,
        default=None,
        help="test digits to explain, drawn class-stratified (default: ancona 50, deng 100)",
    )
    p.add_argument(
        "--subsets",
        type=_positive_int,
        default=None,
        help="ancona: random subsets per n for Sensitivity-n (default 100); not used by deng",
    )
    p.add_argument(
        "--target",
        choices=sorted(TARGETS),
        default=None,
        help="explain the true class or the predicted one (default: each paper's, ancona true, deng predicted)",
    )
    p.add_argument(
        "--recipe",
        choices=recipes,
        default=None,
        help="training recipe (default adadelta-es, Ancona et al.'s Adadelta with early stopping; --quick: adam)",
    )
    p.add_argument(
        "--pixel-range",
        type=_pixel_range,
        default=None,
        metavar="LO,HI",
        help="pixel scaling -1,1 or 0,1 (default: ancona -1,1 as the paper; deng 0,1)",
    )
    p.add_argument("--out", default="results", help="output folder for CSV and report")
    p.add_argument(
        "--baseline",
        type=float,
        default=None,
        help="value of removed pixels and of the reference input (default 0: ancona's zero, "
        "the black background of deng's [0, 1] pixels)",
    )
    _add_common(p)

    from captum_unified.metrics.registry import METRICS

    p = sub.add_parser(
        "evaluate",
        help="evaluate methods x metrics over a data set (resumable; torchrun shards it)",
        description="Attributions of several methods scored by several metrics, per sample, as tidy rows "
        "(CSV, or Parquet with pyarrow). Without --model: the shipped MNIST digits and a zoo "
        "model (trained and cached on first use). Rerun the same command to resume. Under "
        "torchrun --nproc_per_node=N the batches are shared by the N processes; the rows are "
        "the same as on one process.",
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your model: an importable function returning (model, dataset); the dataset is a "
        "map-style dataset of (input, label) or a tuple of tensors (inputs, labels)",
    )
    p.add_argument(
        "--zoo-model",
        choices=MODEL_NAMES,
        default="ancona_cnn",
        help="zoo model of the default evaluation (default ancona_cnn)",
    )
    p.add_argument("--methods", choices=list(METHODS), nargs="+", default=None, help="methods (default: all)")
    p.add_argument(
        "--metrics",
        choices=[m for m in METRICS if m not in ("bounding_box_accuracy", "percentage_change")],
        nargs="+",
        default=None,
        help="metrics (default: sensitivity_n infidelity region_perturbation). Not offered here: "
        "bounding_box_accuracy needs a localisation data set with a box per sample (the digits have "
        "none; see reproduce deng or the Python API with (inputs, labels, boxes)), percentage_change "
        "needs a reference attribution per method (a Taylor reformulation; Python API: "
        "PercentageChange(references))",
    )
    p.add_argument(
        "--out",
        default=os.path.join("results", "evaluation.csv"),
        help="rows file, .csv or .parquet (default results/evaluation.csv); finished batches "
        "are kept in <out>.parts/ for resuming",
    )
    p.add_argument(
        "--samples",
        type=_positive_int,
        default=None,
        help="samples to evaluate, at most the data set's size (default 100, --quick 10; zoo: seeded, "
        "class-stratified test digits, equal counts per class; the drawn test indices are written "
        "to <out>.samples.csv)",
    )
    p.add_argument("--batch-size", type=_positive_int, default=None, help="samples per batch (default 16, --quick 4)")
    p.add_argument(
        "--subsets", type=_positive_int, default=None, help="Sensitivity-n subsets per n (default 100, --quick 10)"
    )
    p.add_argument(
        "--n-list",
        type=_positive_int,
        nargs="+",
        default=None,
        help="Sensitivity-n subset sizes (default: 15 log-spaced sizes up to 80%% of the pixels)",
    )
    p.add_argument("--patch-size", type=_positive_int, default=4, help="infidelity square side (default 4)")
    p.add_argument(
        "--perturbations",
        type=_positive_int,
        default=None,
        help="infidelity squares per sample (default 10, --quick 4)",
    )
    p.add_argument(
        "--region-steps", type=_positive_int, default=None, help="region perturbation steps (default 16, --quick 8)"
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=-1.0,
        help="value of removed pixels and reference input (default -1, the black background)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK when CUDA is there), cpu or cuda")
    _add_common(p)
    return parser


def _quick(args) -> bool:
    """``--quick`` or ``CAPTUM_UNIFIED_QUICK=1`` (the tutorials' and docs' switch)."""
    return bool(args.quick) or os.environ.get("CAPTUM_UNIFIED_QUICK") == "1"


def _config(args):
    from captum_unified.experiments.common import ExperimentConfig

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
    )
    if _quick(args):
        return ExperimentConfig.quick(**kw)
    return ExperimentConfig(**{k: v for k, v in kw.items() if v is not None})


class _UsageError(Exception):
    """A bad option value found after parsing; ``main`` reports it like argparse."""


def _check(args) -> None:
    """An activation for a model that has none."""
    from captum_unified.models import has_activation

    if getattr(args, "activation", None) is not None and not has_activation(args.model):
        raise _UsageError(f"argument --activation: model {args.model} has no activation to choose; drop --activation.")


def _check_samples(samples: int, test_labels, n_train=None, what: str = "test digits") -> None:
    """``--samples`` larger than the data (``test_labels``: one entry per sample)."""
    if samples > len(test_labels):
        raise _UsageError(
            f"argument --samples: {samples} is more than the {len(test_labels)} {what}"
            + (f" of --n-train {n_train}" if n_train else "")
            + f"; give at most {len(test_labels)}."
        )


def _train_or_load(args, cfg, data=None):
    from captum_unified.experiments.common import recipe_for
    from captum_unified.models import load_or_train

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


def _cmd_train(args) -> int:
    from captum_unified.experiments.common import set_threads
    from captum_unified.models import default_cache_dir

    cfg = _config(args)
    set_threads(cfg)
    model, acc = _train_or_load(args, cfg)
    print(
        f"{args.model} ({args.activation or 'default activation'}): test accuracy {acc:.4f}; "
        f"cache {cfg.cache_dir or default_cache_dir()}"
    )
    return 0


def _cmd_attribute(args) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import torch
    from captum.attr import visualization as viz

    from captum_unified.data import load_mnist
    from captum_unified.experiments.common import (
        METHODS,
        compute_attributions,
        draw_samples,
        select_targets,
        set_threads,
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
                a,
                original_image=((x[i].permute(1, 2, 0) + 1) / 2).numpy(),
                method="blended_heat_map",
                sign="all",
                show_colorbar=True,
                use_pyplot=False,
                title=f"{METHODS[m][0]}: true class {int(labels[i])}, predicted {int(predicted[i])}, "
                f"explained {int(target[i])}",
            )
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


def _load_user_model(spec: str):
    import importlib

    module, sep, func = spec.partition(":")
    if not sep or not module or not func:
        raise SystemExit(f"captum-unified evaluate: --model must be MODULE:FUNCTION, got {spec!r}.")
    made = getattr(importlib.import_module(module), func)()
    if not isinstance(made, (tuple, list)) or len(made) != 2:
        raise SystemExit(f"captum-unified evaluate: {spec}() must return (model, dataset).")
    return made


def _subset(data, n: int | None):
    """The first ``n`` samples of the user's data (``--samples``; more than it holds is a usage error)."""
    if n is None:
        return data
    import torch

    tensors = isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data)
    _check_samples(n, data[0] if tensors else range(len(data)), what="samples of the --model data set")
    if tensors:
        return tuple(t[:n] for t in data)
    return torch.utils.data.Subset(data, range(n))


def _write_samples(path: str, pick, labels) -> None:
    """``<out>.samples.csv``: position in the evaluated data (the rows' ``sample_index``),
    index among the test digits, label."""
    import csv

    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["sample_index", "test_index", "label"])
        w.writerows([i, int(t), int(c)] for i, (t, c) in enumerate(zip(pick, labels)))
    os.replace(tmp, path)


def _given(value, default):
    """An option's value, or ``default`` when it was not given (never for a given 0)."""
    return default if value is None else value


def _cmd_evaluate(args) -> int:
    import time

    import torch
    import torch.distributed as dist

    from captum_unified.data import class_counts, load_mnist, stratified_sample
    from captum_unified.experiments.common import METHODS, PAPER_METHODS, compute_attributions
    from captum_unified.metrics import Infidelity, RegionPerturbation, SensitivityN, evaluate
    from captum_unified.metrics.runner import ResumeMismatchError
    from captum_unified.models import load_or_train

    quick = _quick(args)
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    distributed = world > 1
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.device == "auto":
        device = torch.device(f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu")
    else:
        device = torch.device(args.device if args.device != "cuda" else f"cuda:{local_rank}")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if distributed and not dist.is_initialized():
        dist.init_process_group(os.environ.get("CAPTUM_UNIFIED_BACKEND", "nccl" if device.type == "cuda" else "gloo"))
    rank = dist.get_rank() if distributed else 0
    say = print if rank == 0 else (lambda *a, **k: None)
    try:
        samples = args.samples if args.samples is not None else (10 if quick else 100)
        if args.model is not None:
            model, data = _load_user_model(args.model)
            data = _subset(data, args.samples)
            what = f"{args.model}"
        else:
            cfg = _config(args)
            digits = load_mnist(n=cfg.n_train, seed=cfg.seed)
            _check_samples(samples, digits[1][1], cfg.n_train)  # before training

            def zoo_model(show_progress: bool):
                return load_or_train(
                    args.zoo_model,
                    cache_dir=cfg.cache_dir,
                    epochs=cfg.epochs,
                    batch_size=cfg.batch_size,
                    seed=cfg.seed,
                    n_train=cfg.n_train,
                    data=digits,
                    show_progress=show_progress,
                )

            if rank == 0:  # train (or load) once, then the other processes load the cache
                model, acc = zoo_model(cfg.show_progress)
            if distributed:
                dist.barrier()
            if rank != 0:
                model, acc = zoo_model(False)
            x_test, y_test = digits[1]
            pick = stratified_sample(y_test, samples, cfg.seed)  # the reproductions' draw
            idx = torch.as_tensor(pick)
            data = (x_test[idx], y_test[idx])
            drawn = f"{args.out}.samples.csv"
            if rank == 0:
                _write_samples(drawn, pick, y_test[idx])
            counts = ", ".join(f"{c}: {k}" for c, k in class_counts(y_test[idx]).items())
            what = (
                f"{args.zoo_model} (test accuracy {acc:.4f}) on {len(pick)} test digits drawn "
                f"class-stratified (seed {cfg.seed}); count per class {counts}; test indices in {drawn}"
            )
        model = model.to(device).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        names = args.methods or list(PAPER_METHODS)
        ig_steps = 16 if quick else 50

        def method(name):
            return lambda x, t: compute_attributions(model, name, x, t, args.baseline, ig_steps)[0]

        metric_names = args.metrics or ["sensitivity_n", "infidelity", "region_perturbation"]
        make = {
            "sensitivity_n": lambda: SensitivityN(n=args.n_list, n_subsets=_given(args.subsets, 10 if quick else 100)),
            "infidelity": lambda: Infidelity(
                patch_size=args.patch_size, n_perturb_samples=_given(args.perturbations, 4 if quick else 10)
            ),
            "region_perturbation": lambda: RegionPerturbation(n_steps=_given(args.region_steps, 8 if quick else 16)),
        }
        batch_size = _given(args.batch_size, 4 if quick else 16)
        say(
            f"evaluate: {what}; methods {names}; metrics {metric_names}; batch size {batch_size}; "
            f"{world} process(es) on {device.type}"
        )
        start = time.perf_counter()
        try:
            rows = evaluate(
                model,
                {METHODS[n][0]: method(n) for n in names},
                data,
                [make[m]() for m in metric_names],
                out=args.out,
                seed=args.seed,
                batch_size=batch_size,
                baselines=args.baseline,
                distributed=distributed,
                show_progress=not args.no_progress,
                device=device,
            )
        except ResumeMismatchError as e:
            raise _UsageError(f"argument --out: {e}") from None
        seconds = time.perf_counter() - start
        say(_summary(rows))
        say(f"{len(rows)} rows: {args.out}; evaluation {seconds:.2f} s")
        return 0
    finally:
        if distributed and dist.is_initialized():
            dist.destroy_process_group()


def _summary(rows) -> str:
    """Mean over samples (NaN left out) per method and quantity, as a text table."""
    import math

    table: dict[str, dict[str, list[float]]] = {}
    for r in rows:
        if r["sample_index"] == "pooled" or (r["metric"] == "region_perturbation") or math.isnan(r["value"]):
            continue
        table.setdefault(r["method"], {}).setdefault(r["metric"], []).append(r["value"])
    quantities = sorted({q for per in table.values() for q in per})
    head = f"{'method':24s}" + "".join(f"{q:>16s}" for q in quantities)
    lines = [head]
    for name, per in table.items():
        lines.append(
            f"{name:24s}"
            + "".join(f"{sum(per[q]) / len(per[q]):16.4g}" if q in per else f"{'':16s}" for q in quantities)
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        _check(args)
        return {
            "train": _cmd_train,
            "attribute": _cmd_attribute,
            "reproduce": _cmd_reproduce,
            "evaluate": _cmd_evaluate,
        }[args.command](args)
    except _UsageError as e:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command_parser: argparse.ArgumentParser = subparsers.choices[args.command]
        command_parser.error(str(e))  # exits
    except ImportError as e:
        name = (getattr(e, "name", None) or "").split(".")[0]
        hint = _OPTIONAL.get(name)
        msg = str(e) if hint is None or hint in str(e) else f"{e}. Install it with: {hint}"
        print(f"captum-unified: missing optional dependency: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
