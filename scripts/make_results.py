"""Regenerate the docs' reproduced results: every figure, CSV, report and
generated sentence under ``docs/_static/results/`` (the *Reproduced results* page).

    python scripts/make_results.py            # every reproduction, default sizes, 1 torch thread
    python scripts/make_results.py --ablation # also the Table-3 and EG ablations (hours on a shared CPU)
    python scripts/make_results.py --text-only  # only the sentences, from the CSVs already there

It runs ``captum-unified reproduce ancona``, ``reproduce deng`` and ``reproduce
transformers`` with their defaults and ``--threads 1`` (the same numbers on every
rerun with one thread) into ``docs/_static/results/{ancona,deng,transformers}``
(``--only`` picks some), then writes the ``*_findings.rst``
fragments the page includes: sentences generated from the CSVs by
:mod:`captum_unified.experiments.findings`, so the page's statements about
trends follow the numbers beside them. Models are cached in ``--cache-dir``
(first run: most of it Adadelta training of Ancona's CNNs, which took about
40 minutes for ``reproduce ancona`` alone; later runs reuse them, and the
reports' model tables give the seconds per model).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's package, also when run from elsewhere
RESULTS = ROOT / "docs" / "_static" / "results"


def write_fragments(results: Path = RESULTS) -> list:
    """The ``*_findings.rst`` fragments and the small tables of the page, from the CSVs."""
    from captum_unified.experiments import findings
    from captum_unified.experiments.common import read_csv, write_csv

    written = []

    def put(path: Path, sentences) -> None:
        path.write_text(findings.to_rst(sentences))
        written.append(path)

    a = results / "ancona"
    if (a / "ancona_checks.csv").exists():
        written += write_ancona_fragments(a)
    d = results / "deng"
    if (d / "deng_table3.csv").exists():
        table3, layers = read_csv(d / "deng_table3.csv"), read_csv(d / "deng_dl_layers.csv")
        put(d / "deng_table3_findings.rst", findings.deng_table3_sentences(table3, layers))
        rows = []
        for m in ("GI", "Occ-1", "Occ-2x2", "Occ-4x4", "DL", "IG"):
            row = {"method": m}
            for r in table3:
                if r["method"] == m:
                    sem = findings._f(r.get("d_sem_percent"))
                    pm = f" ± {findings._g(sem, '.2g')}" if sem == sem else ""
                    row[r["model"]] = f"{findings._g(r['d_percent'])}{pm} / {float(r['paper_d_percent']):g}"
            rows.append(row)
        eps = {"method": "eps_bar"}
        for r in table3:
            eps[r["model"]] = f"{findings._g(r['approx_error'])} / {float(r['paper_approx_error']):g}"
        written.append(write_csv(d / "deng_table3_summary.csv", rows + [eps]))
        rows = [
            {
                "model": r["model"],
                "layer": r["layer"],
                "d (%), the layer's step": findings._g(r["d_percent"]),
                "d (%), every layer above too": findings._g(
                    next(
                        q["d_percent"]
                        for q in layers
                        if q["model"] == r["model"] and q["layer"] == r["layer"] and q["upstream"] == "taylor"
                    )
                ),
            }
            for r in layers
            if r["upstream"] == "deeplift"
        ]
        written.append(write_csv(d / "deng_dl_layers_summary.csv", rows))
    if (d / "deng_infidelity.csv").exists():
        infid = read_csv(d / "deng_infidelity.csv")
        put(d / "deng_infidelity_findings.rst", findings.deng_infidelity_sentences(infid))
        rows = [
            {
                "model": r["model"],
                "order": r["order"],
                "scaled (Yeh's code)": findings._g(r["infidelity_scaled"]),
                "unscaled": findings._g(r["infidelity_unscaled"]),
                "paper": r["paper_infidelity"],
            }
            for r in infid
        ]
        written.append(write_csv(d / "deng_infidelity_summary.csv", rows))
    if (d / "deng_figure2.csv").exists():
        fig2 = read_csv(d / "deng_figure2.csv")
        put(d / "deng_figure2_findings.rst", findings.deng_figure2_sentences(fig2))
        rows = []
        for m in dict.fromkeys(r["method"] for r in fig2):
            row = {"method": m, "principles": next(r["principles"] for r in fig2 if r["method"] == m)}
            for r in fig2:
                if r["method"] == m:
                    row[f"{r['model']} scaled"] = findings._g(r["infidelity_scaled"])
                    row[f"{r['model']} unscaled"] = findings._g(r["infidelity_unscaled"])
            rows.append(row)
        written.append(write_csv(d / "deng_figure2_summary.csv", rows))
    if (d / "deng_figure3.csv").exists():
        fig3 = read_csv(d / "deng_figure3.csv")
        put(d / "deng_figure3_findings.rst", findings.deng_figure3_sentences(fig3))
        rows = [
            {
                "method": r["method"],
                "principles": r["principles"],
                "bounding-box accuracy": f"{float(r['bbox_accuracy']):.3f}",
                "ranked by magnitude": f"{float(r['bbox_accuracy_abs']):.3f}",
            }
            for r in fig3
        ]
        rows.append(
            {
                "method": "chance (constant map)",
                "principles": "",
                "bounding-box accuracy": f"{float(fig3[0]['chance']):.3f}",
                "ranked by magnitude": "",
            }
        )
        written.append(write_csv(d / "deng_figure3_summary.csv", rows))
    t = results / "transformers"
    if (t / "transformers_methods.csv").exists():
        written += write_transformers_fragments(t)
    if (t / "transformers_methods.csv").exists() and any(
        r["source"] == "lxt" and r["status"] == "ok" for r in read_csv(t / "transformers_methods.csv")
    ):  # a run with LXT's rows (--lxt-python): the LXT comparison's table and sentences
        written += write_lxt_fragments(t)
    if results.exists():
        from captum_unified.experiments.coverage import coverage_rows

        written.append(write_csv(results / "coverage.csv", coverage_rows(results)))
    ab = results / "ablation"
    sys.path.insert(0, str(ROOT / "scripts"))
    if (ab / "ablation.csv").exists():
        import ablation_deng

        note = ab / "ablation_note.txt"
        ablation_deng.write_report(ab, read_csv(ab / "ablation.csv"), note.read_text().strip() if note.exists() else "")
        written += [ab / "ablation.md", ab / "ablation_summary.csv", ab / "ablation_findings.rst"]
    if (ab / "eg_infidelity.csv").exists():
        import ablation_deng_eg

        ablation_deng_eg.main(["--out", str(ab), "--report-only"])
        written += [ab / "eg_infidelity.md", ab / "eg_infidelity_summary.csv", ab / "eg_infidelity_findings.rst"]
    return written


def _figure_rst(path: Path, alt: str, caption: str) -> str:
    return (
        f".. figure:: ../_static/results/{path.parent.name}/{path.name}\n   :alt: {alt}\n   :width: 100%\n\n   "
        + caption
        + "\n"
    )


def _csv_table_rst(path: Path, title: str) -> str:
    # docutils reads an included fragment's :file: relative to the fragment itself (a figure's
    # path is Sphinx's, relative to the page): the CSV lies next to the fragment
    return f".. csv-table:: {title}\n   :file: {path.name}\n   :header-rows: 1\n"


def _cell(r: dict, key: str, spec: str = ".3g", missing: str | None = None) -> str:
    """A number of a results row, formatted as the generated sentences format it; an empty
    cell gives ``missing`` when given (else the sentences' "n/a")."""
    from captum_unified.experiments import findings

    if missing is not None and not r.get(key):
        return missing
    return findings._g(r.get(key, ""), spec)


def _mean_sem(r: dict, key: str, sd_key: str, spec: str = ".3g", missing: str | None = None) -> str:
    """``mean ± standard error`` of a results row (its ``samples`` and standard deviation ``sd_key``)."""
    from captum_unified.experiments import findings

    n, sd = findings._f(r.get("samples")), findings._f(r.get(sd_key))
    sem = sd / n**0.5 if n == n and n > 0 and sd == sd else float("nan")
    return _cell(r, key, spec, missing) + (f" ± {findings._g(sem, '.2g')}" if sem == sem else "")


def _ok(r: dict) -> bool:
    return r["status"] == "ok"


def _method_row(r: dict, models: dict, missing: str | None = None, before=None, after=None) -> dict:
    """One row of a language-model table: model, method, ``before``'s columns, the measured
    columns every table shares (conservation for the LRP rows only: DeepLIFT's attributions
    sum to S(x) - S(0)), then ``after``'s; a row that did not run gives its status."""
    ok = _ok(r)
    return {
        "model": models.get(r["model"], (r["model"],))[0],
        "method": r["method_label"],
        **(before or {}),
        "conservation (median rel.)": _cell(r, "conservation_median_rel", ".2g", missing)
        if ok and r["method"] != "deeplift"
        else "",
        "deletion score": _mean_sem(r, "deletion_score", "deletion_score_sd", missing=missing) if ok else r["status"],
        "Sensitivity-n": _mean_sem(r, "sensitivity_n_mean", "sensitivity_n_sd", ".3f", missing) if ok else "",
        "Spearman vs valence": _mean_sem(r, "spearman_mean", "spearman_sd", ".3f", missing)
        if r.get("spearman_mean")
        else "",
        **(after or {}),
    }


def write_transformers_fragments(t: Path) -> list:
    """``reproduce transformers``'s part of the language-models page, from the CSVs in ``t``:
    the generated sentences and the table of every number they state."""
    from captum_unified.experiments import findings
    from captum_unified.experiments.common import read_csv, write_csv
    from captum_unified.experiments.language_models import MODELS, findings_sentences

    rows, tests = read_csv(t / "transformers_methods.csv"), read_csv(t / "transformers_tests.csv")
    (t / "transformers_findings.rst").write_text(findings.to_rst(findings_sentences(rows, tests)))

    table = [
        _method_row(
            r,
            MODELS,
            before={"completeness (max rel.)": _cell(r, "completeness_max_rel", ".1e") if _ok(r) else ""},
            after={"time x gradient": _cell(r, "time_x_gradient", ".3g") if _ok(r) else ""},
        )
        for r in rows
    ]
    return [t / "transformers_findings.rst", write_csv(t / "transformers_summary.csv", table)]


#: The methods of the LXT comparison table: LXT's beside this package's DeepLIFT and epsilon-LRP.
LXT_TABLE_METHODS = ("deeplift", "lrp_uniform", "lrp_gate", "lxt_attnlrp", "lxt_cplrp")


def write_lxt_fragments(t: Path) -> list:
    """The LXT comparison of the language-models page, from ``t/transformers_methods.csv`` of a
    ``reproduce transformers --lxt-python`` run: the table of LXT's rows beside DeepLIFT's and
    epsilon-LRP's (``transformers_lxt.csv``) and LXT's generated sentences
    (``transformers_lxt_findings.rst``).

    Args:
        t: the run's folder.

    Returns:
        list: the paths written.
    """
    from captum_unified.experiments import findings
    from captum_unified.experiments.common import read_csv, write_csv
    from captum_unified.experiments.language_models import MODELS, lxt_sentences

    rows = [r for r in read_csv(t / "transformers_methods.csv") if r["method"] in LXT_TABLE_METHODS]

    table = [
        _method_row(
            r,
            MODELS,
            missing="",
            after={
                "max rel. diff. from epsilon-LRP uniform": _cell(r, "max_rel_diff_lrp_uniform", ".1e", missing=""),
                "max rel. diff. from epsilon-LRP gate": _cell(r, "max_rel_diff_lrp_gate", ".1e", missing=""),
            },
        )
        for r in rows
    ]
    sentences = []
    for model, (label, _) in MODELS.items():
        sentences += lxt_sentences(label, [r for r in rows if r["model"] == model and r["status"] == "ok"])
    (t / "transformers_lxt_findings.rst").write_text(findings.to_rst(sentences))
    return [write_csv(t / "transformers_lxt.csv", table), t / "transformers_lxt_findings.rst"]


def write_ancona_fragments(a: Path) -> list:
    """Ancona's part of the page, from the CSVs in ``a``: the sentences, the
    tables that show every number they state, the accuracy table (ours beside
    the paper's), Figure 4 redrawn from ``ancona_sensitivity_n.csv``, and the
    Figure 3 / Table 1 fragments (each says so when its files are not there)."""
    from captum_unified.experiments import ancona, findings
    from captum_unified.experiments.common import read_csv, write_csv
    from captum_unified.plots import scale_note

    written = []
    checks, sens = read_csv(a / "ancona_checks.csv"), read_csv(a / "ancona_sensitivity_n.csv")
    region = read_csv(a / "ancona_region_perturbation.csv") if (a / "ancona_region_perturbation.csv").exists() else []
    (a / "ancona_findings.rst").write_text(findings.to_rst(findings.ancona_sentences(checks, sens)))
    written.append(a / "ancona_findings.rst")
    tables = findings.ancona_tables(checks, sens, region)
    written.append(write_csv(a / "ancona_sensitivity_summary.csv", tables["sensitivity"]))
    written.append(write_csv(a / "ancona_checks_summary.csv", tables["checks"]))
    acc = {}
    for r in checks:
        acc.setdefault((r["model"], r["activation"]), r["test_accuracy"])
    rows = [
        {
            "network": findings.ancona_network(m, act),
            "test accuracy": f"{float(v):.1%}",
            "paper (App. C.1)": f"{ancona.PAPER_ACCURACY[(m, act)]:.1%}" if (m, act) in ancona.PAPER_ACCURACY else "",
        }
        for (m, act), v in acc.items()
    ]
    written.append(write_csv(a / "ancona_accuracy.csv", rows))
    written.append(ancona.figure4(sens, a / "ancona_figure4.png"))
    fig3 = a / "ancona_figure3.png"
    if region:
        written.append(write_csv(a / "ancona_region_summary.csv", tables["region"]))
        net = findings.ancona_network(region[0]["model"], region[0]["activation"])
        text = (
            _figure_rst(
                fig3,
                "attribution maps of a zero and region-perturbation curves",
                f"Figure 3 on the MNIST {net}: (a-b) Integrated Gradients' and Occlusion-1's maps of the first "
                "explained digit (red raises the target output, blue lowers it; "
                f"{scale_note(2)}); (c) the change of the target output (the true class's logit) as pixels are "
                "set to 0 one at a time in each map's order, most relevant first (+, solid) or least relevant "
                "first (-, dashed), mean over the explained digits, band ±1 standard error.",
            )
            if fig3.exists()
            else "(The figure, ``ancona_figure3.png``, is written by ``reproduce ancona``; the results on this page "
            "predate it: rerun ``python scripts/make_results.py``.)\n"
        )
        text += "\n" + _csv_table_rst(
            a / "ancona_region_summary.csv",
            "Figure 3c: change of the target output after removing k pixels (mean ± standard error)",
        )
        text += "\nMeasured (generated from ``ancona_region_perturbation.csv``):\n\n"
        text += findings.to_rst(findings.ancona_region_sentences(region, checks))
        text += (
            "\nFile: :download:`ancona_region_perturbation.csv <../_static/results/ancona/"
            "ancona_region_perturbation.csv>` (one row per method, order and number of removed pixels).\n"
        )
    else:
        text = (
            "(Figure 3, ``ancona_figure3.png`` and ``ancona_region_perturbation.csv``, is written by ``reproduce "
            "ancona``; the results on this page predate it: rerun ``python scripts/make_results.py``.)\n"
        )
    (a / "ancona_figure3.rst").write_text(text)
    written.append(a / "ancona_figure3.rst")
    t1 = a / "ancona_table1.png"
    text = (
        _figure_rst(
            t1,
            "attribution maps of one digit by every method on the four CNNs",
            "Table 1's examples: the first explained digit's maps on the CNN of each activation (red raises "
            f"the target output, blue lowers it; {scale_note(2)}).",
        )
        if t1.exists()
        else "(Table 1's maps, ``ancona_table1.png``, are written by ``reproduce ancona``; the results on this "
        "page predate them: rerun ``python scripts/make_results.py``.)\n"
    )
    (a / "ancona_table1.rst").write_text(text)
    written.append(a / "ancona_table1.rst")
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--cache-dir",
        default=".cache/results-models",
        help="model cache (relative to the checkout; default .cache/results-models)",
    )
    p.add_argument(
        "--ablation", action="store_true", help="also run scripts/ablation_deng.py and scripts/ablation_deng_eg.py"
    )
    p.add_argument("--text-only", action="store_true", help="only rewrite the generated sentences")
    p.add_argument(
        "--lxt-python",
        default=None,
        metavar="PYTHON",
        help="reproduce transformers: an interpreter where LXT imports, for LXT's rows (its --lxt-python)",
    )
    papers = ["ancona", "deng", "transformers"]
    p.add_argument("--only", choices=papers, nargs="*", default=papers)
    args = p.parse_args(argv)
    if not args.text_only:
        for paper in args.only:
            cmd = [
                sys.executable,
                "-m",
                "captum_unified",
                "reproduce",
                paper,
                "--threads",
                "1",
                "--no-progress",
                "--cache-dir",
                args.cache_dir,
                "--out",
                str((RESULTS / paper).relative_to(ROOT)),
            ]
            if paper == "transformers" and args.lxt_python:
                cmd += ["--lxt-python", args.lxt_python]
            print("+", " ".join(cmd), flush=True)
            subprocess.run(cmd, check=True, cwd=ROOT)
        if args.ablation:
            for script in ("ablation_deng.py", "ablation_deng_eg.py"):
                cmd = [
                    sys.executable,
                    str(ROOT / "scripts" / script),
                    "--threads",
                    "1",
                    "--cache-dir",
                    args.cache_dir,
                    "--out",
                    str(RESULTS / "ablation"),
                ]
                print("+", " ".join(cmd), flush=True)
                subprocess.run(cmd, check=True, cwd=ROOT)
    for path in write_fragments():
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
