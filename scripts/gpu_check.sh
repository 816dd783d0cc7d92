#!/usr/bin/env bash
# The GPU path, run and timed on a machine with an NVIDIA GPU, in one go (issue: the GPU path, run for real).
#   bash scripts/gpu_check.sh OUT_DIR [--bundle B --data DEV.tsv] [--parts a,b,c] [--smoke]
# Writes everything into OUT_DIR (never into benchmarks/results/), printing as it goes, so a cut-off run
# still reports. On a machine without a GPU it says so, skips the GPU parts and exits 0.
# Uses the python that has torch: .venv/bin/python here, python3 elsewhere (PYTHON=... to choose).
set -uo pipefail
cd "$(dirname "$0")/.."
[ $# -ge 1 ] || { echo "usage: bash scripts/gpu_check.sh OUT_DIR [--bundle B --data DEV.tsv] [--parts a,b,c] [--smoke]" >&2; exit 2; }
PY=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  nvidia-smi -L
else
  echo "gpu_check: no NVIDIA GPU answers here (nvidia-smi); the GPU parts will be skipped"
fi
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1
exec "$PY" benchmarks/gpu_check.py "$@"
