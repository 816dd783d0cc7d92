#!/usr/bin/env bash
# Every test tier: Python (unit, slow, real-data where ../shared has it, the browser test), then Node; then the
# check that the tests left the committed files as they were (tests write only to temporary folders).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -ra "$@"
(cd js && npm test)
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && ! git diff --quiet; then
  echo "the tests changed committed files (they must write to temporary folders):" >&2
  git diff --stat >&2
  exit 1
fi
