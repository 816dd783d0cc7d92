#!/usr/bin/env bash
# The long fuzz run (not in CI): every property of tests/test_fuzz.py with the `fuzz` hypothesis
# profile, 2,500 examples each (12,500 in all). Prints hypothesis' statistics.
set -euo pipefail
cd "$(dirname "$0")/.."
HYPOTHESIS_PROFILE=fuzz .venv/bin/python -m pytest -q tests/test_fuzz.py --hypothesis-show-statistics -p no:cacheprovider "$@"
