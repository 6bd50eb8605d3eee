"""Regenerate the docs' reproduced results: every figure, CSV, report and
generated sentence under ``docs/_static/results/`` (the *Reproduced results* page).

    python scripts/make_results.py            # both papers, default sizes, 1 torch thread
    python scripts/make_results.py --ablation # also the Table-3 and EG ablations (hours on a shared CPU)
    python scripts/make_results.py --text-only  # only the sentences, from the CSVs already there

It runs ``captum-unified reproduce ancona`` and ``reproduce deng`` with their
defaults and ``--threads 1`` (the same numbers on every rerun with one thread)
into ``docs/_static/results/{ancona,deng}``, then writes the ``*_findings.rst``
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
        checks, sens = read_csv(a / "ancona_checks.csv"), read_csv(a / "ancona_sensitivity_n.csv")
        put(a / "ancona_findings.rst", findings.ancona_sentences(checks, sens))
        acc = {}
        for r in checks:
            acc.setdefault((r["model"], r["activation"]), r["test_accuracy"])
        rows = [{"model": m, "activation": act, "test accuracy": f"{float(v):.1%}"} for (m, act), v in acc.items()]
        written.append(write_csv(a / "ancona_accuracy.csv", rows))
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
    p.add_argument("--only", choices=["ancona", "deng"], nargs="*", default=["ancona", "deng"])
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
