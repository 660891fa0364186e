#!/usr/bin/env bash
# End to end on the real Fashion-MNIST files: import with alexnet-data (train with a validation
# split, gzip; test plain), inspect both, and check counts and the class histogram.
# Usage: fashion_mnist_e2e.sh BIN_DIR WORK_DIR
set -euo pipefail
BIN=$1
WORK=$2
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
fresh_dir "$WORK"

import_fashion_mnist "$BIN" train "$WORK/fm" --val-fraction 0.1 --compression gzip \
  --shard-size 20000
import_fashion_mnist "$BIN" t10k "$WORK/fm-test"

"$BIN/alexnet-data" inspect "$WORK"/fm-train-*.h5 > "$WORK/train.txt"
"$BIN/alexnet-data" inspect "$WORK"/fm-val-*.h5 > "$WORK/val.txt"
"$BIN/alexnet-data" inspect "$WORK/fm-test-00000.h5" > "$WORK/test.txt"

# A failed check shows every inspect output.
grep -qx "total samples: 54000" "$WORK/train.txt" || fail_with_log "train count" "$WORK"/*.txt
grep -qx "total samples: 6000" "$WORK/val.txt" || fail_with_log "val count" "$WORK"/*.txt
grep -qx "total samples: 10000" "$WORK/test.txt" || fail_with_log "test count" "$WORK"/*.txt
grep -qx "files: 3" "$WORK/train.txt" \
  || fail_with_log "train shards (20000 per shard)" "$WORK"/*.txt
grep -q "classes: 10$" "$WORK/test.txt" || fail_with_log "classes" "$WORK"/*.txt
# The test set is balanced: 1000 images of every class.
[ "$(grep -cE '^  [0-9] .* 1000  10.00%$' "$WORK/test.txt")" = 10 ] \
  || fail_with_log "test histogram" "$WORK"/*.txt
grep -q "Ankle boot" "$WORK/test.txt" || fail_with_log "class names" "$WORK"/*.txt
# Fashion-MNIST's pixel mean is about 72.9 (0.286 of 255) and std about 90.0 (0.353).
grep -qE '^mean: \[7[23]\.[0-9]+\]$' "$WORK/test.txt" || fail_with_log "mean" "$WORK"/*.txt
grep -qE '^std: \[(89|90)\.[0-9]+\]$' "$WORK/test.txt" || fail_with_log "std" "$WORK"/*.txt
# Malformed input: exit status 2.
set +e
"$BIN/alexnet-data" inspect "$FASHION_MNIST/train-labels-idx1-ubyte.gz" 2> "$WORK/err.txt"
rc=$?
set -e
[ $rc -eq 2 ] || fail_with_log "inspect of a non-HDF5 file exited $rc" "$WORK"/*.txt
[ "$(wc -l < "$WORK/err.txt")" = 1 ] || fail_with_log "error is not one line" "$WORK"/*.txt
passed "$WORK" "fashion-mnist e2e: OK"
