"""Command line: ``captum-unified`` / ``python -m captum_unified``.

Subcommands: ``train`` (train and cache a zoo model), ``attribute`` (attribution
PNGs for a few test digits), ``reproduce {ancona,deng}`` (a paper's experiment
pipeline), ``evaluate`` (methods x metrics over a data set, resumable; under
``torchrun`` the samples are shared by the processes).

Every choice and option that names a method, a metric, a zoo model or a paper
comes from :mod:`captum_unified.registry` (a metric's options are part of its
registry entry), which imports no torch: ``--help`` answers at once. A
mistake on the command line is one line naming the value and what would work.

One job a file: :mod:`~captum_unified.cli.parser` (the parser and its help),
:mod:`~captum_unified.cli.common` (the usage error, the configuration, the
checks), :mod:`~captum_unified.cli.commands` (``train``, ``attribute``,
``reproduce``), :mod:`~captum_unified.cli.user_model` (``--model
MODULE:FUNCTION``), :mod:`~captum_unified.cli.evaluate` (``evaluate``); this
module is :func:`main`.
"""

from __future__ import annotations

import argparse
import sys

from captum_unified.cli.common import UsageError, check_activation
from captum_unified.cli.parser import build_parser

__all__ = ["main", "build_parser"]

#: optional dependencies: import name -> how to install it
_OPTIONAL = {"mlxtend": "pip install mlxtend", "sklearn": "pip install scikit-learn", "pyarrow": "pip install pyarrow"}


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
        check_activation(args)
        # the commands import torch: loaded once a command runs, never for --help
        from captum_unified.cli.commands import cmd_attribute, cmd_reproduce, cmd_train  # torch: see above
        from captum_unified.cli.evaluate import cmd_evaluate  # torch: see above

        return {
            "train": cmd_train,
            "attribute": cmd_attribute,
            "reproduce": cmd_reproduce,
            "evaluate": cmd_evaluate,
        }[args.command](args)
    except UsageError as e:
        subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        command_parser: argparse.ArgumentParser = subparsers.choices[args.command]
        command_parser.error(str(e))  # exits
    except ImportError as e:
        msg = _optional_dependency(e)
        if msg is None:
            raise
        print(f"captum-unified: missing optional dependency: {msg}", file=sys.stderr)
        return 2
