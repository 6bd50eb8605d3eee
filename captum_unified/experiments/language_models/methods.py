"""The methods compared by ``reproduce transformers`` (:data:`METHODS`), and LXT's,
run in worker processes of another interpreter."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum.attr import FeatureAblation, LayerIntegratedGradients
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.canonizers import canonize
from captum_unified.experiments import lxt_worker
from captum_unified.experiments.language_models.tasks import _Task

#: Integrated Gradients' interpolation points per forward pass.
IG_BATCH = 512


@dataclass(frozen=True)
class LMMethod:
    """One compared method.

    Attributes:
        name: the CSV name.
        label: the name in the report and figure.
        source: ``"captum_unified"``, ``"captum"`` or ``"lxt"``.
        attribute: ``attribute(f, x, target) -> attributions of x's shape`` (``f`` a
            :class:`~captum_unified.experiments.token_models.TokenModel`, ``x`` the token embeddings,
            the baseline 0).
        baseline: the reference of its completeness: ``"zero"`` (the zero embedding, the
            methods with a baseline) or ``"none"`` (LRP, Gradient*Input: conservation of
            :math:`S(x)`).
        complete: the method claims completeness against its reference.
    """

    name: str
    label: str
    source: str
    attribute: Callable[[nn.Module, Tensor, Tensor], Tensor]
    baseline: str = "zero"
    complete: bool = True


# ----------------------------------------------------------------- methods
def _ours(cls_name: str, **kw: Any) -> Callable:
    def attribute(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        method = getattr(cu, cls_name)(f, **kw)
        if cls_name == "DeepLiftRescale":
            return method.attribute(x, baselines=torch.zeros_like(x), target=target)
        return method.attribute(x, target=target)

    return attribute


def _lrp(products: str) -> Callable:
    def attribute(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        # LRP's rules mean GELU and an RMS norm as one op each: the module map (canonizers)
        with canonize(f):
            return cu.EpsilonLRP(f, epsilon=1e-6, products=products).attribute(x, target=target)

    return attribute


def _lig(steps: int) -> Callable:
    def attribute(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
        lig = LayerIntegratedGradients(f, f.tokens)
        return lig.attribute(
            x,
            baselines=torch.zeros_like(x),
            target=target,
            n_steps=steps,
            internal_batch_size=max(IG_BATCH, len(x)),
        )

    return attribute


def _feature_ablation(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    n_tokens, dim = x.shape[1], x.shape[2]
    mask = torch.arange(n_tokens).view(1, n_tokens, 1).expand(1, n_tokens, dim)
    a = FeatureAblation(f).attribute(x, baselines=0.0, target=target, feature_mask=mask, perturbations_per_eval=8)
    # every component of a token carries the token's output change: 1/D each, so a token's
    # components sum to it
    return a / dim


#: The compared methods (LXT's, when importable, are added by :func:`_lxt_methods`).
METHODS: tuple[LMMethod, ...] = (
    LMMethod("deeplift", "DeepLIFT (Rescale)", "captum_unified", _ours("DeepLiftRescale")),
    LMMethod("lrp_uniform", "epsilon-LRP uniform", "captum_unified", _lrp("uniform"), baseline="none"),
    LMMethod("lrp_gate", "epsilon-LRP gate", "captum_unified", _lrp("gate"), baseline="none"),
    LMMethod("gi", "Gradient*Input", "captum_unified", _ours("GradientXInput"), baseline="none", complete=False),
    LMMethod("lig16", "Captum LayerIG-16", "captum", _lig(16)),
    LMMethod("lig64", "Captum LayerIG-64", "captum", _lig(64)),
    LMMethod("lig256", "Captum LayerIG-256", "captum", _lig(256)),
    LMMethod("feature_ablation", "Captum FeatureAblation", "captum", _feature_ablation, complete=False),
)

#: LXT's methods (Achtibat et al. 2024): name -> label. Optional: run by the LXT worker
#: (:mod:`~captum_unified.experiments.lxt_worker`) when an interpreter where LXT imports is there.
LXT_METHODS = {"lxt_attnlrp": "LXT AttnLRP", "lxt_cplrp": "LXT CP-LRP"}
#: LXT's methods -> the worker's variant.
LXT_VARIANTS = {"lxt_attnlrp": "attnlrp", "lxt_cplrp": "cplrp"}


def _lxt_not_here(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    raise RuntimeError(
        "LXT's attributions come from the LXT worker (captum_unified.experiments.lxt_worker), "
        "never from this process: LXT patches transformers' classes for the whole process."
    )


def _lxt_method(name: str) -> LMMethod:
    """The row of an LXT method: LRP, so its reference is S(x) (conservation), as epsilon-LRP's."""
    return LMMethod(name, LXT_METHODS[name], "lxt", _lxt_not_here, baseline="none")


def _lxt_status(lxt_python: str | None = None) -> tuple[str | None, str]:
    """Where LXT's rows run: ``(interpreter, "")``, or ``(None, why not)`` (the rows' ``status``).

    Args:
        lxt_python: ``--lxt-python``, an interpreter where LXT imports (LXT 2.1 needs
            transformers 4.52); None: this interpreter, when ``import lxt`` works here.

    Returns:
        ``(python, status)``: the interpreter that runs the worker and ``""``, or ``None`` and
        why LXT's rows are not run.
    """
    if lxt_python is None:
        try:
            import lxt  # noqa: F401  (optional comparison; never a requirement)
        except Exception as e:  # ImportError, or an import-time error against this transformers
            return None, (
                f"not importable ({type(e).__name__}: {e}); --lxt-python PATH runs these rows in an "
                "interpreter where LXT imports"
            )
        lxt_python = sys.executable
    versions, why = lxt_worker.probe(lxt_python)
    if versions is None:
        return None, f"not run (LXT's rules do not import in {lxt_python}: {why})"
    return lxt_python, ""


def _lxt_job(task: _Task, variant: str, threads: int, fx: Tensor) -> dict[str, Any]:
    """The LXT worker's job for one model: how to rebuild it, its weights and the samples."""
    if task.hf is None or task.prefix is None or not task.builder:
        raise ValueError(f"{task.label}: the task does not say how to rebuild its model for the LXT worker.")
    return {
        "variant": variant,
        "arch": task.arch,
        "builder": task.builder,
        "state_dict": {k: v.detach().clone() for k, v in task.hf.state_dict().items()},
        "prefix": task.prefix.detach().clone(),
        "x": task.x.detach().clone(),
        "target": task.target.clone(),
        "fx": fx.detach().clone(),
        "threads": threads,
    }


@dataclass
class _External:
    """An attribution computed outside this process (LXT's) and what its row needs."""

    attributions: Tensor
    seconds: float
    gradient_seconds: float
    note: str


def _lxt_attributions(task: _Task, python: str, threads: int) -> tuple[dict[str, _External], dict[str, str]]:
    """LXT's attributions for one model, one worker process per variant.

    Args:
        task: the model and its explained samples.
        python: the interpreter of the worker.
        threads: torch threads of the worker (this run's).

    Returns:
        ``(done, not_run)``: method name -> :class:`_External`, and method name -> why not
        (the row's ``status``).
    """
    with torch.no_grad():
        fx = task.f(task.x)[torch.arange(len(task.x)), task.target]
    done: dict[str, _External] = {}
    not_run: dict[str, str] = {}
    for name, variant in LXT_VARIANTS.items():
        try:
            res = lxt_worker.run_worker(python, _lxt_job(task, variant, threads, fx))
        except RuntimeError as e:
            not_run[name] = f"failed ({e})"
            continue
        if res["status"] != "ok":
            not_run[name] = res["status"]
            continue
        v = res["versions"]
        done[name] = _External(
            res["attributions"],
            float(res["seconds"]),
            float(res["gradient_seconds"]),
            f"lxt {v['lxt']}, transformers {v['transformers']}, torch {v['torch']}; S(x) within "
            f"{float(res['forward_max_abs_diff']):.1e} of this run's",
        )
    return done, not_run
