"""The ``train``, ``attribute`` and ``reproduce`` commands (imported when a
command runs: this module imports torch)."""

from __future__ import annotations

import importlib
from pathlib import Path

import torch

from captum_unified import data as shipped
from captum_unified.cli.common import UsageError, check_samples, experiment_config, is_quick, train_or_load
from captum_unified.experiments.common import compute_attributions, draw_samples, select_targets, set_threads
from captum_unified.models import default_cache_dir
from captum_unified.registry import METHODS, PAPERS, ZOO

__all__ = ["cmd_train", "cmd_attribute", "cmd_reproduce"]


def cmd_train(args) -> int:
    cfg = experiment_config(args)
    set_threads(cfg)
    model, acc = train_or_load(args, cfg)
    print(
        f"{args.model} ({args.activation or 'default activation'}): test accuracy {acc:.4f}; "
        f"cache {cfg.cache_dir or default_cache_dir()}"
    )
    return 0


def cmd_attribute(args) -> int:
    import matplotlib  # here, not at import: a headless backend only for this command's figures

    matplotlib.use("Agg")
    from captum.attr import visualization as viz  # after the backend is chosen

    cfg = experiment_config(args)
    set_threads(cfg)
    data = shipped.load_mnist(n=cfg.n_train, seed=cfg.seed)
    check_samples(args.samples, data[1][1], cfg.n_train)
    model, acc = train_or_load(args, cfg, data)
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


def cmd_reproduce(args) -> int:
    module = importlib.import_module(PAPERS[args.paper].module)
    cfg = experiment_config(args)
    # each pipeline's own default sizes, where not given on the command line
    for k, v in (module.QUICK_DEFAULTS if is_quick(args) else module.DEFAULTS).items():
        if getattr(args, k, None) is None:
            setattr(cfg, k, v)
    if hasattr(module, "check_samples"):  # a pipeline on other data checks its own
        try:
            module.check_samples(cfg)
        except ValueError as e:
            raise UsageError(f"argument --samples: {e}") from e
    else:
        check_samples(cfg.samples, shipped.load_mnist(n=cfg.n_train, seed=cfg.seed)[1][1], cfg.n_train)
    paths = module.run(cfg)
    for k, v in paths.items():
        print(f"{k}: {v}")
    return 0
