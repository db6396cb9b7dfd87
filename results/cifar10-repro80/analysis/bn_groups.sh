#!/bin/bash
# Where the BN lag lives: a checkpoint's test top-1 with the BatchNorm statistics of some layers
# re-estimated and the others as trained (`repopt eval --recalibrate-bn 100 --recalibrate-only
# LIST`). Appends one row per epoch and selection to OUT.csv (its header written when it does
# not exist yet).
#
#   bn_groups.sh REPOPT OUT.csv LABEL EVAL_DIR "SELECTION ..." EPOCH ...
#
# LABEL names the checkpoints (e.g. reinit-only-s1-e640). EVAL_DIR is a run folder (run.json)
# whose checkpoint/ holds model-E.bpk for each EPOCH. A SELECTION is `-` (as trained), `all`
# (every BatchNorm re-estimated) or a --recalibrate-only list, BatchNorms numbered from 1 in
# forward order (A0's plain model: 1 stage 0, 2-3 stage 1, 4-7 stage 2, 8-21 stage 3, 22 stage 4).
set -euo pipefail
repopt=$1 out=$2 label=$3 dir=$4 selections=$5
shift 5
[ -e "$out" ] || echo "checkpoints,epoch,recalibrated,test_top1" > "$out"
top1() { "$repopt" --threads 1 -q eval --run "$dir" "$@" 2>&1 | grep -o "top-1 [0-9.]*" | cut -d' ' -f2; }
for e in "$@"; do
  for sel in $selections; do
    case $sel in
      -) t=$(top1 --epoch "$e") ;;
      all) t=$(top1 --epoch "$e" --recalibrate-bn 100) ;;
      *) t=$(top1 --epoch "$e" --recalibrate-bn 100 --recalibrate-only "$sel") ;;
    esac
    echo "$label,$e,\"$sel\",$t" >> "$out"
  done
done
