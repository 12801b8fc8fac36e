#!/usr/bin/env bash
# Train the SmolLM2-135M-Instruct runs of the channel-heterogeneity experiment
# (data/heterogeneity/smollm2/design.md), one at a time, and export each finished run's records
# (no weights; JSON files only) into $DEST. Resumable, and two copies may share the queue, one per
# core (scripts/run_queue.sh).
#
#   OMP_NUM_THREADS=1 PY=.venv/bin/python nohup bash scripts/heterogeneity_smollm2_runs.sh > het.log 2>&1 &
#
# Every run trains on the same 400 problems and is evaluated on the same 64 held-out problems
# (--data-seed 0), greedy, before training (step 0) and after; seeds are the outer loop, so a
# partial set of runs is still paired.
set -euo pipefail
STEPS=${STEPS:-24}
SEEDS=${SEEDS:-"0 1 2"}
MODES=${MODES:-"na an"}
WORK=${WORK:-runs/heterogeneity-smollm2}
DEST=${DEST:-data/heterogeneity/smollm2/runs}
PY=${PY:-python}
source "$(dirname "$0")/run_queue.sh"
mkdir -p "$WORK" "$DEST"
for seed in $SEEDS; do
  for mode in $MODES; do
    train_one "$mode-s$seed" --preset none --model smollm2-135m-instruct --task mini-math-strict-instructed \
      --n-train 400 --n-eval 64 --data-seed 0 --mode "$mode" --seed "$seed" --weights 1,0.5 --lora-r 16 \
      --lora-alpha 32 --lora-target-modules q_proj,k_proj,v_proj,o_proj --m 8 --batch-prompts 2 \
      --max-new-tokens 96 --temperature 0.8 --lr 1e-3 --kl-coef 0.05 --n-steps "$STEPS" --eval-temperature 0 \
      --eval-batch-size 64 --checkpoint-every 4 --device cpu --dtype float32 --no-progress
  done
done
echo "all runs done $(date -u +%FT%TZ)"
