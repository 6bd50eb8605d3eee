r"""LXT's AttnLRP and CP-LRP for ``reproduce transformers``, in a process of their own.

LXT (Achtibat et al., ICML 2024; ``pip install lxt``) computes its relevance as
Gradient*Input of a model whose classes it has patched: ``lxt.efficient``'s patch maps
replace methods of ``transformers.models.<arch>.modeling_<arch>`` (and of ``torch.nn``'s
``LayerNorm`` and ``Dropout``) for the whole process, and cannot be undone. So
:mod:`~captum_unified.experiments.language_models` never patches its own process: per
model and LXT variant it writes a job file (the model's architecture, size and trained
weights, the explained token embeddings and targets, :math:`S(x)` as the pipeline
computed it) and runs::

    PYTHON -m captum_unified.experiments.lxt_worker JOB RESULT

with ``PYTHON`` an interpreter where LXT imports (``--lxt-python``; LXT 2.1 needs
transformers 4.52). The worker rebuilds the model with this package's own builders under
that interpreter's transformers, loads the same weights, checks that it computes the
pipeline's :math:`S(x)`, times a plain gradient, patches the classes, rebuilds the model,
checks :math:`S(x)` again and returns LXT's attribution, Gradient*Input on the token
embeddings (as LXT documents it), with the seconds of one call. The pipeline then
measures it exactly as its own rows. :func:`run_worker` is the calling side.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from captum_unified.experiments.ancona_text import WordEmbeddingClassifier
from captum_unified.experiments.token_models import NextTokenLogProb, TokenModel
from captum_unified.text.char_lm import CharLMSize, build_char_lm
from captum_unified.text.sentiment import SentimentSize, build_sentiment_model

__all__ = ["VARIANTS", "PROTOCOL", "probe", "run_worker", "worker_env", "attribute_job", "main"]

#: The worker's variants -> the name of LXT's patch map in ``lxt.efficient.models.<arch>``.
VARIANTS = {"attnlrp": "attnLRP", "cplrp": "cp_LRP"}
#: Version of the job / result files (both sides are this package, maybe two copies of it).
PROTOCOL = 1
#: S(x) of the rebuilt model must match the pipeline's within this (relative to 1 + |S(x)|).
FORWARD_TOLERANCE = 1e-4


# ----------------------------------------------------------------- the calling side
def worker_env() -> dict[str, str]:
    """The environment of a worker process: this process's, with this package's folder in
    front of ``PYTHONPATH`` (so the worker runs this copy of the package, whatever the other
    interpreter has installed).

    Returns:
        dict: the environment variables.
    """
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([root] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def probe(python: str, timeout: float = 300.0) -> tuple[dict[str, str] | None, str]:
    """Whether ``python`` can run the worker: LXT's rules and transformers import there.

    Args:
        python: the interpreter (a path or a name on ``PATH``).
        timeout: seconds to wait.

    Returns:
        ``(versions, "")`` with the worker's ``lxt``, ``transformers`` and ``torch``
        versions, or ``(None, why not)``.
    """
    cmd = [python, "-m", "captum_unified.experiments.lxt_worker", "--probe"]
    try:
        done = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{type(e).__name__}: {e}"
    if done.returncode != 0:
        return None, _last_line(done.stderr or done.stdout)
    try:
        return json.loads(_last_line(done.stdout)), ""
    except ValueError:
        return None, f"unexpected probe output: {_last_line(done.stdout)}"


def run_worker(python: str, job: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """Run one job in a worker process of ``python`` and return its result.

    Args:
        python: the interpreter where LXT imports.
        job: what :func:`attribute_job` takes (``variant``, ``arch``, ``builder``, ``state_dict``,
            ``prefix``, ``x``, ``target``, ``fx``, ``threads``).
        timeout: seconds to wait (None: no limit).

    Returns:
        dict: the worker's result (``status`` ``"ok"`` with ``attributions``, ``seconds``,
        ``gradient_seconds``, ``forward_max_abs_diff`` and ``versions``; or ``status`` saying
        why LXT did not run).

    Raises:
        RuntimeError: the worker failed (its last line of error output in the message).
    """
    with tempfile.TemporaryDirectory(prefix="captum_unified_lxt_") as tmp:
        job_path, result_path = Path(tmp) / "job.pt", Path(tmp) / "result.pt"
        torch.save(dict(job, protocol=PROTOCOL), job_path)
        cmd = [python, "-m", "captum_unified.experiments.lxt_worker", str(job_path), str(result_path)]
        try:
            done = subprocess.run(cmd, env=worker_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"the LXT worker ran past {timeout} s") from e
        if done.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"the LXT worker failed (exit {done.returncode}): {_last_line(done.stderr)}")
        return torch.load(result_path, weights_only=True)


# ----------------------------------------------------------------- the worker side
def _lxt_rules(arch: str) -> types.ModuleType:
    """``lxt.efficient.models.<arch>``, LXT's patch maps for one architecture.

    LXT 2.1's ``lxt.efficient`` package imports its ViT rules, which need torchvision, on
    import; where that import fails, only the architecture's own rule module is loaded (its
    package ``__init__`` files skipped; nothing else of LXT changes).
    """
    name = f"lxt.efficient.models.{arch}"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is None or not e.name.startswith("torchvision"):
            raise
    spec = importlib.util.find_spec("lxt")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("No module named 'lxt'", name="lxt")
    root = Path(list(spec.submodule_search_locations)[0])
    for pkg, folder in (("lxt.efficient", root / "efficient"), ("lxt.efficient.models", root / "efficient" / "models")):
        if not isinstance(sys.modules.get(pkg), types.ModuleType) or not hasattr(sys.modules[pkg], "__path__"):
            bare = types.ModuleType(pkg)
            bare.__path__ = [str(folder)]  # a package whose __init__ is not run
            sys.modules[pkg] = bare
    return importlib.import_module(name)


def _lxt_version() -> str:
    try:
        return version("lxt")
    except PackageNotFoundError:
        return "unknown"


def _versions() -> dict[str, str]:
    # function-level import: transformers is an optional dependency (the ``text`` extra)
    import transformers

    return {"lxt": _lxt_version(), "transformers": str(transformers.__version__), "torch": str(torch.__version__)}


def _patch(patch_map: dict) -> None:
    """Apply one of LXT's patch maps (what ``lxt.efficient.monkey_patch`` does with it)."""
    for target, patch in patch_map.items():
        if not patch(target):
            raise RuntimeError(f"LXT could not patch {getattr(target, '__name__', target)} (already patched?)")


def _build(job: dict[str, Any]) -> nn.Module:
    """The pipeline's function of the token embeddings, rebuilt with this package's builders
    and the job's weights (``S = f(x)[i, target_i]``)."""
    spec = job["builder"]
    if spec["kind"] == "char_lm":
        model = build_char_lm(job["arch"], CharLMSize(**spec["size"]), spec["seed"])
    elif spec["kind"] == "sentiment":
        model = build_sentiment_model(job["arch"], spec["vocab_size"], SentimentSize(**spec["size"]), spec["seed"])
    else:
        raise ValueError(f"unknown model kind {spec['kind']!r}; expected 'char_lm' or 'sentiment'.")
    model.to(job["x"].dtype)  # the job's precision (float64 jobs: the tests' exact comparison)
    model.load_state_dict(job["state_dict"])
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    inner: nn.Module
    if spec["kind"] == "char_lm":
        inner = NextTokenLogProb(model, job["prefix"])
    else:
        inner = WordEmbeddingClassifier(model, job["prefix"])
    return TokenModel(inner).eval()


def _check_forward(f: nn.Module, job: dict[str, Any], what: str) -> float:
    """``max |S(x) - the pipeline's S(x)|``; raises when above :data:`FORWARD_TOLERANCE`."""
    x, target, fx = job["x"], job["target"], job["fx"]
    with torch.no_grad():
        s = f(x)[torch.arange(len(x)), target].double()
    diff = (s - fx.double()).abs()
    if not bool((diff <= FORWARD_TOLERANCE * (1 + fx.double().abs())).all()):
        raise RuntimeError(
            f"the {what} model computes S(x) up to {float(diff.max()):.3g} away from the pipeline's; "
            "not the same model (transformers versions differ in more than the last bits?)"
        )
    return float(diff.max())


def _gradient_x_input(f: nn.Module, x: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    """``(gradient, gradient * x)`` of ``S = f(x)[i, target_i]`` with respect to ``x``."""
    x = x.detach().clone().requires_grad_(True)
    out = f(x)[torch.arange(len(x)), target]
    (g,) = torch.autograd.grad(out.sum(), x)
    return g, g * x.detach()


def _fastest(fn: Callable[[], Any], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def attribute_job(job: dict[str, Any]) -> dict[str, Any]:
    """Compute one job's LXT attribution in this process (which it patches for good).

    Args:
        job: ``variant`` (a key of :data:`VARIANTS`), ``arch`` (``"gpt2"``, ``"llama"``,
            ``"bert"``), ``builder`` (``kind`` ``"char_lm"`` / ``"sentiment"``, ``size`` (the
            size's fields), ``seed``, ``vocab_size`` for the sentiment model),
            ``state_dict``, ``prefix`` (the ``<bos>`` / ``[CLS]`` embedding), ``x``
            ``(B, L, D)``, ``target`` ``(B,)``, ``fx`` (the pipeline's :math:`S(x)`, ``(B,)``),
            ``threads``.

    Returns:
        dict: ``status`` (``"ok"``, or why LXT did not run), ``versions``, and when run:
        ``attributions`` (``(B, L, D)``, Gradient*Input of the patched model),
        ``seconds`` (one call on the batch, after a warm-up call on one sample),
        ``gradient_seconds`` (the unpatched model's plain gradient, fastest of three after
        a warm-up), ``forward_max_abs_diff`` (of :math:`S(x)` against the pipeline's,
        the larger of the unpatched and the patched model's).
    """
    if job.get("protocol") != PROTOCOL:
        raise ValueError(f"job protocol {job.get('protocol')!r}; this worker speaks {PROTOCOL}.")
    if job["variant"] not in VARIANTS:
        raise ValueError(f"unknown LXT variant {job['variant']!r}; choose from {sorted(VARIANTS)}.")
    torch.set_num_threads(int(job["threads"]))
    rules = _lxt_rules(job["arch"])
    versions = _versions()
    patch_map = getattr(rules, VARIANTS[job["variant"]], None)
    if patch_map is None:
        have = [k for k, v in VARIANTS.items() if hasattr(rules, v)]
        return {
            "status": f"not run (LXT {versions['lxt']} has no {VARIANTS[job['variant']]} rules for {job['arch']}; "
            f"lxt.efficient.models.{job['arch']} has {', '.join(VARIANTS[k] for k in have) or 'none'})",
            "versions": versions,
        }
    x, target = job["x"], job["target"]
    plain = _build(job)
    diff = _check_forward(plain, job, "unpatched")
    g_plain, _ = _gradient_x_input(plain, x, target)  # warm-up
    grad_seconds = _fastest(lambda: _gradient_x_input(plain, x, target), 3)
    _patch(patch_map)
    f = _build(job)  # after patching: some of LXT's maps replace whole classes of the module
    diff = max(diff, _check_forward(f, job, "patched"))
    _gradient_x_input(f, x[:1], target[:1])  # warm-up on one sample
    t0 = time.perf_counter()
    g, a = _gradient_x_input(f, x, target)
    seconds = time.perf_counter() - t0
    if torch.equal(g, g_plain):
        raise RuntimeError("LXT's patches did not change the gradient: the model was not patched.")
    return {
        "status": "ok",
        "versions": versions,
        "attributions": a,
        "seconds": seconds,
        "gradient_seconds": grad_seconds,
        "forward_max_abs_diff": diff,
    }


def main(argv: list[str] | None = None) -> int:
    """``python -m captum_unified.experiments.lxt_worker JOB RESULT`` (or ``--probe``: print
    the versions as JSON when LXT's rules import).

    Args:
        argv: the arguments (default ``sys.argv[1:]``).

    Returns:
        int: the exit status.
    """
    args = sys.argv[1:] if argv is None else argv
    if args == ["--probe"]:
        for arch in ("gpt2", "llama", "bert"):
            _lxt_rules(arch)
        print(json.dumps(_versions()))
        return 0
    if len(args) != 2:
        print("usage: python -m captum_unified.experiments.lxt_worker JOB RESULT | --probe", file=sys.stderr)
        return 2
    job = torch.load(args[0], weights_only=True)
    torch.save(attribute_job(job), args[1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
