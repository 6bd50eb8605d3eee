"""``evaluate --model MODULE:FUNCTION``: the user's ``(model, dataset)``, from
an importable module or a ``.py`` file; every way it can fail is one
:class:`~captum_unified.cli.common.UsageError` naming the value. Imported
when ``evaluate`` runs."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from pathlib import Path

import torch

from captum_unified.cli.common import UsageError, check_samples

__all__ = ["load_user_model", "subset"]


def _import_module(spec: str, module: str):
    """The module of ``--model MODULE:FUNCTION``: an importable name or a ``.py`` file."""
    if module.endswith(".py") or os.sep in module or (os.altsep and os.altsep in module):
        path = Path(module)
        if not path.is_file():
            raise UsageError(f"argument --model: {spec!r}: there is no file {module}; give an existing .py file.")
        loader_spec = importlib.util.spec_from_file_location(path.stem, path)
        if loader_spec is None or loader_spec.loader is None:
            raise UsageError(f"argument --model: {spec!r}: {module} is not a Python file; give a .py file.")
        loaded = importlib.util.module_from_spec(loader_spec)
        sys.modules[path.stem] = loaded
        try:
            loader_spec.loader.exec_module(loaded)
        except Exception as e:
            sys.modules.pop(path.stem, None)
            raise UsageError(f"argument --model: importing {module} raised {type(e).__name__}: {e}") from None
        return loaded
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name is not None and (module == e.name or module.startswith(e.name + ".")):
            raise UsageError(
                f"argument --model: {spec!r}: no module named {e.name!r} on the path; give a module importable "
                "from the current folder or PYTHONPATH, or a file: path/to/file.py:FUNCTION."
            ) from None
        raise UsageError(f"argument --model: importing {module} raised ModuleNotFoundError: {e}") from None
    except Exception as e:
        raise UsageError(f"argument --model: importing {module} raised {type(e).__name__}: {e}") from None


def load_user_model(spec: str):
    """``(model, dataset)`` from ``--model MODULE:FUNCTION``."""
    module, sep, func = spec.rpartition(":")
    if not sep or not module or not func:
        raise UsageError(f"argument --model: must be MODULE:FUNCTION (e.g. mymodels:make), got {spec!r}.")
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
        raise UsageError(
            f"argument --model: module {module!r} has {what} {func!r}"
            + (f"; it has {', '.join(names)}" if names else "")
            + "."
        )
    try:
        made = make()
    except Exception as e:
        raise UsageError(
            f"argument --model: {spec}() raised {type(e).__name__}: {e} (call it in Python to see where)"
        ) from None
    if not isinstance(made, (tuple, list)) or len(made) != 2:
        raise UsageError(f"argument --model: {spec}() must return (model, dataset), got {type(made).__name__}.")
    return made


def subset(data, n: int | None):
    """The first ``n`` samples of the user's data (``--samples``; more than it holds is a usage error)."""
    if n is None:
        return data
    tensors = isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data)
    check_samples(n, data[0] if tensors else range(len(data)), what="samples of the --model data set")
    if tensors:
        return tuple(t[:n] for t in data)
    return torch.utils.data.Subset(data, range(n))
