# Sourced by the experiment run scripts (tier3_runs.sh, heterogeneity_runs.sh): one function that
# trains one run resumably and exports its records. Expects WORK (run folders with checkpoints),
# DEST (exported records) and PY (the Python with mrgrpo) to be set.
#
#   train_one NAME TRAIN-ARGS...
#
# - NAME exported already ($DEST/NAME): skipped;
# - NAME locked by another copy of the script (flock on $WORK/.NAME.lock): skipped, so two
#   copies can share a queue, one per core;
# - $WORK/NAME has a checkpoint: resumed (--resume); otherwise started (--overwrite);
# - when training ends, the records (no weights, JSON only) are exported to $DEST/NAME.
train_one() {
  local name=$1 lock
  shift
  local run="$WORK/$name"
  if [ -d "$DEST/$name" ]; then
    echo "$name: exported already, skipped"
    return 0
  fi
  exec {lock}>"$WORK/.$name.lock"
  if ! flock -n "$lock"; then
    echo "$name: another copy is training it, skipped"
    exec {lock}>&-
    return 0
  fi
  if [ ! -d "$DEST/$name" ]; then  # the other copy may have finished it meanwhile
    local start=(--overwrite)
    if compgen -G "$run/checkpoints/*" > /dev/null; then
      start=(--resume)
    fi
    local timer=()  # GNU time reports the run's wall and CPU seconds where it is installed
    [ -x /usr/bin/time ] && timer=(/usr/bin/time -f "$name: %e s wall, %U s user, %S s sys")
    echo "$name: ${start[*]} $(date -u +%FT%TZ)"
    "${timer[@]}" "$PY" -m mrgrpo train "$@" --out "$run" "${start[@]}"
    "$PY" scripts/export_run_records.py "$run" "$DEST/$name"
  fi
  exec {lock}>&-
}
