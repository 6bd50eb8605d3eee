"""Behaviour check: the quick reproductions' CSVs, byte for byte, against golden files.

A change that is meant to keep behaviour (a refactor, a move, a split) must leave
every number of ``captum-unified reproduce {ancona,deng} --quick`` unchanged.
The golden files in ``tests/experiments/golden/<paper>/`` are those CSVs, made on
main with

    python3 -m captum_unified reproduce PAPER --quick --threads 1 --no-progress --out DIR --cache-dir EMPTY

(models trained afresh into an empty cache, one torch thread; a rerun with the
same thread count gives the same bytes). ``golden/environment.json`` records the
torch version and CPU capability they were made with; last digits can differ on
another CPU or torch build, so there the comparison is skipped with that reason.

Usage (from the repository root; the checkout's code runs, not an installed copy)::

    python3 scripts/golden_reproductions.py             # run both, compare, exit 1 on a difference
    python3 scripts/golden_reproductions.py --paper deng --keep /tmp/deng-now
    python3 scripts/golden_reproductions.py --update    # a change that is MEANT to change numbers:
                                                        # rewrite the golden files, commit them with it

``tests/experiments/test_reproduce.py`` compares the quick reproductions it
runs anyway (default test run) with :func:`compare`.
Run time: about 1.5 minutes (ancona) and 4 minutes (deng) on one thread of a
loaded 2-core machine, training included.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = ROOT / "tests" / "experiments" / "golden"
PAPERS = ("ancona", "deng")
ENVIRONMENT = GOLDEN / "environment.json"
UPDATE_HINT = (
    "If the change is meant to change these numbers, regenerate the golden files and commit them with "
    "the change:  python3 scripts/golden_reproductions.py --update  (then say in the commit message "
    "and CHANGELOG which numbers changed and why)."
)


def command(paper: str, out: Path, cache: Path) -> list[str]:
    """The reproduction whose CSVs are the golden files."""
    return [
        sys.executable,
        "-m",
        "captum_unified",
        "reproduce",
        paper,
        "--quick",
        "--threads",
        "1",
        "--no-progress",
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
    ]


def environment() -> dict[str, str]:
    """What the last digits of the CSVs depend on besides the code."""
    import torch

    return {
        "torch": torch.__version__,
        "cpu_capability": str(torch.backends.cpu.get_cpu_capability()),
        "machine": platform.machine(),
        "threads": "1",
    }


def environment_differs() -> str | None:
    """``None`` when this machine matches the golden files' environment, else why not."""
    if not ENVIRONMENT.exists():
        return f"{ENVIRONMENT} is missing"
    made = json.loads(ENVIRONMENT.read_text())
    now = environment()
    diff = {k: (made.get(k), v) for k, v in now.items() if made.get(k) != v}
    if not diff:
        return None
    what = ", ".join(f"{k} {a} (golden) vs {b} (here)" for k, (a, b) in diff.items())
    return (
        f"the golden files were made in another environment ({what}); last digits may differ. "
        "To compare a change here, regenerate them from main first: python3 scripts/golden_reproductions.py --update"
    )


def golden_names(paper: str) -> list[str]:
    return sorted(p.name for p in (GOLDEN / paper).glob("*.csv"))


def _cells_differ(golden: Path, now: Path, limit: int = 8) -> list[str]:
    with open(golden, newline="") as f:
        a = list(csv.reader(f))
    with open(now, newline="") as f:
        b = list(csv.reader(f))
    if not a or not b or a[0] != b[0]:
        return [f"{now.name}: header {b[:1]} differs from the golden {a[:1]}"]
    if len(a) != len(b):
        return [f"{now.name}: {len(b) - 1} rows, golden {len(a) - 1}"]
    header, out = a[0], []
    for i, (ra, rb) in enumerate(zip(a[1:], b[1:]), 1):
        for col, va, vb in zip(header, ra, rb):
            if va == vb:
                continue
            try:
                rel = abs(float(va) - float(vb)) / max(abs(float(va)), 1e-300)
                how = f" (relative difference {rel:.2g})"
            except ValueError:
                how = ""
            out.append(f"{now.name} row {i} {col}: golden {va!r}, now {vb!r}{how}")
    if not out:  # same cells, other bytes (line endings, quoting)
        out.append(f"{now.name}: same cells but different bytes")
    if len(out) > limit:
        out = out[:limit] + [f"{now.name}: ... {len(out) - limit} more cells differ"]
    return out


def compare(out_dir: Path | str, paper: str, names: list[str] | None = None) -> list[str]:
    """Differences between the CSVs in ``out_dir`` and the golden files of ``paper``
    (all of them, or ``names``); an empty list when they are identical byte for byte."""
    out_dir = Path(out_dir)
    names = golden_names(paper) if names is None else names
    if not names:
        return [f"no golden files in {GOLDEN / paper}; make them with --update"]
    problems = []
    made = {p.name for p in out_dir.glob("*.csv")}
    for extra in sorted(made - set(golden_names(paper))):
        problems.append(f"{extra}: written now but has no golden file")
    for name in names:
        now, golden = out_dir / name, GOLDEN / paper / name
        if not now.exists():
            problems.append(f"{name}: golden file exists but the run did not write it")
        elif now.read_bytes() != golden.read_bytes():
            problems.extend(_cells_differ(golden, now))
    return problems


def message(paper: str, problems: list[str]) -> str:
    return (
        f"reproduce {paper} --quick wrote other CSVs than the golden files in {GOLDEN / paper}:\n  "
        + "\n  ".join(problems)
        + "\n"
        + UPDATE_HINT
    )


def run(paper: str, out: Path, cache: Path) -> None:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    env.update(OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    subprocess.run(command(paper, out, cache), check=True, env=env, cwd=ROOT, stdout=subprocess.DEVNULL)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--paper", choices=PAPERS, nargs="*", default=list(PAPERS))
    p.add_argument("--update", action="store_true", help="rewrite the golden files from this checkout's run")
    p.add_argument("--keep", type=Path, default=None, help="keep the run's outputs in this folder")
    args = p.parse_args(argv)
    if not args.update and (why := environment_differs()):
        print(f"note: {why}", file=sys.stderr)
    failed = False
    with tempfile.TemporaryDirectory(prefix="golden-") as tmp:
        for paper in args.paper:
            out = (args.keep / paper) if args.keep else Path(tmp) / paper
            run(paper, out, Path(tmp) / f"cache-{paper}")
            if args.update:
                target = GOLDEN / paper
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir(parents=True)
                for f in sorted(out.glob("*.csv")):
                    shutil.copyfile(f, target / f.name)
                print(f"{paper}: wrote {len(list(target.glob('*.csv')))} golden CSVs to {target}")
                continue
            problems = compare(out, paper)
            if problems:
                failed = True
                print(message(paper, problems), file=sys.stderr)
            else:
                print(f"{paper}: {len(golden_names(paper))} CSVs identical to the golden files")
    if args.update:
        ENVIRONMENT.write_text(json.dumps(environment(), indent=2, sort_keys=True) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
