#!/usr/bin/env bash
# Set up captum_unified for development on a CPU machine.
# 1. PyTorch: keep an installed torch; otherwise install the CPU build 2.13.0 first
#    (a plain `torch` requirement would pull a multi-GB CUDA build).
# 2. The package in editable mode with its development extras (tests, docs,
#    build, ruff, mypy, Playwright's Python client).
# 3. Chromium, for the docs' headless-browser test: Debian's `chromium` package
#    when no Chromium is on the machine. Optional: skipped with a message when
#    not root, without apt-get, offline, or with CAPTUM_UNIFIED_NO_CHROMIUM=1;
#    the browser test then skips and says why. (Playwright's own browser
#    download is never used.)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
if "$PY" -c "import torch" >/dev/null 2>&1; then
    echo "torch $("$PY" -c 'import torch; print(torch.__version__)') already installed"
else
    "$PY" -m pip install --quiet "torch==2.13.0" \
        || "$PY" -m pip install --quiet "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
fi
"$PY" -m pip install --quiet -e ".[dev]"

install_chromium() {
    if [ "${CAPTUM_UNIFIED_NO_CHROMIUM:-0}" = 1 ]; then
        echo "Chromium: skipped (CAPTUM_UNIFIED_NO_CHROMIUM=1)"; return 0
    fi
    for b in chromium chromium-browser google-chrome; do
        if command -v "$b" >/dev/null 2>&1; then echo "Chromium: $(command -v "$b")"; return 0; fi
    done
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "Chromium: not installed (no apt-get); the docs' browser test will skip"; return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "Chromium: not installed (needs root for apt-get: sudo apt-get install chromium); the docs' browser test will skip"
        return 0
    fi
    echo "Chromium: installing Debian's chromium package"
    if timeout 600 apt-get update -qq >/dev/null 2>&1 \
        && DEBIAN_FRONTEND=noninteractive timeout 900 apt-get install -y -qq chromium >/dev/null 2>&1; then
        echo "Chromium: $(command -v chromium)"
    else
        echo "Chromium: apt-get failed (offline?); the docs' browser test will skip"
    fi
}
install_chromium
