#!/usr/bin/env bash
# Lint, format check and type check, configured in pyproject.toml
# ([tool.ruff], [tool.mypy]).
#
#   bash scripts/lint.sh             the whole tree (ruff) and the package (mypy);
#                                    exits non-zero on any finding
#   bash scripts/lint.sh FILE...     only these files (ruff; mypy when a file is
#                                    in captum_unified/); non-zero on a finding
#   bash scripts/lint.sh --report    the whole tree, findings counted per rule;
#                                    always exits 0
#
# .ci/run runs the first form: the tree is clean, and any finding fails CI.
# Fix locally with `ruff check --fix` and `ruff format` (on the files you edit).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

have() { "$PY" -m "$1" --version >/dev/null 2>&1; }
for tool in ruff mypy; do
    if ! have "$tool"; then
        echo "lint.sh: $tool is not installed; run 'bash scripts/install.sh' (it installs the dev extras)" >&2
        exit 2
    fi
done

mode=all
files=()
case "${1:-}" in
    --report) mode=report ;;
    "") ;;
    *) mode=files; files=("$@") ;;
esac

if [ "$mode" = report ]; then
    echo "== ruff check (per rule)"
    "$PY" -m ruff check --statistics --exit-zero . || true
    echo "== ruff format --check"
    "$PY" -m ruff format --check . 2>&1 | tail -n 1 || true
    echo "== mypy (per error code)"
    out="$("$PY" -m mypy 2>&1)"
    echo "$out" | tail -n 1
    echo "$out" | grep -oE '\[[a-z-]+\]$' | sort | uniq -c | sort -rn
    exit 0
fi

status=0
if [ "$mode" = all ]; then
    "$PY" -m ruff check . || status=1
    "$PY" -m ruff format --check . || status=1
    "$PY" -m mypy || status=1
else
    [ "${#files[@]}" -gt 0 ] || { echo "lint.sh: no files given" >&2; exit 2; }
    "$PY" -m ruff check "${files[@]}" || status=1
    "$PY" -m ruff format --check "${files[@]}" || status=1
    pkg=()
    for f in "${files[@]}"; do
        case "$f" in captum_unified/*) pkg+=("$f") ;; esac
    done
    if [ "${#pkg[@]}" -gt 0 ]; then
        "$PY" -m mypy "${pkg[@]}" || status=1
    fi
fi
if [ "$status" -ne 0 ]; then
    echo "lint.sh: findings above (ruff check --fix / ruff format fix most of them)" >&2
fi
exit "$status"
