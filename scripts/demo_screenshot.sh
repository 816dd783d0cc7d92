#!/usr/bin/env bash
# Refresh the README's picture of the demo page (benchmarks/results/demo_browser.png) on purpose: the browser
# test takes the screenshot; only with EDGEKD_REFRESH_SCREENSHOT=1 does it copy it over the committed one.
set -euo pipefail
cd "$(dirname "$0")/.."
EDGEKD_REFRESH_SCREENSHOT=1 .venv/bin/python -m pytest -q tests/js/test_browser.py -k shows_what_python_answers
git status --short benchmarks/results/demo_browser.png
