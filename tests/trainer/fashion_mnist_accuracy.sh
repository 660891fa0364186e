#!/usr/bin/env bash
# The embedded demo's promise: alexnet-mini trained data-parallel on 2 ranks with
# configs/fashion-mnist-mini.cfg reaches at least 90% top-1 on the 10,000 Fashion-MNIST test
# images within its 3 epochs; alexnet-eval on the weights agrees with the last validation.
# Usage: fashion_mnist_accuracy.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BIN=$1
SRC_DIR=$2
WORK=$3
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
allow_mpirun_as_root
fresh_dir "$WORK"
import_fashion_mnist "$BIN" train "$WORK/train"
import_fashion_mnist "$BIN" t10k "$WORK/test" --no-shuffle
mpirun -np 2 "$BIN/alexnet-train" --config "$SRC_DIR/configs/fashion-mnist-mini.cfg" \
  --data.train "$WORK/train-*.h5" --data.val "$WORK/test-*.h5" --train.log_every 100 \
  --run.dir "$WORK/run" | tee "$WORK/train.txt" || fail "training"
/usr/bin/python3 - "$WORK/run/metrics.jsonl" <<'PY' || fail "accuracy"
import json, sys
val = [json.loads(l) for l in open(sys.argv[1]) if '"val"' in l]
last = val[-1]
print(f"final validation: top-1 {100 * last['top1']:.2f}% after epoch {last['epoch']}, {last['samples']} images")
assert last["samples"] == 10000, last
assert last["epoch"] <= 2, "more than 3 epochs"
assert last["top1"] >= 0.90, f"top-1 {last['top1']:.4f} < 0.90"
PY
"$BIN/alexnet-eval" --weights "$WORK/run/weights.h5" --data "$WORK/test-00000.h5" | tee "$WORK/eval.txt"
grep -qE "top-1 (9[0-9]|100)\." "$WORK/eval.txt" || fail "alexnet-eval below 90%"
passed "$WORK" "fashion-mnist accuracy: OK"
