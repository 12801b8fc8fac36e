#!/usr/bin/env bash
# Train Tier 3's SmolLM2 runs (data/smollm2-tier3/DESIGN.md), one at a time, and export
# each finished run's records (no weights; JSON files only) into $DEST. Rerun the same command after an
# interruption: exported runs are skipped, a run with a checkpoint resumes from it (--resume), a
# run without one starts again. Two copies may run at once (one per core): each run is locked
# by the copy that trains it, and the other copy moves on to the next run (see scripts/run_queue.sh).
#
#   OMP_NUM_THREADS=1 MRGRPO_CACHE=... nohup bash scripts/tier3_runs.sh > tier3.log 2>&1 &
#
# Every run trains on the same 400 prompts and is evaluated on the same 64 held-out prompts
# (--data-seed 0), greedy, before training (step 0) and after. Seeds are the outer loop, so a
# partial set of runs is still paired (every finished seed has every arm run so far).
# Arms (name: flags):
#   na          the paper's rewards (politeness gated by compliance: conditioning), NA
#   an          the same rewards, AN
#   na-ungated  politeness not gated (task fintech-ungated: reweighting only), NA
#   single      compliance only
set -euo pipefail
STEPS=${STEPS:-48}
SEEDS=${SEEDS:-"0 1 2 3"}
ARMS=${ARMS:-"na an na-ungated single"}
SINGLE_SEEDS=${SINGLE_SEEDS:-"0 1"}
WORK=${WORK:-runs/tier3-shared}
DEST=${DEST:-data/smollm2-tier3/runs}
PY=${PY:-python}
source "$(dirname "$0")/run_queue.sh"
mkdir -p "$WORK" "$DEST"
for seed in $SEEDS; do
  for arm in $ARMS; do
    task=fintech; mode=$arm
    case "$arm" in
      na-ungated) task=fintech-ungated; mode=na ;;
      single) [[ " $SINGLE_SEEDS " == *" $seed "* ]] || continue ;;
    esac
    train_one "$arm-s$seed" --preset none --model smollm2-135m-instruct --task "$task" --n-train 400 --n-eval 64 \
      --data-seed 0 --mode "$mode" --seed "$seed" --weights 1,1,0.5 --lora-r 16 --lora-alpha 32 \
      --lora-target-modules q_proj,k_proj,v_proj,o_proj --m 8 --batch-prompts 2 --max-new-tokens 64 \
      --temperature 0.8 --lr 1e-3 --kl-coef 0.05 --n-steps "$STEPS" --eval-temperature 0 --eval-batch-size 64 \
      --checkpoint-every 4 --device cpu --dtype float32 --no-progress
  done
done
echo "all runs done $(date -u +%FT%TZ)"
