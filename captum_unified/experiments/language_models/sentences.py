"""Sentences about the language-model results, generated from the numbers beside
them."""

from __future__ import annotations

import math
from typing import Any

from captum_unified.experiments.language_models.tasks import MODELS
from captum_unified.experiments.significance import ALPHA

#: A ranking of methods is stated only with at least this many explained samples per model
#: (and a paired t test at :data:`~captum_unified.experiments.significance.ALPHA`).
MIN_SAMPLES = 50


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
