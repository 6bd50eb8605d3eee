"""Ablation of DeepLIFT's bounded rules (issue 17; SPEC §5b).

DeepLIFT (Rescale) with its default rules -- softmax / log-softmax as
``exp(z - LSE(z))`` with a simplex multiplier at ``LSE``, normalisations by the
secant policy -- against the same method with ``norm="integrated"``, with the
plain Shapley splits of the decompositions (``softmax="shift"``,
``norm="decompose"``), with Ancona et al.'s ordinary-gradient products
(``products="gradient"``) and with Ancona et al.'s original rule (products,
norms and softmax all keep their gradient); references: 256-step Integrated
Gradients, Gradient*Input and random scores where they apply.

Cases:

* the sharpened-attention sweep: one block (LayerNorm, two-head softmax
  attention, GELU MLP, residuals, a linear head on the mean token) with its
  query and key weights multiplied by 1, 10, 30, 100 and 1000, in float32 and
  float64; random inputs and random baselines (``randn``), the predicted class;
* the trained character-level GPT-2 and LLaMA of :mod:`captum_unified.text`
  (``quick`` size, trained on the CPU and cached on first use): windows of the
  validation text, log p of the predicted next character, zero-embedding
  baseline; float32 (the trained dtype) and, in the full run, float64.

Columns: completeness measured from forward passes of the untouched model,
``|sum attr - (f(x) - f(b))| / |f(x) - f(b)|`` (median and largest over the
samples); ``sum |attr| / sum |IG-256|``; Pearson's correlation with 256-step
IG over the attribution's entries (mean over the samples); on the trained
models the token-deletion score (tokens' summed attributions ranked; each
deleted by zeroing its embedding: the mean log p along the least-relevant-first
curve minus the most-relevant-first one, its standard error and a paired t test
against the default rules). A call that raises
:class:`~captum_unified.backend.finite.NonFiniteError` is recorded as
``error: <op>`` and its numbers as NaN. Usage (one torch thread; about five
minutes for the full run, under a minute with ``--quick``)::

    python scripts/ablation_rules.py --out docs/_static/results/rules
    python scripts/ablation_rules.py --quick --out /tmp/rules

writes ``ablation_rules.csv`` (every row), the docs' tables
``ablation_rules_sweep.csv`` and ``ablation_rules_trained.csv``,
``ablation_rules.md`` and ``ablation_rules_findings.rst`` (sentences generated
from the numbers).
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
import warnings
from pathlib import Path

import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, also when run from elsewhere

import captum_unified as cu  # noqa: E402  (after the path above)
from captum_unified.backend.finite import NonFiniteError  # noqa: E402
from captum_unified.experiments.common import read_csv, write_csv  # noqa: E402
from captum_unified.experiments.findings import _f as _num  # noqa: E402  (the findings' number parsing)
from captum_unified.experiments.findings import _g as _format_number  # noqa: E402
from captum_unified.experiments.findings import to_rst  # noqa: E402
from captum_unified.experiments.significance import ALPHA, one_sample_t_test  # noqa: E402

SCALES = (1, 10, 30, 100, 1000)
#: the issue's bounds on DeepLIFT's completeness (relative)
BOUND = {"float32": 1e-4, "float64": 1e-8}
DEFAULT = "DeepLIFT (default: logsumexp, secant)"
SHAPLEY = "DeepLIFT, Shapley split (softmax='shift', norm='decompose')"
#: row label -> (kind, DeepLiftRescale keyword arguments)
METHODS: dict[str, tuple[str, dict]] = {
    DEFAULT: ("dl", {}),
    "DeepLIFT, norm='integrated'": ("dl", {"norm": "integrated"}),
    SHAPLEY: ("dl", {"softmax": "shift", "norm": "decompose"}),
    "DeepLIFT, products='gradient' (Ancona's products)": ("dl", {"products": "gradient"}),
    "Ancona et al. 2018 (products, norm, softmax: 'gradient')": (
        "dl",
        {"products": "gradient", "norm": "gradient", "softmax": "gradient"},
    ),
    "Gradient*Input": ("gi", {}),  # its baseline is 0: the trained models only
    "IG-256": ("ig", {}),
    "random": ("random", {}),  # token scores: the trained models only
}
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class AttentionBlock(nn.Module):
    """LayerNorm, softmax attention (query and key weights times ``scale``), GELU MLP, residuals."""

    def __init__(self, scale: float, d: int = 16, heads: int = 2, classes: int = 3, seed: int = 2):
        super().__init__()
        torch.manual_seed(seed)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.q, self.k, self.v, self.o = (nn.Linear(d, d) for _ in range(4))
        with torch.no_grad():
            self.q.weight.mul_(scale)
            self.k.weight.mul_(scale)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.heads, self.head = heads, nn.Linear(d, classes)

    def forward(self, x):
        b, n, d = x.shape
        y = self.ln1(x)
        q, k, v = (m(y).view(b, n, self.heads, -1).transpose(1, 2) for m in (self.q, self.k, self.v))
        a = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, -1)
        x = x + self.o((a @ v).transpose(1, 2).reshape(b, n, d))
        x = x + self.mlp(self.ln2(x))
        return self.head(x.mean(1))


class LastLogProb(nn.Module):
    """Input embeddings -> log p of every character at the last position."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, e):
        return torch.log_softmax(self.model(inputs_embeds=e).logits[:, -1], -1)


def error_label(err: NonFiniteError) -> str:
    """``error: <op> (<where>)`` from the error's message (the first op it names)."""
    text = str(err)
    m = re.search(r"op (?:'([^']+)'|(the explained output))(?: in the (\w+) pass)?", text)
    if m is None:
        return "error: op not found"
    if "rule's treatment of op" in text:
        kind = "the rule's forward"
    elif "forward pass overflows" in text:
        kind = "the model's forward"
    else:
        kind = "backward"
    return f"error: {m.group(1) or m.group(2)} ({kind}" + (f", {m.group(3)} pass)" if m.group(3) else ")")


def target_values(f, x, target) -> torch.Tensor:
    with torch.no_grad():
        return f(x).gather(1, target[:, None])[:, 0].double()


def attribute(kind: str, kw: dict, f, x, b, target, ig_steps: int) -> torch.Tensor:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cu.AttributionWarning)  # products='gradient' warns, on purpose
        if kind == "dl":
            return cu.DeepLiftRescale(f, **kw).attribute(x, baselines=b, target=target).detach()
        if kind == "gi":
            return cu.GradientXInput(f).attribute(x, target=target).detach()
        return (
            cu.IntegratedGradients(f)
            .attribute(x, baselines=b, target=target, n_steps=ig_steps, internal_batch_size=4096)
            .detach()
        )


def pearson_rows(a: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Pearson's r of each sample's attributions with the reference's (NaN where one is constant)."""
    a, r = a.double().flatten(1), r.double().flatten(1)
    a, r = a - a.mean(1, keepdim=True), r - r.mean(1, keepdim=True)
    return (a * r).sum(1) / (a.norm(dim=1) * r.norm(dim=1))


def deletion_scores(logp, emb: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per sample: the mean of log p along the least-relevant-first deletion curve minus the
    most-relevant-first one (tokens deleted by zeroing their embedding, the baseline; every
    step of a curve in one forward pass)."""
    n, length = scores.shape
    steps = torch.arange(length + 1)
    areas = []
    for order in (scores.argsort(1), scores.argsort(1, descending=True)):
        rank = order.argsort(1)  # each token's place in the deletion order
        keep = (rank[None, :, :] >= steps[:, None, None]).to(emb.dtype)  # (steps, n, length)
        e = (emb[None] * keep[..., None]).flatten(0, 1)
        areas.append(logp(e, n_steps=length + 1).view(length + 1, n).mean(0))
    return areas[0] - areas[1]


def evaluate_case(case: dict, f, x, b, target, methods, ig_steps: int, logp=None, seed: int = 0) -> list[dict]:
    """Every method on one case: the rows of the table."""
    fx, fb = target_values(f, x, target), target_values(f, b.expand_as(x), target)
    df = fx - fb
    ig = attribute("ig", {}, f, x, b, target, ig_steps)
    maps: dict[str, torch.Tensor | str] = {}
    for name in methods:
        kind, kw = METHODS[name]
        if kind == "random":
            g = torch.Generator().manual_seed(seed)
            maps[name] = torch.rand(x.shape[:2], generator=g, dtype=torch.float64)
            continue
        try:
            maps[name] = ig if kind == "ig" else attribute(kind, kw, f, x, b, target, ig_steps)
        except NonFiniteError as err:
            maps[name] = error_label(err)
    deletion: dict[str, torch.Tensor] = {}
    if logp is not None:
        for name, a in maps.items():
            if isinstance(a, torch.Tensor) and torch.isfinite(a).all():
                scores = a if METHODS[name][0] == "random" else a.double().sum(-1)
                deletion[name] = deletion_scores(logp, x, scores)
    rows = []
    for name, a in maps.items():
        row = {**case, "samples": len(x), "method": name}
        nan = float("nan")
        comp_med = comp_max = mass = corr = nan
        if isinstance(a, str):
            row["status"] = a
        elif not torch.isfinite(a).all():
            row["status"] = "non-finite"
        else:
            row["status"] = "ok"
            if METHODS[name][0] != "random":
                comp = (a.double().flatten(1).sum(1) - df).abs() / df.abs()
                comp_med, comp_max = float(comp.median()), float(comp.max())
                mass = float(a.double().abs().sum() / ig.double().abs().sum())
                corr = float(pearson_rows(a, ig).nanmean())
        row.update(completeness_median=comp_med, completeness_max=comp_max, mass_vs_ig256=mass, pearson_ig256=corr)
        if logp is not None:
            d = deletion.get(name)
            row["deletion"] = float(d.mean()) if d is not None else nan
            row["deletion_se"] = float(d.std() / math.sqrt(len(d))) if d is not None else nan
            row["deletion_p_vs_default"] = nan
            if d is not None and name != DEFAULT and DEFAULT in deletion:
                diff = d - deletion[DEFAULT]
                row["deletion_p_vs_default"] = one_sample_t_test(float(diff.mean()), float(diff.std()), len(diff))[1]
        rows.append(row)
    return rows


def sweep_rows(samples: int, seed: int, ig_steps: int) -> list[dict]:
    methods = [m for m, (kind, _) in METHODS.items() if kind in ("dl", "ig")]
    rows = []
    for dname, dtype in DTYPES.items():
        for scale in SCALES:
            t0 = time.perf_counter()
            model = AttentionBlock(scale).to(dtype).eval()
            for p in model.parameters():
                p.requires_grad_(False)
            g = torch.Generator().manual_seed(seed)
            x = torch.randn((samples, 6, 16), generator=g).to(dtype)
            b = torch.randn((samples, 6, 16), generator=g).to(dtype)
            with torch.no_grad():
                target = model(x).argmax(-1)
            case = {"case": "attention block", "dtype": dname, "qk_scale": scale, "baseline": "randn"}
            rows += evaluate_case(case, model, x, b, target, methods, ig_steps)
            print(f"block x{scale} {dname}: {time.perf_counter() - t0:.1f} s", flush=True)
    return rows


def trained_rows(arch: str, dtypes, samples: int, length: int, seed: int, ig_steps: int) -> list[dict]:
    from captum_unified.text import encode_text, load_corpus, load_or_train_char_lm

    trained = load_or_train_char_lm(arch, "quick", seed=seed)
    ids_all = encode_text(load_corpus("pydoc").validation)
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids_all) - length - 1, (samples,), generator=g)
    ids = torch.stack([ids_all[s : s + length] for s in starts])
    rows = []
    for dname in dtypes:
        t0 = time.perf_counter()
        model = trained.model.to(DTYPES[dname]).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        f = LastLogProb(model)
        emb = model.get_input_embeddings()(ids).detach()
        with torch.no_grad():
            target = model(input_ids=ids).logits[:, -1].argmax(-1)

        def logp(e, n_steps=1, f=f, target=target):
            return target_values(f, e, target.repeat(n_steps))

        case = {
            "case": f"trained char {'GPT-2' if arch == 'gpt2' else 'LLaMA'}",
            "dtype": dname,
            "qk_scale": "",
            "baseline": "zero embedding",
            "val_loss": round(trained.metrics["val_loss"], 3),
        }
        rows += evaluate_case(case, f, emb, torch.zeros_like(emb), target, list(METHODS), ig_steps, logp, seed)
        print(f"{case['case']} {dname}: {time.perf_counter() - t0:.1f} s", flush=True)
    trained.model.float()
    return rows


# ------------------------------------------------------------------ report


def _g(v, spec: str = ".2g") -> str:
    """A number as the findings format it ("n/a" for a missing one), two digits unless ``spec`` says."""
    return _format_number(v, spec)


def _cell(r: dict, key: str, spec: str = ".2g") -> str:
    return r["status"] if r["status"] != "ok" else _g(r[key], spec)


def sweep_table(rows: list[dict]) -> list[dict]:
    """One row per method and dtype: the largest completeness error at each q/k scale,
    and sum |attr| / sum |IG-256| (Pearson's r with IG-256)."""
    out = []
    for dname in DTYPES:
        for m in METHODS:
            sel = {
                s: r
                for s, r in (
                    (int(r["qk_scale"]), r)
                    for r in rows
                    if r["case"] == "attention block" and r["dtype"] == dname and r["method"] == m
                )
            }
            if not sel:
                continue
            row = {"method": m, "dtype": dname}
            for s in SCALES:
                r = sel[s]
                row[f"completeness x{s}"] = _cell(r, "completeness_max")
            for s in SCALES:
                r = sel[s]
                row[f"mass (r) x{s}"] = (
                    r["status"]
                    if r["status"] != "ok"
                    else f"{_g(r['mass_vs_ig256'])} ({_g(r['pearson_ig256'], '.2f')})"
                )
            out.append(row)
    return out


def trained_table(rows: list[dict]) -> list[dict]:
    out = []
    for r in rows:
        if not r["case"].startswith("trained"):
            continue
        dele = "n/a"
        if _num(r.get("deletion")) == _num(r.get("deletion")):
            dele = f"{_g(r['deletion'], '.2f')} ± {_g(r['deletion_se'], '.2f')}"
        out.append(
            {
                "model": r["case"].removeprefix("trained "),
                "dtype": r["dtype"],
                "method": r["method"],
                "completeness (median, max)": (
                    r["status"]
                    if r["status"] != "ok"
                    else ""
                    if r["method"] == "random"
                    else f"{_g(r['completeness_median'])}, {_g(r['completeness_max'])}"
                ),
                "mass vs IG-256": "" if r["method"] == "random" else _cell(r, "mass_vs_ig256"),
                "r with IG-256": "" if r["method"] == "random" else _cell(r, "pearson_ig256", ".2f"),
                "deletion ± se": dele,
                "p vs default": _g(r.get("deletion_p_vs_default")),
            }
        )
    return out


def _worst(rows: list[dict], method: str, dname: str, key: str = "completeness_max") -> float:
    vals = [_num(r[key]) for r in rows if r["method"] == method and r["dtype"] == dname]
    vals = [v if v == v else math.inf for v in vals]
    return max(vals) if vals else math.nan


def _span(vals: list[float], spec: str = ".2g") -> str:
    """``a to b`` (one number when they print the same)."""
    lo, hi = _g(min(vals), spec), _g(max(vals), spec)
    return lo if lo == hi else f"{lo} to {hi}"


def _cap(text: str) -> str:
    return text[0].upper() + text[1:]


def sweep_sentences(block: list[dict]) -> list[str]:
    out = []
    worst = {d: _worst(block, DEFAULT, d) for d in DTYPES}
    verdict = all(worst[d] <= BOUND[d] for d in DTYPES)
    out.append(
        "Attention block, q/k weights x1 to x1000: the default rules' largest completeness error is "
        f"{_g(worst['float32'])} in float32 and {_g(worst['float64'])} in float64 "
        + ("(within the bounds 1e-4 and 1e-8)." if verdict else "(NOT within the bounds 1e-4 and 1e-8).")
    )
    fails = []
    for r in block:
        if r["method"] != SHAPLEY:
            continue
        if r["status"] != "ok":
            fails.append(f"x{r['qk_scale']} {r['dtype']}: {r['status']}")
        elif _num(r["completeness_max"]) > BOUND[r["dtype"]]:
            fails.append(f"x{r['qk_scale']} {r['dtype']}: off by {_g(r['completeness_max'])}")
    out.append(
        "The plain Shapley split (softmax='shift', norm='decompose') on the same sweep: "
        + ("; ".join(fails) if fails else "within the bounds everywhere")
        + "."
    )
    grad = [
        _num(r["completeness_median"])
        for r in block
        if r["method"].startswith("DeepLIFT, products='gradient'") and r["status"] == "ok"
    ]
    if grad:
        out.append(
            "With Ancona et al.'s ordinary-gradient products the median completeness error is "
            f"{_span(grad)} over the sweep (the attention products are not split)."
        )
    ig = {(r["qk_scale"], r["dtype"]): _num(r["completeness_max"]) for r in block if r["method"] == "IG-256"}
    dl = [r for r in block if r["method"] == DEFAULT and r["status"] == "ok"]
    for converged in (True, False):
        sel = [r for r in dl if (ig[(r["qk_scale"], r["dtype"])] <= 1e-3) == converged]
        if not sel:
            continue
        where = ", ".join(f"x{r['qk_scale']} {r['dtype']}" for r in sel)
        masses = [_num(r["mass_vs_ig256"]) for r in sel]
        corrs = [_num(r["pearson_ig256"]) for r in sel]
        if converged:
            head = f"Where 256-step IG is itself complete to 1e-3 ({where})"
        else:
            off = [ig[(r["qk_scale"], r["dtype"])] for r in sel]
            head = f"Where 256-step IG is itself off by {_span(off)} ({where}: no converged reference)"
        out.append(
            f"{head}, the default rules' sum |attr| is {_span(masses)} times IG-256's and their correlation "
            f"with it {_span(corrs, '.2f')}."
        )
    return out


def trained_sentences(rows: list[dict], model: str) -> list[str]:
    out = []
    sel = {(r["dtype"], r["method"]): r for r in rows if r["case"] == model}
    comp = [
        f"{_g(r['completeness_median'])} (median) and {_g(r['completeness_max'])} (largest) in {d}"
        for d in DTYPES
        if (r := sel.get((d, DEFAULT))) is not None
    ]
    d = sel.get(("float32", DEFAULT))
    if d is None:
        return out
    out.append(
        f"{_cap(model)} ({d['samples']} windows, zero-embedding baseline): the default rules' completeness "
        f"error is {'; '.join(comp)}."
    )
    ig = sel[("float32", "IG-256")]
    igc = _num(ig["completeness_median"])
    ref = (
        f"256-step IG is complete there (median error {_g(igc)})"
        if igc <= 1e-3
        else f"256-step IG is not complete there (median error {_g(igc)}: no converged reference)"
    )
    out.append(
        f"{_cap(model)}: {ref}; the default rules' sum |attr| is {_g(d['mass_vs_ig256'])} times IG-256's, "
        f"correlation {_g(d['pearson_ig256'], '.2f')}."
    )
    for (dname, m), r in sel.items():
        if dname != "float32" or m == DEFAULT:  # deletion: the trained dtype (float64 ranks the same here)
            continue
        if r["status"] != "ok":
            out.append(f"{_cap(model)}, {m}: {r['status']}.")
            continue
        p = _num(r.get("deletion_p_vs_default"))
        diff = _num(d["deletion"]) - _num(r["deletion"])
        if p == p and p < ALPHA:
            claim = f"the default rules' deletion score is {'higher' if diff > 0 else 'lower'} than that of {m}"
        else:
            claim = f"not enough to conclude whether the default rules' deletion score differs from that of {m}"
        out.append(
            f"{_cap(model)}: {claim} ({_g(d['deletion'], '.2f')} vs {_g(r['deletion'], '.2f')}, "
            f"paired t test over the windows, p = {_g(p)})."
        )
    return out


def sentences(rows: list[dict]) -> list[str]:
    """What the table shows, each statement with its numbers; comparisons of deletion
    scores only where a paired t test over the samples supports them at ALPHA."""
    block = [r for r in rows if r["case"] == "attention block"]
    out = sweep_sentences(block) if block else []
    for model in sorted({r["case"] for r in rows if r["case"].startswith("trained")}):
        out += trained_sentences(rows, model)
    return out


def describe(rows: list[dict], ig_steps: int, seed: int, threads: int) -> str:
    """The protocol, from the rows themselves."""
    block = sorted({int(r["samples"]) for r in rows if r["case"] == "attention block"})
    lms = sorted({r["case"].removeprefix("trained char ") for r in rows if r["case"].startswith("trained")})
    lm_n = sorted({int(r["samples"]) for r in rows if r["case"].startswith("trained")})
    return (
        f"Attention block: {', '.join(map(str, block))} random inputs and randn baselines per case, the predicted "
        f"class. Trained char models ({', '.join(lms)}; quick size): {', '.join(map(str, lm_n))} validation "
        "windows of 32 characters, log p of the predicted next character, zero-embedding baseline. "
        f"IG {ig_steps} steps (Gauss-Legendre); seed {seed}; {threads} torch thread(s). Completeness: "
        "|sum attr - (f(x) - f(b))| / |f(x) - f(b)| from forward passes of the untouched model. Mass: "
        "sum |attr| / sum |IG-256|; r: Pearson's correlation with IG-256 over each sample's entries (mean over "
        "samples). Deletion: LeRF - MoRF area of log p (tokens zeroed), mean ± standard error over windows; p: "
        "paired t test against the default rules. Gradient*Input and random scores only on the trained models "
        "(zero baseline; token scores)."
    )


def write_report(out: Path, rows: list[dict], note: str) -> None:
    write_csv(out / "ablation_rules.csv", rows)
    sweep, trained = sweep_table(rows), trained_table(rows)
    write_csv(out / "ablation_rules_sweep.csv", sweep)
    write_csv(out / "ablation_rules_trained.csv", trained)
    said = sentences(rows)
    (out / "ablation_rules_findings.rst").write_text(to_rst(said))
    lines = ["# DeepLIFT's bounded rules: ablation (issue 17)", "", note, ""]
    for title, table in (("Attention block sweep", sweep), ("Trained character models", trained)):
        if not table:
            continue
        keys = list(table[0])
        lines += [f"## {title}", "", "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in table]
        lines.append("")
    lines += ["## Findings", "", *(f"- {s}" for s in said), ""]
    (out / "ablation_rules.md").write_text("\n".join(lines))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/_static/results/rules")
    p.add_argument("--quick", action="store_true", help="fewer samples, float32 trained GPT-2 only (under a minute)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ig-steps", type=int, default=256)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--report-only", action="store_true", help="rewrite the tables and sentences from OUT's CSV")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.report_only:
        rows = read_csv(out / "ablation_rules.csv")
    else:
        block_n, lm_n, length = (4, 8, 32) if args.quick else (16, 24, 32)
        t0 = time.perf_counter()
        rows = sweep_rows(block_n, args.seed, args.ig_steps)
        if args.quick:
            rows += trained_rows("gpt2", ["float32"], lm_n, length, args.seed, args.ig_steps)
        else:
            for arch in ("gpt2", "llama"):
                rows += trained_rows(arch, list(DTYPES), lm_n, length, args.seed, args.ig_steps)
        print(f"computed in {time.perf_counter() - t0:.0f} s", flush=True)
    write_report(out, rows, describe(rows, args.ig_steps, args.seed, args.threads))
    print(f"wrote {out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
