#!/usr/bin/env bash
# alexnet-train and alexnet-eval end to end on a slice of real Fashion-MNIST: a config file with
# command-line overrides, a few training steps, a weights file that alexnet-eval and h5py read,
# logits of the right shape, and exit status 2 for bad options and missing data.
# Usage: train_eval_e2e.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BIN=$1
SRC_DIR=$2
WORK=$3
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
fresh_dir "$WORK"

import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2

"$BIN/alexnet-train" --config "$SRC_DIR/configs/fashion-mnist-mini.cfg" \
  --data.train "$WORK/fm-train-00000.h5" --data.val "$WORK/fm-val-00000.h5" \
  --train.batch_size 32 --train.max_steps 12 --train.log_every 4 --train.epochs 1 --optim.warmup_steps 2 \
  --run.dir "$WORK/run" > "$WORK/train.txt" 2>&1 || fail_with_log "alexnet-train" "$WORK/train.txt"
grep -q "step 12/250 (12/12): loss" "$WORK/train.txt" \
  || fail_with_log "progress lines" "$WORK/train.txt"
[ -f "$WORK/run/weights.h5" ] || fail "no weights file"

"$BIN/alexnet-eval" --weights "$WORK/run/weights.h5" --data "$WORK/fm-val-00000.h5" \
  --logits "$WORK/logits.h5" > "$WORK/eval.txt" || fail "alexnet-eval"
grep -qE "^loss [0-9.]+ top-1 [0-9.]+% top-5 [0-9.]+% \(2000 images\)$" "$WORK/eval.txt" \
  || fail_with_log "eval line" "$WORK/eval.txt"
/usr/bin/python3 - "$WORK" <<'PY' || fail "h5py check"
import sys, h5py
w = h5py.File(sys.argv[1] + "/run/weights.h5", "r")
assert w["model"].attrs["arch"] == "alexnet-mini", w["model"].attrs["arch"]
assert "model/features.0.weight" in w, list(w["model"])
l = h5py.File(sys.argv[1] + "/logits.h5", "r")["logits"]
assert l.shape == (2000, 10), l.shape
PY

set +e
"$BIN/alexnet-train" --no-such-option 1 2> "$WORK/err1.txt"; rc1=$?
"$BIN/alexnet-train" --data.train "$WORK/missing.h5" 2> "$WORK/err2.txt"; rc2=$?
"$BIN/alexnet-eval" --weights "$WORK/fm-val-00000.h5" --data "$WORK/fm-val-00000.h5" 2> "$WORK/err3.txt"; rc3=$?
set -e
[ $rc1 -eq 2 ] && [ $rc2 -eq 2 ] && [ $rc3 -eq 2 ] || fail "exit codes $rc1 $rc2 $rc3 (want 2)"
for f in err1 err2 err3; do [ "$(wc -l < "$WORK/$f.txt")" = 1 ] || fail "$f is not one line"; done
grep -q "missing.h5" "$WORK/err2.txt" || fail "missing file not named"
passed "$WORK" "train/eval e2e: OK"
