#!/usr/bin/env bash
# launch/scaling-sweep: a 1- and 2-rank weak-scaling sweep of alexnet-mini on a Fashion-MNIST
# slice, 8 steps each; results.csv has its columns and a row per run, and the PNGs exist.
# Usage: scaling_sweep_test.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BIN=$1
SRC_DIR=$2
WORK=$3
export ALEXNET_BIN=$BIN
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
fresh_dir "$WORK"

import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2
/usr/bin/python3 "$SRC_DIR/launch/scaling-sweep" --ranks 1,2 --batch 16 --mode weak --steps 8 \
  --arch alexnet-mini --data "$WORK/fm-train-00000.h5" --out "$WORK/sweep" \
  -- --data.workers 1 > "$WORK/sweep.txt" 2>&1 || fail_with_log "sweep" "$WORK/sweep.txt"
cat "$WORK/sweep.txt"

/usr/bin/python3 - "$WORK/sweep/results.csv" <<'PY'
import csv, sys
want = ["ranks", "batch_per_rank", "global_batch", "images_per_sec", "images_per_sec_per_rank",
        "efficiency", "forward_ms", "backward_ms", "comm_wait_ms", "optimizer_ms",
        "data_wait_ms", "step_ms"]
with open(sys.argv[1]) as f:
    reader = csv.DictReader(f)
    missing = [c for c in want if c not in reader.fieldnames]
    assert not missing, f"missing columns {missing}"
    rows = list(reader)
assert [(r["ranks"], r["global_batch"]) for r in rows] == [("1", "16"), ("2", "32")], rows
for r in rows:
    assert r["status"] == "ok", r
    for c in want:
        assert float(r[c]) >= 0, (c, r[c])
    assert float(r["images_per_sec"]) > 0 and float(r["step_ms"]) > 0, r
    # steady state: the 8 logged steps less the first
    assert int(r["steady_lines"]) >= 1, r
assert float(rows[0]["efficiency"]) == 1.0, rows[0]
# the step split adds up to about the step time (the rest: logging, loss, copies)
for r in rows:
    split = sum(float(r[c]) for c in want[6:11])
    assert 0.5 * float(r["step_ms"]) < split < 1.2 * float(r["step_ms"]), r
print("results.csv ok:", len(rows), "rows")
PY
for png in throughput efficiency step_time; do
  [ -s "$WORK/sweep/$png.png" ] || fail "no $png.png"
  head -c 8 "$WORK/sweep/$png.png" | grep -q PNG || fail "$png.png is not a PNG"
done
echo "PASS"
