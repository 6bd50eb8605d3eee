r"""``captum-unified reproduce transformers``: methods compared on trained transformers (issue #18).

Three trained, unmodified Hugging Face models of :mod:`captum_unified.text`:

* the character-level ``GPT2LMHeadModel`` and its ``LlamaForCausalLM`` twin (RMSNorm, SiLU
  gate, rotary positions), trained on the standard library's ``help()`` prose; the explained
  quantity is :math:`\log p(c_{t+1} \mid \langle bos \rangle, c_1 \dots c_t)`, the
  log-probability of the true next character of a seeded random window of the validation
  text;
* the sentiment ``BertForSequenceClassification`` trained on sentences made of VADER-lexicon
  words with known valences; the explained quantity is the true class's logit, and the
  ground truth of a word is its valence (sign flipped for the negative class).

A feature is a token: the input is the tokens' embedding vectors (the model is fed
``inputs_embeds``; ``<bos>`` / ``[CLS]`` fixed in front, position embeddings added inside the
model, so a removed token keeps its position), a token is removed by setting its whole
embedding vector to 0 (the baseline of every method that takes one), and its attribution is
the sum over its vector. Methods (:data:`METHODS`): this package's DeepLIFT (Rescale),
epsilon-LRP with the ``"uniform"`` and ``"gate"`` product policies (inside
:func:`~captum_unified.canonizers.canonize`, so GELU and RMS norms are one op each, as LRP's
rules mean) and Gradient*Input; Captum's ``LayerIntegratedGradients`` (16, 64 and 256 steps)
on the token-embedding input and ``FeatureAblation`` (one token at a time); LXT's AttnLRP and
CP-LRP (:data:`LXT_METHODS`) when an interpreter where LXT imports is there (``--lxt-python``,
or this one): LXT patches transformers' classes for the whole process, so its attributions
come from worker processes (:mod:`~captum_unified.experiments.lxt_worker`) on this run's
weights and samples, and are measured here like the others; otherwise their rows say why not.

Measured per model and method (:func:`run` writes the files of
:data:`captum_unified.registry.PAPERS` ``["transformers"]``):

* completeness: :math:`\sum_i R_i` against :math:`S(x) - S(\bar x)` and (LRP's conservation)
  against :math:`S(x)`, both from forward passes of the untouched model;
* token deletion (:func:`~captum_unified.metrics.region_perturbation`): the explained
  quantity as tokens are removed most relevant first (MoRF) and least relevant first (LeRF),
  and the deletion score, the mean over the curve of LeRF minus MoRF (higher is better);
* Sensitivity-n over tokens (:func:`~captum_unified.metrics.sensitivity_n`, the same subsets
  for every method);
* on the sentiment task, Spearman's rank correlation of each sentence's word attributions
  with the words' valences;
* seconds of one call on the batch of all samples (after a warm-up call on one sample), as
  a multiple of a plain gradient (:func:`torch.autograd.grad` of the same outputs; the
  fastest of three calls after a warm-up) timed in the same run.
"""

from __future__ import annotations

import math
import platform
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from captum.attr import FeatureAblation, LayerIntegratedGradients
from matplotlib.figure import Figure
from torch import Tensor, nn

import captum_unified as cu
from captum_unified.canonizers import canonize
from captum_unified.data import stratified_sample
from captum_unified.experiments import lxt_worker
from captum_unified.experiments.ancona_text import WordEmbeddingClassifier
from captum_unified.experiments.common import (
    ExperimentConfig,
    collect_attribution_warnings,
    progress,
    set_threads,
    warnings_section,
    write_csv,
)
from captum_unified.experiments.findings import TRAINED_ACCURACY, spearman
from captum_unified.experiments.significance import ALPHA, one_sample_t_test
from captum_unified.experiments.token_models import NextTokenLogProb, TokenModel
from captum_unified.metrics import default_n_list, region_perturbation, sensitivity_n
from captum_unified.text import load_corpus, load_or_train_char_lm, load_or_train_sentiment
from captum_unified.text.char_lm import encode_text
from captum_unified.text.sentiment import SENTIMENT_SIZES

__all__ = [
    "DEFAULTS",
    "QUICK_DEFAULTS",
    "METHODS",
    "LXT_METHODS",
    "MODELS",
    "LMMethod",
    "TokenModel",
    "NextTokenLogProb",
    "check_samples",
    "run",
    "deletion_figure",
    "findings_sentences",
    "lxt_sentences",
]

#: Sizes of ``reproduce transformers`` when ``--samples`` / ``--subsets`` are not given.
DEFAULTS: dict[str, Any] = dict(samples=64, subsets=64)
QUICK_DEFAULTS: dict[str, Any] = dict(samples=6, subsets=8)

#: Characters of context explained per window (``<bos>`` in front), per model size.
CONTEXT = {"full": 48, "quick": 16}
#: Sensitivity-n subset sizes: this many log-spaced sizes up to 80% of the tokens.
N_POINTS = 8
#: Integrated Gradients' interpolation points per forward pass.
IG_BATCH = 512
#: A ranking of methods is stated only with at least this many explained samples per model
#: (and a paired t test at :data:`~captum_unified.experiments.significance.ALPHA`).
MIN_SAMPLES = 50


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


# ----------------------------------------------------------------- models and samples
@dataclass
class _Task:
    model: str  # the CSV's model name
    label: str
    f: TokenModel
    x: Tensor  # (B, L, D) token embeddings
    target: Tensor
    quality: dict[str, float]  # the trained model's numbers
    trained: bool
    quality_text: str
    explained: str
    tokens: list[list[str]]
    truth: Tensor | None = None  # (B, L) valence for the target class (sentiment)
    arch: str = ""  # the Hugging Face model's architecture (the LXT worker rebuilds it)
    builder: dict[str, Any] = field(default_factory=dict)  # how: kind, size fields, seed, vocab size
    hf: nn.Module | None = None  # the Hugging Face model inside f
    prefix: Tensor | None = None  # the fixed <bos> / [CLS] embedding in front of x


#: The models of a run: name -> (label, architecture).
MODELS = {
    "char_gpt2": ("char GPT-2", "gpt2"),
    "char_llama": ("char LLaMA", "llama"),
    "sentiment_bert": ("sentiment BERT", "bert"),
}


def _frozen(model: nn.Module) -> nn.Module:
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _char_task(name: str, arch: str, cfg: ExperimentConfig, size: str) -> _Task:
    trained = load_or_train_char_lm(arch, size, seed=cfg.seed, cache_dir=cfg.cache_dir)
    model = _frozen(trained.model)
    corpus = load_corpus(trained.info["corpus"])
    ids = encode_text(corpus.validation)
    ctx = CONTEXT[size]
    rng = np.random.RandomState(cfg.seed)
    starts = rng.choice(len(ids) - ctx - 1, size=cfg.samples, replace=False)
    windows = torch.stack([ids[s : s + ctx] for s in starts.tolist()])
    target = torch.stack([ids[s + ctx] for s in starts.tolist()])
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    bos = trained.tokenizer.bos_token_id
    f = TokenModel(NextTokenLogProb(model, table[bos])).eval()
    m = trained.metrics
    beats = m["val_loss"] < m["bigram_loss"]
    quality_text = (
        f"validation loss {m['val_loss']:.3f} nats per character (bigram baseline {m['bigram_loss']:.3f}, "
        f"unigram {m['unigram_loss']:.3f})"
    )
    vocab = {i: t for t, i in trained.tokenizer.get_vocab().items()}
    return _Task(
        name,
        MODELS[name][0],
        f,
        table[windows].clone(),
        target,
        {k: float(v) for k, v in m.items()},
        bool(beats),
        quality_text,
        f"log p(true next character | <bos> + {ctx} characters of the validation text)",
        [[vocab[int(i)] for i in w] for w in windows],
        arch=arch,
        builder={"kind": "char_lm", "size": asdict(trained.info["size"]), "seed": cfg.seed},
        hf=model,
        prefix=table[bos],
    )


def _sentiment_task(cfg: ExperimentConfig, size: str) -> _Task:
    trained = load_or_train_sentiment("bert", size, seed=cfg.seed, cache_dir=cfg.cache_dir)
    model = _frozen(trained.model)
    test = trained.info["test"]
    full = torch.nonzero(test.attention_mask.bool().all(dim=1)).flatten()  # no padding
    n = min(cfg.samples, len(full))
    pick = full[torch.as_tensor(stratified_sample(test.labels[full], n, cfg.seed))]
    ids, target = test.input_ids[pick], test.labels[pick]
    table = model.get_input_embeddings().weight.detach()  # type: ignore[operator]
    f = TokenModel(WordEmbeddingClassifier(model, table[ids[0, 0]])).eval()
    sign = target.double() * 2 - 1
    truth = test.contributions[pick][:, 1:] * sign[:, None]
    m = trained.metrics
    vocab = {i: t for t, i in trained.tokenizer.get_vocab().items()}
    return _Task(
        "sentiment_bert",
        MODELS["sentiment_bert"][0],
        f,
        table[ids[:, 1:]].clone(),
        target,
        {k: float(v) for k, v in m.items()},
        m["test_accuracy"] >= TRAINED_ACCURACY,
        f"test accuracy {m['test_accuracy']:.1%} (majority 50%), test loss {m['test_loss']:.3f}",
        f"the true class's logit of [CLS] + {ids.shape[1] - 1} words",
        [[vocab[int(i)] for i in row[1:]] for row in ids],
        truth,
        arch="bert",
        builder={
            "kind": "sentiment",
            "size": asdict(SENTIMENT_SIZES[size]),
            "seed": cfg.seed,
            "vocab_size": int(table.shape[0]),
        },
        hf=model,
        prefix=table[ids[0, 0]],
    )


def check_samples(cfg: ExperimentConfig) -> None:
    """``--samples`` more than the pipeline can draw (the sentiment test set's full-length
    sentences bound it)."""
    if cfg.samples < 3:
        raise ValueError(f"{cfg.samples} is too few: rank correlations need at least 3 samples; give 3 or more.")


# ----------------------------------------------------------------- measuring
def _timed(fn: Callable[[], Tensor]) -> tuple[Tensor, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _plain_gradient(f: nn.Module, x: Tensor, target: Tensor) -> Tensor:
    x = x.detach().requires_grad_(True)
    out = f(x)[torch.arange(len(x)), target]
    (g,) = torch.autograd.grad(out.sum(), x)
    return g


def _mean_sd(v: np.ndarray) -> tuple[float, float, int]:
    v = v[np.isfinite(v)]
    return (
        float(v.mean()) if len(v) else float("nan"),
        float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
        int(len(v)),
    )


def _measure(
    task: _Task,
    methods: list[LMMethod],
    cfg: ExperimentConfig,
    warned: dict,
    external: dict[str, _External] | None = None,
) -> dict[str, Any]:
    """Every method's attribution, time and metrics on one model.

    Args:
        task: the model and its explained samples.
        methods: the methods; those named in ``external`` are not called here.
        cfg: the run's configuration (``subsets``, ``seed``).
        warned: collects the methods' warnings.
        external: attributions computed elsewhere (LXT's worker) by method name, measured
            like the others; their time is against their own process's plain gradient.

    Returns:
        dict: ``fx``, ``f0``, ``grad_seconds`` (this process's plain gradient),
        ``grad_seconds_of`` (per method, where not this process's), ``attrs``, ``seconds``,
        ``curves``, ``sens``.
    """
    external = external or {}
    f, x, target = task.f, task.x, task.target
    rows = torch.arange(len(x))
    n_tokens, dim = x.shape[1], x.shape[2]
    with torch.no_grad():
        fx = f(x)[rows, target].double()
        f0 = f(torch.zeros_like(x))[rows, target].double()
    _plain_gradient(f, x, target)  # warm-up: first-call costs are not a method's
    grad_seconds = min(_timed(lambda: _plain_gradient(f, x, target))[1] for _ in range(3))
    attrs: dict[str, Tensor] = {}
    seconds: dict[str, float] = {}
    grad_of: dict[str, float] = {}
    for m in methods:
        if m.name in external:
            e = external[m.name]
            a, s, grad_of[m.name] = e.attributions, e.seconds, e.gradient_seconds
            if a.shape != x.shape:
                raise RuntimeError(f"{m.label} returned shape {tuple(a.shape)} on {task.label}, not {tuple(x.shape)}.")
        else:
            with collect_attribution_warnings(warned, f"{task.label} {m.label}"):
                m.attribute(f, x[:1], target[:1])  # warm-up on one sample: one-time costs (op table, imports)
                a, s = _timed(partial(m.attribute, f, x, target))
        if not torch.isfinite(a).all():
            raise RuntimeError(f"{m.label} returned NaN or inf on {task.label}.")
        attrs[m.name], seconds[m.name] = a.detach(), s
    mask = torch.arange(n_tokens).view(1, n_tokens, 1).expand(1, n_tokens, dim)
    curves: dict[str, dict[str, Any]] = {}
    for order in ("most_relevant_first", "least_relevant_first"):
        for m in methods:
            curves.setdefault(m.name, {})[order] = region_perturbation(
                f, x, attrs[m.name], baselines=0.0, target=target, feature_mask=mask, order=order
            )
    ns = default_n_list(n_tokens, num=N_POINTS) + [n_tokens]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # per-sample NaN at n = N is expected (one subset)
        sens = sensitivity_n(
            f,
            x,
            {m.name: attrs[m.name] for m in methods},
            n=ns,
            baselines=0.0,
            target=target,
            feature_mask=mask,
            n_subsets=cfg.subsets,
            seed=cfg.seed,
        )
    return dict(
        fx=fx,
        f0=f0,
        grad_seconds=grad_seconds,
        grad_seconds_of=grad_of,
        attrs=attrs,
        seconds=seconds,
        curves=curves,
        sens=sens,
    )


def _method_rows(task: _Task, methods: list[LMMethod], res: dict, cfg: ExperimentConfig) -> tuple[list, list, list]:
    """The rows of the three CSVs for one model: per method, per (method, order, k), per (method, n)."""
    fx, f0 = res["fx"], res["f0"]
    gap = fx - f0
    n_tokens = task.x.shape[1]
    summary, curve_rows, sens_rows = [], [], []
    token_attrs = {k: a.sum(-1).double() for k, a in res["attrs"].items()}
    for m in methods:
        total = token_attrs[m.name].sum(1)
        # relative to the mean size of what is explained (a single sample's S(x) - S(0) can be ~0)
        comp = (total - gap).abs()
        comp_rel = comp / gap.abs().mean().clamp_min(1e-12)
        cons_rel = (total - fx).abs() / fx.abs().mean().clamp_min(1e-12)
        grad = res.get("grad_seconds_of", {}).get(m.name, res["grad_seconds"])
        morf = res["curves"][m.name]["most_relevant_first"]
        lerf = res["curves"][m.name]["least_relevant_first"]
        score = (lerf.curves.double() - morf.curves.double()).mean(1).numpy()
        s_mean, s_sd, s_n = _mean_sd(score)
        sn = res["sens"][m.name]
        per_sample_sens = np.nanmean(sn.correlations[:, :-1].numpy(), axis=1)  # n < N (per sample defined)
        p_mean, p_sd, _ = _mean_sd(per_sample_sens)
        row: dict[str, Any] = {
            "model": task.model,
            "method": m.name,
            "method_label": m.label,
            "source": m.source,
            "status": "ok",
            "samples": len(total),
            "tokens": n_tokens,
            "trained": task.trained,
            "model_quality": task.quality_text,
            "completeness_reference": "S(x) - S(0)",
            "claims_completeness": m.complete and m.baseline == "zero",
            "completeness_max_abs": float(comp.max()),
            "completeness_median_rel": float(comp_rel.median()),
            "completeness_max_rel": float(comp_rel.max()),
            "conservation_median_rel": float(cons_rel.median()),
            "conservation_max_rel": float(cons_rel.max()),
            "mean_abs_output_change": float(gap.abs().mean()),
            "deletion_score": s_mean,
            "deletion_score_sd": s_sd,
            "deletion_score_n": s_n,
            "morf_aopc": float(morf.aopc.mean()),
            "lerf_aopc": float(lerf.aopc.mean()),
            "sensitivity_n_mean": p_mean,
            "sensitivity_n_sd": p_sd,
            "sensitivity_n_at_N_pooled": float(sn.pooled[-1]),
            "seconds": res["seconds"][m.name],
            "gradient_seconds": grad,
            "time_x_gradient": res["seconds"][m.name] / grad,
        }
        if task.truth is not None:
            rhos = np.array(
                [spearman(a.tolist(), t.tolist()) for a, t in zip(token_attrs[m.name], task.truth)], dtype=float
            )
            r_mean, r_sd, r_n = _mean_sd(rhos)
            _, p = one_sample_t_test(r_mean, r_sd, r_n)
            row.update(spearman_mean=r_mean, spearman_sd=r_sd, spearman_n=r_n, spearman_p=p)
            row["_rhos"] = rhos
        row["_scores"] = score
        row["_sens"] = per_sample_sens
        summary.append(row)
        for order, res_o in (("MoRF", morf), ("LeRF", lerf)):
            c = res_o.curves.double() - fx[:, None]
            for j, k in enumerate(res_o.k):
                col = c[:, j]
                curve_rows.append(
                    {
                        "model": task.model,
                        "method": m.name,
                        "method_label": m.label,
                        "order": order,
                        "k": k,
                        "fraction_removed": round(k / n_tokens, 4),
                        "mean_change": float(col.mean()),
                        "sem_change": float(col.std() / math.sqrt(len(col))) if len(col) > 1 else float("nan"),
                        "samples": len(col),
                    }
                )
        for j, k in enumerate(sn.n):
            col = sn.correlations[:, j]
            defined = col[~col.isnan()]
            sens_rows.append(
                {
                    "model": task.model,
                    "method": m.name,
                    "method_label": m.label,
                    "n": k,
                    "n_fraction": round(k / n_tokens, 4),
                    "mean_pcc": float(sn.mean[j]),
                    "sd_pcc": float(defined.std()) if len(defined) > 1 else float("nan"),
                    "pooled_pcc": float(sn.pooled[j]),
                    "n_nan": int(sn.n_nan[j]),
                    "samples": len(col),
                    "subsets": cfg.subsets,
                }
            )
    return summary, curve_rows, sens_rows


def _paired(rows: list[dict], key: str) -> list[dict]:
    """Per model: the best method by the mean of the per-sample values ``key`` against every
    other (paired t test on the per-sample differences)."""
    out = []
    for model in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == model and key in r]
        if len(group) < 2:
            continue
        best = max(group, key=lambda r: np.nanmean(r[key]))
        for r in group:
            if r is best:
                continue
            d = np.asarray(best[key]) - np.asarray(r[key])
            mean, sd, n = _mean_sd(d)
            _, p = one_sample_t_test(mean, sd, n)
            out.append({"model": model, "best": best["method"], "other": r["method"], "diff": mean, "n": n, "p": p})
    return out


# ----------------------------------------------------------------- sentences
def _fmt(v: Any, spec: str = ".3g") -> str:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return "n/a"
    return "n/a" if v != v else format(v, spec)


def findings_sentences(summary: list[dict], tests: list[dict]) -> list[str]:
    """The report's sentences, generated from ``transformers_methods.csv`` rows and the paired
    tests of ``transformers_tests.csv`` (values may be strings). A ranking is stated only for a
    trained model, with at least :data:`~captum_unified.experiments.findings.MIN_SAMPLES`
    samples and a paired t test below
    :data:`~captum_unified.experiments.significance.ALPHA`; otherwise the sentence says there
    is not enough to conclude."""
    out = []
    ok = [r for r in summary if r.get("status") == "ok"]
    for model in dict.fromkeys(r["model"] for r in ok):
        rows = [r for r in ok if r["model"] == model]
        label = MODELS.get(model, (model,))[0]
        n = int(float(rows[0]["samples"]))
        trained = str(rows[0]["trained"]) in ("True", "true", "1")
        quality = rows[0]["model_quality"]
        if not trained:
            out.append(
                f"{label}: the model is not trained well enough ({quality}); there is not enough to conclude "
                "anything about the methods from it."
            )
            continue
        enough = n >= MIN_SAMPLES
        complete = [r for r in rows if str(r["claims_completeness"]) in ("True", "true", "1")]
        if complete:
            parts = [f"{r['method_label']} {_fmt(r['completeness_max_rel'], '.1e')}" for r in complete]
            out.append(
                f"{label} ({quality}): the largest relative completeness error over {n} samples, "
                f"max |sum of attributions - (S(x) - S(0))| / mean |S(x) - S(0)|, S measured with forward passes: "
                + ", ".join(parts)
                + "."
            )
        lrp = [r for r in rows if r["method"].startswith("lrp")]
        if lrp:
            out.append(
                f"{label}: epsilon-LRP's relevance against S(x) itself (conservation, median relative error "
                "over the samples): "
                + ", ".join(f"{r['method_label']} {_fmt(r['conservation_median_rel'], '.2g')}" for r in lrp)
                + (
                    "; S is a log-probability here, whose log-sum-exp over the vocabulary LRP's rules do not conserve"
                    if model.startswith("char")
                    else "; the model has biases, which take part of the logit"
                )
                + "."
            )
        out += lxt_sentences(label, rows)
        out.append(
            f"{label}: seconds of one call on the {n} samples as a multiple of a plain gradient timed in the same "
            "run: " + ", ".join(f"{r['method_label']} {_fmt(r['time_x_gradient'], '.3g')}x" for r in rows) + "."
        )
        for what, col in (
            ("deletion score (LeRF - MoRF, higher is better)", "deletion_score"),
            ("Sensitivity-n (mean PCC over n < N)", "sensitivity_n_mean"),
            ("rank correlation with the words' valences (Spearman)", "spearman_mean"),
        ):
            if not any(col in r and r[col] not in ("", None) for r in rows):
                continue
            ranked = sorted(rows, key=lambda r: -float(r[col]) if _fmt(r[col]) != "n/a" else math.inf)
            best = ranked[0]
            mine = [t for t in tests if t["model"] == model and t["metric"] == col and t["best"] == best["method"]]
            lead = f"{label}, {what}: highest {best['method_label']} ({_fmt(best[col])})"
            if not enough:
                out.append(
                    lead + f"; with {n} samples (fewer than {MIN_SAMPLES}) there is not enough to conclude a ranking."
                )
                continue
            beaten = [t for t in mine if float(t["p"]) < ALPHA and float(t["diff"]) > 0]
            tied = [t for t in mine if not (float(t["p"]) < ALPHA and float(t["diff"]) > 0)]
            names = {r["method"]: r["method_label"] for r in rows}
            text = lead
            if beaten:
                text += (
                    f"; higher than {len(beaten)} of the {len(mine)} others (paired t test over {n} samples, "
                    f"p < {ALPHA})"
                )
            if tied:
                text += (
                    "; not significantly different from "
                    + ", ".join(f"{names[t['other']]} (p = {_fmt(t['p'], '.2g')})" for t in tied)
                    + ": not enough to conclude which of these is better"
                )
            out.append(text + ".")
            if col == "spearman_mean":
                sig = [r for r in rows if _fmt(r.get("spearman_p")) != "n/a" and float(r["spearman_p"]) < ALPHA]
                sig_pos = [r for r in sig if float(r["spearman_mean"]) > 0]
                out.append(
                    f"{label}: the mean rank correlation with the valences is positive and significant "
                    f"(one-sample t test over {n} sentences, p < {ALPHA}) for {len(sig_pos)} of {len(rows)} methods"
                    + (": " + ", ".join(r["method_label"] for r in sig_pos) if sig_pos else "")
                    + "."
                )
    return out


def lxt_sentences(label: str, rows: list[dict]) -> list[str]:
    """The sentence on LXT's rows of one model (none when LXT did not run): conservation and
    how far its token attributions are from this package's epsilon-LRP (``max_rel_diff_*``).

    Args:
        label: the model's name in the report.
        rows: the model's ``status == "ok"`` rows (values may be strings).

    Returns:
        list of str: zero or one sentence.
    """
    lxt = [r for r in rows if r.get("source") == "lxt"]
    if not lxt:
        return []
    names = {r["method"]: r["method_label"] for r in rows}
    parts = []
    for r in lxt:
        diffs = [
            f"{names.get(k[len('max_rel_diff_') :], k)} {_fmt(v, '.1e')}"
            for k, v in r.items()
            if k.startswith("max_rel_diff_") and _fmt(v) != "n/a"
        ]
        parts.append(
            f"{r['method_label']} conservation {_fmt(r['conservation_median_rel'], '.2g')}"
            + (f", largest difference from {' and '.join(diffs)}" if diffs else "")
        )
    return [
        f"{label}: LXT's rows (computed by the LXT worker on the same weights and samples, their time against the "
        "worker's own plain gradient; conservation as the median relative error against S(x); the largest "
        "|difference| of the token attributions relative to the largest |attribution| of the other method): "
        + "; ".join(parts)
        + "."
    ]


# ----------------------------------------------------------------- figure
#: Colour, marker and line style of each method in the figure (distinguishable without colour).
STYLES: dict[str, tuple[str, str, str]] = {
    "deeplift": ("#d62728", "o", "-"),
    "lrp_uniform": ("#1f77b4", "s", "-"),
    "lrp_gate": ("#17becf", "D", "--"),
    "gi": ("#7f7f7f", "v", ":"),
    "lig16": ("#bcbd22", "^", "-."),
    "lig64": ("#2ca02c", "<", "--"),
    "lig256": ("#006400", ">", "-"),
    "feature_ablation": ("#9467bd", "x", "-."),
    "lxt_attnlrp": ("#ff7f0e", "*", "-"),
    "lxt_cplrp": ("#8c564b", "P", "--"),
}


def deletion_figure(curves: list[dict], path: Path) -> Path:
    """The deletion curves of ``transformers_deletion.csv``: one column per model, MoRF on
    top, LeRF below; each method its own colour, marker and line style."""
    models = list(dict.fromkeys(r["model"] for r in curves))
    fig = Figure(figsize=(4.2 * len(models), 7.2), constrained_layout=True)
    axes = fig.subplots(2, len(models), squeeze=False)
    for j, model in enumerate(models):
        for i, order in enumerate(("MoRF", "LeRF")):
            ax = axes[i][j]
            rows = [r for r in curves if r["model"] == model and r["order"] == order]
            for method in dict.fromkeys(r["method"] for r in rows):
                pts = [r for r in rows if r["method"] == method]
                xs = [float(r["fraction_removed"]) for r in pts]
                ys = [float(r["mean_change"]) for r in pts]
                color, marker, ls = STYLES.get(method, ("black", ".", "-"))
                ax.plot(
                    xs,
                    ys,
                    color=color,
                    marker=marker,
                    linestyle=ls,
                    markevery=max(1, len(xs) // 8),
                    markersize=5,
                    linewidth=1.3,
                    label=pts[0]["method_label"],
                )
            ax.axhline(0.0, color="black", linewidth=0.5)
            title = MODELS.get(model, (model,))[0]
            ax.set_title(f"{title}: {'most' if order == 'MoRF' else 'least'} relevant removed first", fontsize=9)
            ax.set_xlabel("fraction of tokens removed (embedding set to 0)")
            ax.set_ylabel("change of S (mean over samples)")
            ax.grid(alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 4), fontsize=8)
    fig.savefig(path, dpi=110)
    return path


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
