"""The command line's parser and help, built from :mod:`captum_unified.registry`.

Imports no torch (the registry holds names and references only), so that
``captum-unified --help`` and every ``COMMAND --help`` answer at once. Each
command's help describes every choice with one line, gives examples and lists
the files the command writes.
"""

from __future__ import annotations

import argparse
import os
import re
import textwrap
from typing import Any

from captum_unified.recipes import RECIPES
from captum_unified.registry import ACTIVATIONS, METHODS, METRICS, PAPERS, TARGETS, ZOO

__all__ = ["build_parser", "RUNNABLE", "DEFAULT_METHODS", "DEFAULT_METRICS"]

#: the methods the command line runs by name (the registry's entries that need nothing but the model)
RUNNABLE = [name for name, e in METHODS.items() if e.runs_by_name]
#: the methods and metrics of a run that names none (the registry's ``default`` entries)
DEFAULT_METHODS = [name for name, e in METHODS.items() if e.default]
DEFAULT_METRICS = [name for name, e in METRICS.items() if e.default]


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
    from captum_unified.data import PIXEL_RANGES  # torch: when the option is given, not for --help

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
        if name not in RUNNABLE:
            raise argparse.ArgumentTypeError(f"{name!r} in {text!r} is not a method; choose from {', '.join(RUNNABLE)}")
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
    rows = [(name, f"{METHODS[name].label}: {METHODS[name].summary}") for name in RUNNABLE]
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
        choices=RUNNABLE,
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
                "captum-unified reproduce transformers --quick --out results-lm",
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
        help="samples to explain per model, drawn class-stratified (default: ancona 50, deng 100, transformers 64; "
        "--quick: ancona 20, deng 10, transformers 6)",
    )
    p.add_argument(
        "--subsets",
        type=_positive_int,
        default=None,
        help="random subsets per n for Sensitivity-n (default: ancona 100, transformers 64); not used by deng",
    )
    p.add_argument(
        "--target",
        choices=list(TARGETS),
        default=None,
        help=_help(
            "; ".join(f"{k}: {v}" for k, v in TARGETS.items())
            + " (default: each paper's own, ancona true, deng predicted)"
        ),
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
        "--lxt-python",
        default=None,
        metavar="PYTHON",
        help="transformers: an interpreter where LXT imports (LXT 2.1 needs transformers 4.52, e.g. a venv's "
        "bin/python); LXT's AttnLRP and CP-LRP rows run there, one worker process per model and variant, on this "
        "run's models and samples (default: this interpreter, when import lxt works here)",
    )
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
        choices=RUNNABLE,
        nargs="+",
        default=None,
        metavar="METHOD",
        help=f"methods (default: {' '.join(DEFAULT_METHODS)}; list below)",
    )
    p.add_argument(
        "--metrics",
        choices=list(METRICS),
        nargs="+",
        default=None,
        metavar="METRIC",
        help=f"metrics (default: {' '.join(DEFAULT_METRICS)}; list below)",
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
