"""The ``evaluate`` command: methods x metrics over the zoo digits or the
user's data set, through :func:`captum_unified.metrics.evaluate`; each
metric's options come from its registry entry. Imported when the command
runs (this module imports torch)."""

from __future__ import annotations

import csv
import math
import os
import time
from typing import Any

import torch
import torch.distributed as dist

from captum_unified._utils.distributed import init_process_group, launch_device, launched_world_size
from captum_unified.cli.common import UsageError, check_samples, experiment_config, is_quick
from captum_unified.cli.parser import DEFAULT_METHODS, DEFAULT_METRICS
from captum_unified.cli.user_model import load_user_model, subset
from captum_unified.data import class_counts, load_mnist, stratified_sample
from captum_unified.experiments.common import compute_attributions
from captum_unified.metrics import evaluate
from captum_unified.metrics.resume import ResumeMismatchError
from captum_unified.models import load_or_train
from captum_unified.registry import METHODS, METRICS, MetricEntry, Option

__all__ = ["cmd_evaluate"]


def _write_samples(path: str, pick, labels) -> None:
    """``<out>.samples.csv``: position in the evaluated data (the rows' ``sample_index``),
    index among the test digits, label."""
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
                raise UsageError(
                    f"argument {opt.flag}: an option of {name}, which --metrics does not include; "
                    f"add {name} to --metrics or drop {opt.flag}."
                )
    for name in metric_names:
        entry = METRICS[name]
        for opt in entry.options:
            if opt.kind == "pairs" and getattr(args, _dest(opt)) is None:
                what = opt.help.split(";")[0]
                raise UsageError(f"argument --metrics: {name} needs {opt.flag} {opt.metavar}: {what}.")


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
        raise UsageError(
            f"argument --metrics: {name}" + (f" with {', '.join(given)}" if given else "") + f": {e}"
        ) from None


def _device(spec: str):
    """``--device``, checked: one line naming the value when it is not a usable device."""
    try:
        torch.device(spec if spec != "auto" else "cpu")
    except RuntimeError:
        raise UsageError(f"argument --device: {spec!r} is not a device; use auto, cpu, cuda or cuda:N.") from None
    if spec != "auto" and torch.device(spec).type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: {spec} is not available on this machine (no CUDA); use cpu or auto.")
    return launch_device(spec)


def cmd_evaluate(args) -> int:
    quick = is_quick(args)
    names = args.methods or list(DEFAULT_METHODS)
    metric_names = args.metrics or list(DEFAULT_METRICS)
    _check_metric_options(args, metric_names)
    for opt in (o for m in metric_names for o in METRICS[m].options if o.kind == "pairs"):
        for scored, reference in getattr(args, _dest(opt)) or []:
            if scored not in names:
                raise UsageError(
                    f"argument {opt.flag}: {scored} is not evaluated (--methods {' '.join(names)}); "
                    f"add it to --methods or drop {scored}={reference}."
                )
    if args.model is None and any(METRICS[m].data == "boxes" for m in metric_names):
        boxed = [m for m in metric_names if METRICS[m].data == "boxes"]
        raise UsageError(
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
            model, data = load_user_model(args.model)
            data = subset(data, args.samples)
            what = f"{args.model}"
        else:
            cfg = experiment_config(args)
            digits = load_mnist(n=cfg.n_train, seed=cfg.seed)
            check_samples(samples, digits[1][1], cfg.n_train)  # before training

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
            raise UsageError(f"argument --out: {e}") from None
        except (ValueError, TypeError) as e:  # the data, the model or a size the metrics cannot use
            where = f"argument --model: on the data of {args.model}: " if args.model is not None else ""
            raise UsageError(f"{where}{e}") from None
        seconds = time.perf_counter() - start
        say(_summary(rows))
        say(f"{len(rows)} rows: {args.out}; evaluation {seconds:.2f} s")
        return 0
    finally:
        if owned or (distributed and dist.is_initialized()):  # the group this command made, or torchrun's
            dist.destroy_process_group()


def _summary(rows) -> str:
    """Mean over samples (NaN left out) per method and quantity, as a text table."""
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
