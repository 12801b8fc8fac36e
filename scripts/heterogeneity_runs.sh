#!/usr/bin/env bash
# Train the runs of the channel-heterogeneity experiment (chapters/heterogeneity.md), one at a
# time, and export each finished run's records (config, metrics, evaluations, evaluated replies;
# no weights; JSON only) into $DEST. Rerun the same command after an interruption: finished runs are
# skipped, a run with a checkpoint resumes from it (--resume), a run without one starts again
# (scripts/run_queue.sh).
#
#   OMP_NUM_THREADS=1 nohup bash scripts/heterogeneity_runs.sh > heterogeneity.log 2>&1 &
#
# Settings (environment variables): STEPS (GRPO steps per run), SEEDS, MODES, WORK (run folders
# with checkpoints), DEST (exported records). Seeds are the outer loop, so a partial set of runs
# is still paired (every finished seed has every mode).
set -euo pipefail
STEPS=${STEPS:-40}
SEEDS=${SEEDS:-"0 1 2 3 4 5 6 7 8 9"}
MODES=${MODES:-"na an"}
WORK=${WORK:-/tmp/heterogeneity-runs}
DEST=${DEST:-data/heterogeneity/runs}
PY=${PY:-python}
source "$(dirname "$0")/run_queue.sh"
mkdir -p "$WORK" "$DEST"
for seed in $SEEDS; do
  for mode in $MODES; do
    train_one "$mode-s$seed" --preset tiny --task mini-math-strict --n-train 400 --n-eval 256 --data-seed 0 \
      --mode "$mode" --seed "$seed" --weights 1,0.5 --n-steps "$STEPS" --max-new-tokens 72 \
      --eval-every 0 --checkpoint-every 10 --device cpu --no-progress
  done
done
echo "all runs done $(date -u +%FT%TZ)"
