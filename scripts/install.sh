#!/usr/bin/env bash
# Set up captum_unified for development on a CPU machine. Three steps, each
# announced with what it installs and how long it took (pip's own lines show
# every package it downloads and installs; "Requirement already satisfied"
# lines are left out):
# 1. PyTorch: keep an installed torch; otherwise install the CPU build 2.13.0 first
#    (a plain `torch` requirement would pull a multi-GB CUDA build).
# 2. The package in editable mode with its development extras (tests, docs,
#    build, ruff, mypy, Playwright's Python client).
# 3. Chromium, for the docs' headless-browser test: Debian's `chromium` package
#    when no Chromium is on the machine. Optional: skipped with a message when
#    not root, without apt-get, offline, or with CAPTUM_UNIFIED_NO_CHROMIUM=1;
#    the browser test then skips and says why. (Playwright's own browser
#    download is never used.)
# Non-interactive: no prompt, no terminal needed (.ci/run calls it). The times
# it announces were measured once in a fresh virtual environment on a shared
# 2-core machine (296 s in all: PyTorch 71 s, the package and its extras 225 s;
# see the docs' "Getting started" page); a slow network makes them longer.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
T_START=$SECONDS

say() { echo "==> $*"; }
took() { echo "    done in $((SECONDS - $1)) s"; }
# pip install, printing pip's lines as they come (which package it collects,
# downloads, builds and installs) without the "Requirement already satisfied" ones.
pip_install() {
    "$PY" -m pip install --progress-bar off "$@" 2>&1 \
        | awk '!/^Requirement already satisfied/ { print "    " $0; fflush() }'
    return "${PIPESTATUS[0]}"
}

say "captum_unified setup with $("$PY" -c 'import sys; print(sys.executable, sys.version.split()[0])')"
say "three steps: PyTorch (CPU), this package with its dev extras, Chromium; about 5 minutes in a fresh environment"

t=$SECONDS
if "$PY" -c "import torch" >/dev/null 2>&1; then
    say "[1/3] PyTorch: torch $("$PY" -c 'import torch; print(torch.__version__)') already installed, kept"
else
    say "[1/3] PyTorch: installing the CPU build torch==2.13.0 (about 200 MB; about 1 minute)"
    pip_install "torch==2.13.0" \
        || { say "      not found on the default index; trying PyTorch's CPU index";
             pip_install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu; }
fi
took "$t"

t=$SECONDS
say "[2/3] captum_unified (editable) with its dev extras: captum, numpy, matplotlib, tqdm, mlxtend,"
echo "      scikit-learn, pytest, hypothesis, sphinx, sphinx-gallery, ruff, mypy, build, playwright (about 4 minutes)"
pip_install -e ".[dev]"
took "$t"

install_chromium() {
    if [ "${CAPTUM_UNIFIED_NO_CHROMIUM:-0}" = 1 ]; then
        echo "    Chromium: skipped (CAPTUM_UNIFIED_NO_CHROMIUM=1)"; return 0
    fi
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then echo "    Chromium: $(command -v "$b") already installed"; return 0; fi
    done
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "    Chromium: not installed (no apt-get); the docs' browser test will skip"; return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "    Chromium: not installed (needs root for apt-get: sudo apt-get install chromium); the docs' browser test will skip"
        return 0
    fi
    echo "    Chromium: installing Debian's chromium package with apt-get (a few minutes)"
    if timeout 600 apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1; then
        echo "    Chromium: $(command -v chromium)"
    else
        echo "    Chromium: apt-get failed (offline?); the docs' browser test will skip"
    fi
}
t=$SECONDS
say "[3/3] Chromium for the docs' browser test (optional)"
install_chromium
took "$t"
say "setup finished in $((SECONDS - T_START)) s"
