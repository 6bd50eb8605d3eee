"""Command line: ``captum-unified`` / ``python -m captum_unified``.

Subcommands: ``train`` (train and cache a zoo model), ``attribute`` (attribution
PNGs for a few test digits), ``reproduce {ancona,deng}`` (a paper's experiment
pipeline), ``evaluate`` (methods x metrics over a data set, resumable; under
``torchrun`` the samples are shared by the processes).

Every choice and option that names a method, a metric, a zoo model or a paper
comes from :mod:`captum_unified.registry` (a metric's options are part of its
registry entry), which imports no torch: ``--help`` answers at once. A
mistake on the command line is one line naming the value and what would work.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import inspect
import os
import re
import sys
import textwrap
from pathlib import Path
from typing import Any

from captum_unified.recipes import RECIPES
from captum_unified.registry import ACTIVATIONS, METHODS, METRICS, PAPERS, TARGETS, ZOO, MetricEntry, Option

__all__ = ["main", "build_parser"]

#: optional dependencies: import name -> how to install it
_OPTIONAL = {"mlxtend": "pip install mlxtend", "sklearn": "pip install scikit-learn", "pyarrow": "pip install pyarrow"}

#: the methods the command line runs by name (the registry's entries that need nothing but the model)
_RUNNABLE = [name for name, e in METHODS.items() if e.runs_by_name]
_DEFAULT_METHODS = [name for name, e in METHODS.items() if e.default]
_DEFAULT_METRICS = [name for name, e in METRICS.items() if e.default]


# ------------------------------------------------------------ value types
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


def _method_pair(text: str) -> tuple[str, str]:
    """argparse type: ``METHOD=REFERENCE``, two method names."""
    method, sep, reference = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected METHOD=REFERENCE (e.g. ig=taylor), got {text!r}")
    for name in (method, reference):
        if name not in _RUNNABLE:
            raise argparse.ArgumentTypeError(
                f"{name!r} in {text!r} is not a method; choose from {', '.join(_RUNNABLE)}"
            )
    return method, reference


_KINDS: dict[str, dict[str, Any]] = {
    "int": dict(type=_positive_int),
    "ints": dict(type=_positive_int, nargs="+"),
    "float": dict(type=float),
    "pairs": dict(type=_method_pair, nargs="+"),
}


# ------------------------------------------------------------------- help
class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their lines (lists, examples) and wrap each
    to the terminal: a list row under its text, an example command not at all
    (it stays copyable); option help is wrapped as usual."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        out = []
        for line in text.splitlines():
            body = line.lstrip(" ")
            lead = len(line) - len(body)
            if not body or body.startswith(("captum-unified ", "torchrun ")):
                out.append(indent + line if body else "")
                continue
            key = re.match(r"\S+\s{2,}", body) if lead else None
            hang = " " * (lead + (key.end() if key else 2 if lead else 0))
            out.append(textwrap.fill(body, width, initial_indent=indent + " " * lead, subsequent_indent=indent + hang))
        return "\n".join(out)


def _listing(title: str, rows: list[tuple[str, str]]) -> str:
    width = max(len(k) for k, _ in rows) + 2
    return title + ":\n" + "\n".join(f"  {k:<{width}}{v}" for k, v in rows)


def _epilog(*sections: str) -> str:
    return "\n\n".join(s for s in sections if s)


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _writes(*rows: tuple[str, str]) -> str:
    return _listing("writes", list(rows))


def _methods_section() -> str:
    rows = [(name, f"{METHODS[name].label}: {METHODS[name].summary}") for name in _RUNNABLE]
    python_only = ", ".join(f"{n} (needs {' and '.join(e.needs)})" for n, e in METHODS.items() if e.needs)
    return _listing("methods", rows) + f"\n  From Python only: {python_only}."


def _zoo_section() -> str:
    rows = [
        (z.name, z.summary + (f"; activation {z.activation}" if z.activation else "; no activation to choose"))
        for z in ZOO.values()
    ]
    return _listing("zoo models (--model)", rows)


def _recipes_section() -> str:
    return _listing("training recipes (--recipe)", [(k, r.describe()) for k, r in RECIPES.items()])


def _metrics_section() -> str:
    rows = []
    for name, e in METRICS.items():
        options = ", ".join(o.flag for o in e.options)
        needs = "; needs a box per sample: --model data (inputs, labels, boxes)" if e.data == "boxes" else ""
        rows.append((name, e.summary + (f" [{options}]" if options else "") + needs))
    return _listing("metrics (--metrics)", rows)


def _help(text: str) -> str:
    return text.replace("%", "%%")


# ----------------------------------------------------------------- parser
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


def _add_zoo_model(p: argparse.ArgumentParser, flag: str = "--model", default: str = "ancona_mlp") -> None:
    p.add_argument(
        flag, choices=list(ZOO), default=default, metavar="MODEL", help=f"zoo model (default {default}; list below)"
    )


def _add_activation_recipe(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--activation",
        choices=list(ACTIVATIONS),
        default=None,
        help="the model's nonlinearity (default: the paper's, listed below; models without one take none)",
    )
    p.add_argument("--recipe", choices=list(RECIPES), default="adam", help="training recipe (default adam; list below)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (no torch import: names come from :mod:`captum_unified.registry`)."""
    parser = argparse.ArgumentParser(
        prog="captum-unified",
        formatter_class=_Formatter,
        description="Unified gradient attribution (Ancona et al. 2018) and Taylor "
        "framework (Deng et al. 2021) for Captum.",
        epilog=_epilog(
            "Run captum-unified COMMAND --help for a command's options, choices, examples and the files it writes.",
            _examples("captum-unified reproduce ancona --quick", "captum-unified evaluate --quick --methods gi ig"),
        ),
    )
    sub = parser.add_subparsers(dest="command", metavar="{train,attribute,reproduce,evaluate}")
    sub.required = True

    p = sub.add_parser(
        "train",
        help="train and cache a zoo model",
        description="Train a zoo model on the shipped MNIST digits (or load it from the cache) and print "
        "its test accuracy.",
        formatter_class=_Formatter,
        epilog=_epilog(
            _zoo_section(),
            _recipes_section(),
            _examples(
                "captum-unified train --model ancona_cnn --quick",
                "captum-unified train --model deng_mlp --activation softplus --recipe adadelta-es",
            ),
            _writes(("<cache-dir>/<model>-<activation>-....pt", "the trained state_dict (one file per settings)")),
        ),
    )
    _add_zoo_model(p)
    _add_activation_recipe(p)
    _add_common(p)

    p = sub.add_parser(
        "attribute",
        help="attribution images for a (cached) zoo model and test digits",
        description="Attribution maps of a few test digits (drawn class-stratified) by each chosen method, "
        "as PNG images (Captum's blended heat map). Trains and caches the model on first use.",
        formatter_class=_Formatter,
        epilog=_epilog(
            _methods_section(),
            _zoo_section(),
            _examples(
                "captum-unified attribute --quick --method gi ig lrp",
                "captum-unified attribute --model ancona_cnn --activation tanh --samples 5 --target predicted "
                "--out maps",
            ),
            _writes(("<out>/<model>_<activation>_<method>_<i>.png", "one image per method and digit")),
        ),
    )
    _add_zoo_model(p)
    _add_activation_recipe(p)
    p.add_argument(
        "--method",
        choices=_RUNNABLE,
        nargs="+",
        default=["gi"],
        metavar="METHOD",
        help="one or more methods (default gi; list below)",
    )
    p.add_argument(
        "--samples", type=_positive_int, default=3, help="number of test digits, drawn class-stratified (default 3)"
    )
    p.add_argument(
        "--target",
        choices=list(TARGETS),
        default="true",
        help=_help("; ".join(f"{k}: {v}" for k, v in TARGETS.items()) + " (default true)"),
    )
    p.add_argument(
        "--baseline",
        type=float,
        default=-1.0,
        help="baseline value of the methods that take one (IG, DeepLIFT, Occlusion-1, Taylor; -1 = black background)",
    )
    p.add_argument("--out", default="attributions", help="output folder for PNGs (default attributions)")
    _add_common(p)

    p = sub.add_parser(
        "reproduce",
        help="run a paper's experiment pipeline",
        description="Reproduce a paper's experiments on the shipped MNIST digits: train (or load) the models, "
        "compute the attributions and metrics, write the CSVs, figures and a report.",
        formatter_class=_Formatter,
        epilog=_epilog(
            _listing("papers", [(k, v.summary) for k, v in PAPERS.items()]),
            _examples(
                "captum-unified reproduce ancona --quick",
                "captum-unified reproduce deng --samples 100 --threads 1 --out results",
            ),
            _writes(*((f"<out>/{pattern}", f"{k}: {what}") for k, v in PAPERS.items() for pattern, what in v.writes)),
        ),
    )
    p.add_argument(
        "paper",
        choices=list(PAPERS),
        help="the pipeline: " + "; ".join(f"{k}: {v.summary}" for k, v in PAPERS.items()),
    )
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
        choices=list(TARGETS),
        default=None,
        help=_help("; ".join(f"{k}: {v}" for k, v in TARGETS.items()) + " (default true, as the papers)"),
    )
    p.add_argument(
        "--recipe",
        choices=list(RECIPES),
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
    p.add_argument("--out", default="results", help="output folder for CSV and report (default results)")
    p.add_argument(
        "--baseline",
        type=float,
        default=None,
        help="value of removed pixels and of the reference input (default 0: ancona's zero, "
        "the black background of deng's [0, 1] pixels)",
    )
    _add_common(p)

    p = sub.add_parser(
        "evaluate",
        help="evaluate methods x metrics over a data set (resumable; torchrun shards it)",
        description="Attributions of several methods scored by several metrics, per sample, as tidy rows "
        "(CSV, or Parquet with pyarrow). Without --model: the shipped MNIST digits and a zoo "
        "model (trained and cached on first use). Rerun the same command to resume. Under "
        "torchrun --nproc_per_node=N the batches are shared by the N processes; the rows are "
        "the same as on one process.",
        formatter_class=_Formatter,
        epilog=_epilog(
            _methods_section(),
            _metrics_section(),
            _examples(
                "captum-unified evaluate --quick --methods gi ig occlusion1",
                "captum-unified evaluate --model mymodels:make --metrics sensitivity_n infidelity "
                "--out results/mine.csv",
                "torchrun --nproc_per_node=2 -m captum_unified evaluate --samples 200",
            ),
            _writes(
                ("<out>", "the rows: method, metric, param, sample_index, value (.csv or .parquet)"),
                ("<out>.parts/", "finished batches and manifest.json (a rerun resumes from them)"),
                ("<out>.samples.csv", "zoo runs: the drawn test digits (index, label)"),
            ),
        ),
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="MODULE:FUNCTION",
        help="your model: a function returning (model, dataset), from an importable module or a "
        "file (path/to/file.py:make); the dataset is a map-style dataset of (input, label, ...) or a "
        "tuple of tensors (inputs, labels, ...)",
    )
    _add_zoo_model(p, "--zoo-model", "ancona_cnn")
    p.add_argument(
        "--methods",
        choices=_RUNNABLE,
        nargs="+",
        default=None,
        metavar="METHOD",
        help=f"methods (default: {' '.join(_DEFAULT_METHODS)}; list below)",
    )
    p.add_argument(
        "--metrics",
        choices=list(METRICS),
        nargs="+",
        default=None,
        metavar="METRIC",
        help=f"metrics (default: {' '.join(_DEFAULT_METRICS)}; list below)",
    )
    for entry in METRICS.values():
        for opt in entry.options:
            p.add_argument(
                opt.flag, default=None, metavar=opt.metavar or None, help=_help(opt.help), **_KINDS[opt.kind]
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
        "--baseline",
        type=float,
        default=-1.0,
        help="value of removed pixels and reference input (default -1, the black background)",
    )
    p.add_argument("--device", default="auto", help="auto (cuda:LOCAL_RANK when CUDA is there), cpu or cuda")
    _add_common(p)
    return parser


# ------------------------------------------------------------------ runs
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
    if getattr(args, "activation", None) is not None and ZOO[args.model].activation is None:
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
    from captum_unified.experiments.common import compute_attributions, draw_samples, select_targets, set_threads

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
    act = args.activation or ZOO[args.model].activation or "none"
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
                title=f"{METHODS[m].label}: true class {int(labels[i])}, predicted {int(predicted[i])}, "
                f"explained {int(target[i])}",
            )
            path = out / f"{args.model}_{act}_{m}_{i}.png"
            fig.savefig(path)
            written.append(path)
    print(f"model test accuracy {acc:.4f}; wrote {len(written)} PNG files to {out}")
    return 0


def _cmd_reproduce(args) -> int:
    module = importlib.import_module(PAPERS[args.paper].module)
    cfg = _config(args)
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


def _import_module(spec: str, module: str):
    """The module of ``--model MODULE:FUNCTION``: an importable name or a ``.py`` file."""
    if module.endswith(".py") or os.sep in module or (os.altsep and os.altsep in module):
        path = Path(module)
        if not path.is_file():
            raise _UsageError(f"argument --model: {spec!r}: there is no file {module}; give an existing .py file.")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise _UsageError(f"argument --model: {spec!r}: {module} is not a Python file; give a .py file.")
        loaded = importlib.util.module_from_spec(loader_spec)
        sys.modules[path.stem] = loaded
        try:
            loader_spec.loader.exec_module(loaded)
        except Exception as e:
            sys.modules.pop(path.stem, None)
            raise _UsageError(f"argument --model: importing {module} raised {type(e).__name__}: {e}") from None
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise _UsageError(
                f"argument --model: {spec!r}: no module named {e.name!r} on the path; give a module importable "
                "from the current folder or PYTHONPATH, or a file: path/to/file.py:FUNCTION."
            ) from None
        raise _UsageError(f"argument --model: importing {module} raised ModuleNotFoundError: {e}") from None
    except Exception as e:
        raise _UsageError(f"argument --model: importing {module} raised {type(e).__name__}: {e}") from None


def _load_user_model(spec: str):
    """``(model, dataset)`` from ``--model MODULE:FUNCTION``."""
    module, sep, func = spec.rpartition(":")
    if not sep or not module or not func:
        raise _UsageError(f"argument --model: must be MODULE:FUNCTION (e.g. mymodels:make), got {spec!r}.")
    loaded = _import_module(spec, module)
    make = getattr(loaded, func, None)
    if make is None or not callable(make):
        names = sorted(
            n
            for n, v in vars(loaded).items()
            if inspect.isfunction(v) and v.__module__ == loaded.__name__ and not n.startswith("_")
        )
        names = names if len(names) <= 8 else []
        what = "no function" if make is None else "no callable"
        raise _UsageError(
            f"argument --model: module {module!r} has {what} {func!r}"
            + (f"; it has {', '.join(names)}" if names else "")
            + "."
        )
    try:
        made = make()
    except Exception as e:
        raise _UsageError(
            f"argument --model: {spec}() raised {type(e).__name__}: {e} (call it in Python to see where)"
        ) from None
    if not isinstance(made, (tuple, list)) or len(made) != 2:
        raise _UsageError(f"argument --model: {spec}() must return (model, dataset), got {type(made).__name__}.")
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


def _dest(opt: Option) -> str:
    return opt.flag.lstrip("-").replace("-", "_")


def _check_metric_options(args, metric_names: list[str]) -> None:
    """Options of metrics not evaluated, and a metric without a required option."""
    for name, entry in METRICS.items():
        for opt in entry.options:
            if getattr(args, _dest(opt)) is not None and name not in metric_names:
                raise _UsageError(
                    f"argument {opt.flag}: an option of {name}, which --metrics does not include; "
                    f"add {name} to --metrics or drop {opt.flag}."
                )
    for name in metric_names:
        entry = METRICS[name]
        for opt in entry.options:
            if opt.kind == "pairs" and getattr(args, _dest(opt)) is None:
                what = opt.help.split(";")[0]
                raise _UsageError(f"argument --metrics: {name} needs {opt.flag} {opt.metavar}: {what}.")


def _metric_settings(entry: MetricEntry, args, quick: bool) -> dict[str, Any]:
    """Constructor arguments of a metric from its options (given, else the --quick or plain default)."""
    kwargs = {}
    for opt in entry.options:
        value = getattr(args, _dest(opt))
        if value is None:
            value = opt.quick if quick and opt.quick is not None else opt.default
        if value is not None:
            kwargs[opt.param] = value
    return kwargs


def _make_metric(name: str, args, quick: bool, method):
    """The metric object of ``--metrics NAME`` with its options; ``method(name)``
    makes the attribution function of a method name (``--references``)."""
    entry = METRICS[name]
    kwargs = _metric_settings(entry, args, quick)
    for opt in entry.options:  # METHOD=REFERENCE pairs: {the method's label (its rows): the reference's attributions}
        if opt.kind == "pairs" and opt.param in kwargs:
            kwargs[opt.param] = {METHODS[a].label: method(b) for a, b in kwargs[opt.param]}
    try:
        return entry.cls(**kwargs)
    except (ValueError, TypeError) as e:
        given = [f"{o.flag} {getattr(args, _dest(o))}" for o in entry.options if getattr(args, _dest(o)) is not None]
        raise _UsageError(
            f"argument --metrics: {name}" + (f" with {', '.join(given)}" if given else "") + f": {e}"
        ) from None


def _device(spec: str):
    """``--device``, checked: one line naming the value when it is not a usable device."""
    import torch

    from captum_unified._utils.distributed import launch_device

    try:
        torch.device(spec if spec != "auto" else "cpu")
    except RuntimeError:
        raise _UsageError(f"argument --device: {spec!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if spec != "auto" and torch.device(spec).type == "cuda" and not torch.cuda.is_available():
        raise _UsageError(f"argument --device: {spec} is not available on this machine (no CUDA); use cpu or auto.")
    return launch_device(spec)


def _cmd_evaluate(args) -> int:
    import time

    import torch
    import torch.distributed as dist

    from captum_unified._utils.distributed import init_process_group, launched_world_size
    from captum_unified.data import class_counts, load_mnist, stratified_sample
    from captum_unified.experiments.common import compute_attributions
    from captum_unified.metrics import evaluate
    from captum_unified.metrics.runner import ResumeMismatchError
    from captum_unified.models import load_or_train

    quick = _quick(args)
    names = args.methods or list(_DEFAULT_METHODS)
    metric_names = args.metrics or list(_DEFAULT_METRICS)
    _check_metric_options(args, metric_names)
    for opt in (o for m in metric_names for o in METRICS[m].options if o.kind == "pairs"):
        for scored, reference in getattr(args, _dest(opt)) or []:
            if scored not in names:
                raise _UsageError(
                    f"argument {opt.flag}: {scored} is not evaluated (--methods {' '.join(names)}); "
                    f"add it to --methods or drop {scored}={reference}."
                )
    if args.model is None and any(METRICS[m].data == "boxes" for m in metric_names):
        boxed = [m for m in metric_names if METRICS[m].data == "boxes"]
        raise _UsageError(
            f"argument --metrics: {', '.join(boxed)} needs a bounding box per sample, and the zoo digits have "
            "none; give --model MODULE:FUNCTION whose data set is (inputs, labels, boxes)."
        )
    ig_steps = 16 if quick else 50

    def method(name):  # the attributions of a method on the model (bound below, once loaded)
        return lambda x, t: compute_attributions(model, name, x, t, args.baseline, ig_steps)[0]

    metrics = [_make_metric(m, args, quick, method) for m in metric_names]  # before any training
    if args.threads is not None:
        torch.set_num_threads(int(args.threads))
    world = launched_world_size()
    distributed = world > 1
    device = _device(args.device)
    owned = init_process_group(device) if distributed else False
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
        batch_size = args.batch_size if args.batch_size is not None else (4 if quick else 16)
        say(
            f"evaluate: {what}; methods {names}; metrics {metric_names}; batch size {batch_size}; "
            f"{world} process(es) on {device.type}"
        )
        start = time.perf_counter()
        try:
            rows = evaluate(
                model,
                {METHODS[n].label: method(n) for n in names},
                data,
                metrics,
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
        except (ValueError, TypeError) as e:  # the data, the model or a size the metrics cannot use
            where = f"argument --model: on the data of {args.model}: " if args.model is not None else ""
            raise _UsageError(f"{where}{e}") from None
        seconds = time.perf_counter() - start
        say(_summary(rows))
        say(f"{len(rows)} rows: {args.out}; evaluation {seconds:.2f} s")
        return 0
    finally:
        if owned or (distributed and dist.is_initialized()):  # the group this command made, or torchrun's
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


def _optional_dependency(e: ImportError) -> str | None:
    """The message of a missing optional dependency, or ``None`` for any other import error."""
    name = (getattr(e, "name", None) or "").split(".")[0]
    hint = _OPTIONAL.get(name)
    if hint is None:
        hint = next((h for h in _OPTIONAL.values() if h in str(e)), None)
    if hint is None:
        return None
    return str(e) if hint in str(e) else f"{e}. Install it with: {hint}"


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
        msg = _optional_dependency(e)
        if msg is None:
            raise
        print(f"captum-unified: missing optional dependency: {msg}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
