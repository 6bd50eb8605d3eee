#!/usr/bin/env bash
# Set up captum_unified for development on a CPU machine.
# 1. PyTorch: keep an installed torch; otherwise install the CPU build 2.13.0 first
#    (a plain `torch` requirement would pull a multi-GB CUDA build).
# 2. The package in editable mode with its development extras.
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
