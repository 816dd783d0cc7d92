#!/usr/bin/env bash
# Every test tier: Python (unit, slow, real-data where ../shared has it, the browser test), the docs build, then
# Node; then the check that the tests left the committed files as they found them (tests write to temporary
# folders only).
set -euo pipefail
cd "$(dirname "$0")/.."
tracked_state() { git diff HEAD 2>/dev/null | sha1sum; }
in_git=$(git rev-parse --is-inside-work-tree 2>/dev/null || echo false)
[ "$in_git" = true ] && before=$(tracked_state)
.venv/bin/python -m pytest -q -ra "$@"
# the documentation site (docs/, mkdocs.yml): strict, so a broken page, nav entry or link fails the run
site=$(mktemp -d)
.venv/bin/mkdocs build --strict -q -d "$site"
rm -rf "$site"
(cd js && npm test)
if [ "$in_git" = true ] && [ "$(tracked_state)" != "$before" ]; then
  echo "the tests changed committed files (they must write to temporary folders):" >&2
  git diff --stat HEAD >&2
  exit 1
fi
