#!/usr/bin/env bash
# Every test tier: Python (unit, slow, real-data where ../shared has it, the browser test), then Node.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -ra "$@"
(cd js && npm test)
