"""``reproduce transformers`` as a whole: :func:`run` and its report."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from captum_unified.experiments.common import (
    ExperimentConfig,
    progress,
    set_threads,
    warnings_section,
    write_csv,
)
from captum_unified.experiments.language_models.figure import deletion_figure
from captum_unified.experiments.language_models.measure import _measure, _method_rows, _paired
from captum_unified.experiments.language_models.methods import (
    LXT_METHODS,
    METHODS,
    LMMethod,
    _External,
    _lxt_attributions,
    _lxt_method,
    _lxt_status,
)
from captum_unified.experiments.language_models.sentences import _fmt, findings_sentences
from captum_unified.experiments.language_models.tasks import MODELS, _char_task, _sentiment_task, _Task, check_samples

#: Sizes of ``reproduce transformers`` when ``--samples`` / ``--subsets`` are not given.
DEFAULTS: dict[str, Any] = dict(samples=64, subsets=64)
QUICK_DEFAULTS: dict[str, Any] = dict(samples=6, subsets=8)


# ----------------------------------------------------------------- the pipeline
def run(cfg: ExperimentConfig) -> dict[str, Path]:
    """Train (or load) the three models, run every method and metric, and write the CSVs,
    the figure and the report into ``cfg.out``; returns the paths written."""
    check_samples(cfg)
    threads = set_threads(cfg)
    size = "quick" if cfg.small else "full"
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    lxt_python, lxt = _lxt_status(cfg.lxt_python)
    methods = list(METHODS)
    summary: list[dict] = []
    curves: list[dict] = []
    sens: list[dict] = []
    warned: dict[str, list[str]] = {}
    seconds: dict[str, float] = {}
    explained: dict[str, str] = {}
    t_start = time.perf_counter()
    for name in progress(list(MODELS), cfg.show_progress, desc="models"):
        arch = MODELS[name][1]
        t0 = time.perf_counter()
        task = _char_task(name, arch, cfg, size) if arch != "bert" else _sentiment_task(cfg, size)
        explained[name] = task.explained
        s, c, n = _model_rows(task, methods, cfg, warned, lxt_python, lxt, threads)
        summary += s
        curves += c
        sens += n
        seconds[name] = time.perf_counter() - t0
    tests = []
    for key, col in (("_scores", "deletion_score"), ("_sens", "sensitivity_n_mean"), ("_rhos", "spearman_mean")):
        tests += [dict(t, metric=col) for t in _paired([r for r in summary if key in r], key)]
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in summary]
    paths = {
        "methods": write_csv(out / "transformers_methods.csv", clean),
        "deletion": write_csv(out / "transformers_deletion.csv", curves),
        "sensitivity_n": write_csv(out / "transformers_sensitivity_n.csv", sens),
        "tests": write_csv(out / "transformers_tests.csv", tests),
    }
    paths["figure"] = deletion_figure(curves, out / "transformers_deletion.png")
    paths["report"] = _report(
        out / "transformers_report.md", cfg, threads, clean, tests, explained, seconds, warned, lxt, t_start
    )
    return paths


def _model_rows(
    task: _Task,
    methods: list[LMMethod],
    cfg: ExperimentConfig,
    warned: dict,
    lxt_python: str | None,
    lxt: str,
    threads: int,
) -> tuple[list, list, list]:
    """One model's rows of the three CSVs: this run's methods and, where an LXT interpreter is
    there, LXT's (computed by the worker, measured here like the others).

    Args:
        task: the model and its explained samples.
        methods: this process's methods.
        cfg: the run's configuration.
        warned: collects the methods' warnings.
        lxt_python: the LXT worker's interpreter, or None.
        lxt: why LXT's rows are not run when ``lxt_python`` is None.
        threads: torch threads (the worker uses as many).

    Returns:
        ``(summary rows, deletion-curve rows, Sensitivity-n rows)``.
    """
    if lxt_python is None:
        done: dict[str, _External] = {}
        not_run = {k: lxt for k in LXT_METHODS}
    else:
        done, not_run = _lxt_attributions(task, lxt_python, threads)
    run_methods = methods + [_lxt_method(k) for k in LXT_METHODS if k in done]
    res = _measure(task, run_methods, cfg, warned, done)
    s, c, n = _method_rows(task, run_methods, res, cfg)
    for r in s:
        if r["method"] in done:
            r.update(_agreement(res["attrs"], r["method"], LXT_COMPARED))
            r["note"] = done[r["method"]].note
    for lname, why in not_run.items():
        s.append(
            {
                "model": task.model,
                "method": lname,
                "method_label": LXT_METHODS[lname],
                "source": "lxt",
                "status": why,
                "samples": 0,
            }
        )
    order = [m.name for m in methods] + list(LXT_METHODS)
    return sorted(s, key=lambda r: order.index(r["method"])), c, n


#: Our methods each LXT row's token attributions are compared with (``max_rel_diff_<name>``).
LXT_COMPARED = ("lrp_uniform", "lrp_gate")


def _agreement(attrs: dict[str, Tensor], name: str, others: tuple[str, ...]) -> dict[str, float]:
    """How far method ``name``'s token attributions are from each of ``others``'.

    Args:
        attrs: method name -> attributions ``(B, L, D)``.
        name: the method compared.
        others: the methods it is compared with (those not in ``attrs`` are left out).

    Returns:
        dict: ``max_rel_diff_<other>``: the largest ``|R_name - R_other|`` over the samples'
        tokens, divided by the largest ``|R_other|``.
    """
    mine = attrs[name].sum(-1).double()
    out = {}
    for other in others:
        if other in attrs:
            theirs = attrs[other].sum(-1).double()
            out[f"max_rel_diff_{other}"] = float((mine - theirs).abs().max() / theirs.abs().max().clamp_min(1e-30))
    return out


def _lxt_report_line(summary: list[dict], lxt: str, lxt_python: str | None) -> str:
    """The report's line on LXT's rows: where they ran, or why not."""
    rows = [r for r in summary if r.get("source") == "lxt"]
    ran = [r for r in rows if r.get("status") == "ok"]
    if not ran:
        why = lxt or "; ".join(dict.fromkeys(str(r["status"]) for r in rows))
        return f"LXT (AttnLRP, CP-LRP): {why}."
    where = lxt_python or sys.executable
    notes = "; ".join(f"{MODELS[r['model']][0]} {r['method_label']}: {r['note']}" for r in ran)
    missing = "; ".join(f"{MODELS[r['model']][0]} {r['method_label']}: {r['status']}" for r in rows if r not in ran)
    return (
        f"LXT (AttnLRP, CP-LRP): computed by the LXT worker (`python -m captum_unified.experiments.lxt_worker`) "
        f"in `{Path(where).name}` processes of their own (LXT patches transformers' classes for the whole process), "
        f"on this run's weights and samples, measured here like the other rows; their time is against the worker's "
        f"own plain gradient of the unpatched model. {notes}." + (f" Not run: {missing}." if missing else "")
    )


def _md_table(rows: list[dict], cols: list[tuple[str, str, str]]) -> list[str]:
    lines = ["| " + " | ".join(h for h, _, _ in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append(
            "| " + " | ".join(_fmt(r.get(k), spec) if spec else str(r.get(k, "")) for _, k, spec in cols) + " |"
        )
    return lines


def _report(
    path: Path,
    cfg: ExperimentConfig,
    threads: int,
    summary: list[dict],
    tests: list[dict],
    explained: dict[str, str],
    seconds: dict[str, float],
    warned: dict,
    lxt: str,
    t_start: float,
) -> Path:
    ok = [r for r in summary if r.get("status") == "ok"]
    lines = [
        "# Attribution methods on trained transformers (captum-unified reproduce transformers)",
        "",
        f"Settings: {cfg.samples} samples per model (seed {cfg.seed}), {cfg.subsets} Sensitivity-n subsets per n, "
        f"{'quick' if cfg.small else 'full'} model sizes, {threads} torch thread(s), torch {torch.__version__}, "
        f"Python {platform.python_version()}; {time.perf_counter() - t_start:.0f} s in all.",
        "",
        "A feature is a token: its embedding vector, removed as a whole (set to 0, the baseline of every method "
        "that takes one); its attribution is the sum over the vector. LRP runs inside the module map "
        "(`canonize`); completeness and conservation are measured with forward passes of the untouched model.",
        "",
        "## Models",
        "",
    ]
    for name in explained:
        r = next(r for r in ok if r["model"] == name)
        lines.append(
            f"- {MODELS[name][0]}: {r['model_quality']}; trained: {r['trained']}; explained: {explained[name]}; "
            f"{seconds[name]:.0f} s."
        )
    lines += ["", "## Findings", ""]
    lines += [f"- {s}" for s in findings_sentences(summary, tests)]
    lines += ["", "## Per method", ""]
    cols = [
        ("model", "model", ""),
        ("method", "method_label", ""),
        ("completeness max rel", "completeness_max_rel", ".1e"),
        ("conservation median rel", "conservation_median_rel", ".2g"),
        ("deletion score", "deletion_score", ".3g"),
        ("MoRF AOPC", "morf_aopc", ".3g"),
        ("LeRF AOPC", "lerf_aopc", ".3g"),
        ("Sensitivity-n", "sensitivity_n_mean", ".3f"),
        ("Spearman vs valence", "spearman_mean", ".3f"),
        ("time x gradient", "time_x_gradient", ".3g"),
    ]
    lines += _md_table(ok, cols)
    lines += ["", "![deletion curves](transformers_deletion.png)", ""]
    lines += [_lxt_report_line(summary, lxt, cfg.lxt_python), ""]
    lines += warnings_section(warned)
    path.write_text("\n".join(lines) + "\n")
    return path
