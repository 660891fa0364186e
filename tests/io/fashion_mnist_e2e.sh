#!/usr/bin/env bash
# End to end on the real Fashion-MNIST files: import with alexnet-data (train with a validation
# split, gzip; test plain), inspect both, and check counts and the class histogram.
# Usage: fashion_mnist_e2e.sh BIN_DIR WORK_DIR
set -euo pipefail
BIN=$1
WORK=$2
SRC=/usr/share/datasets/fashion-mnist
[ -f "$SRC/train-images-idx3-ubyte.gz" ] || { echo "missing $SRC (apt-get install dataset-fashion-mnist)"; exit 1; }
rm -rf "$WORK" && mkdir -p "$WORK"

"$BIN/alexnet-data" import-idx --quiet --images "$SRC/train-images-idx3-ubyte.gz" \
  --labels "$SRC/train-labels-idx1-ubyte.gz" --class-names fashion-mnist \
  --val-fraction 0.1 --compression gzip --shard-size 20000 --out "$WORK/fm"
"$BIN/alexnet-data" import-idx --quiet --images "$SRC/t10k-images-idx3-ubyte.gz" \
  --labels "$SRC/t10k-labels-idx1-ubyte.gz" --class-names fashion-mnist --out "$WORK/fm-test"

"$BIN/alexnet-data" inspect "$WORK"/fm-train-*.h5 > "$WORK/train.txt"
"$BIN/alexnet-data" inspect "$WORK"/fm-val-*.h5 > "$WORK/val.txt"
"$BIN/alexnet-data" inspect "$WORK/fm-test-00000.h5" > "$WORK/test.txt"

fail() { echo "FAIL: $*"; cat "$WORK"/*.txt; exit 1; }
grep -qx "total samples: 54000" "$WORK/train.txt" || fail "train count"
grep -qx "total samples: 6000" "$WORK/val.txt" || fail "val count"
grep -qx "total samples: 10000" "$WORK/test.txt" || fail "test count"
grep -qx "files: 3" "$WORK/train.txt" || fail "train shards (20000 per shard)"
grep -q "classes: 10$" "$WORK/test.txt" || fail "classes"
# The test set is balanced: 1000 images of every class.
[ "$(grep -cE '^  [0-9] .* 1000  10.00%$' "$WORK/test.txt")" = 10 ] || fail "test histogram"
grep -q "Ankle boot" "$WORK/test.txt" || fail "class names"
# Fashion-MNIST's pixel mean is about 72.9 (0.286 of 255) and std about 90.0 (0.353).
grep -qE '^mean: \[7[23]\.[0-9]+\]$' "$WORK/test.txt" || fail "mean"
grep -qE '^std: \[(89|90)\.[0-9]+\]$' "$WORK/test.txt" || fail "std"
# Malformed input: exit status 2.
set +e
"$BIN/alexnet-data" inspect "$SRC/train-labels-idx1-ubyte.gz" 2> "$WORK/err.txt"
rc=$?
set -e
[ $rc -eq 2 ] || fail "inspect of a non-HDF5 file exited $rc"
[ "$(wc -l < "$WORK/err.txt")" = 1 ] || fail "error is not one line"
echo "fashion-mnist e2e: OK"
rm -rf "$WORK"
