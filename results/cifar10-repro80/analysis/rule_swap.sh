#!/bin/bash
# The BN lag with and without Grad Mults from the same weights: a run's checkpoint at FIRST was
# continued twice over the same batches, once with its own rule (the reproduction's run) and
# once with `method` set to `plain` in a copy of its run.json (`repopt train --resume COPY`:
# the same SGD, no Grad Mults). For every kept epoch of each, this writes the training top-1
# (from the run's log), the test top-1 as trained and after `--recalibrate-bn 100`, appended to
# OUT.csv (its header written when it does not exist yet).
#
#   rule_swap.sh REPOPT OUT.csv FIRST LAST FROM:RULE:EVAL_DIR:LOG ...
#
# FROM names the checkpoint both continuations start from (e.g. repopt-ones-s2-e640@408), RULE
# the continuation's rule (grad-mults, none). EVAL_DIR is a run folder (run.json) whose
# checkpoint/ holds model-E.bpk for E in FIRST..LAST.
set -euo pipefail
repopt=$1 out=$2 first=$3 last=$4
shift 4
[ -e "$out" ] || echo "from,rule,epoch,train_top1,test_top1_as_trained,test_top1_recalibrated_100" > "$out"
top1() { "$repopt" --threads 1 -q eval --run "$@" 2>&1 | grep -o "top-1 [0-9.]*" | cut -d' ' -f2; }
for spec in "$@"; do
  IFS=: read -r from rule dir log <<< "$spec"
  for e in $(seq "$first" "$last"); do
    train=$({ grep -h "^epoch $e/[0-9]* train (" "$log" || true; } | tail -1 | grep -o "Accuracy [0-9.]*" | cut -d' ' -f2 || true)
    echo "$from,$rule,$e,$train,$(top1 "$dir" --epoch "$e"),$(top1 "$dir" --epoch "$e" --recalibrate-bn 100)" >> "$out"
  done
done
