#!/usr/bin/env bash
# launch/alexnet-mpirun: the printed command (--dry-run), a real 2-rank job on localhost, and
# the one-line refusals (exit 2) of a missing hostfile and of hosts that do not resolve.
# Usage: alexnet_mpirun_test.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
BIN=$1
SRC_DIR=$2
WORK=$3
LAUNCH=$SRC_DIR/launch/alexnet-mpirun
export ALEXNET_BIN=$BIN
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
fresh_dir "$WORK"

# Expects exit 2 and exactly one line of output that names $2.
refused() {
  local what=$1 name=$2
  shift 2
  local rc=0
  "$LAUNCH" "$@" > "$WORK/out.txt" 2>&1 || rc=$?
  [ "$rc" -eq 2 ] || fail_with_log "$what: exit $rc, expected 2" "$WORK/out.txt"
  [ "$(wc -l < "$WORK/out.txt")" -eq 1 ] || fail_with_log "$what: not one line" "$WORK/out.txt"
  grep -qF -- "$name" "$WORK/out.txt" || fail_with_log "$what: does not name $name" "$WORK/out.txt"
  echo "ok: $what -> $(cat "$WORK/out.txt")"
}

# 1. --dry-run prints the command (mpirun, rank count, mapping, the binary, our arguments
#    quoted) and runs nothing.
"$LAUNCH" -n 2 --host localhost:2 --dry-run -- --run.dir "$WORK/dry run" --train.max_steps 4 \
  > "$WORK/dry.txt" || fail "dry run"
cat "$WORK/dry.txt"
[ "$(wc -l < "$WORK/dry.txt")" -eq 1 ] || fail "dry run: not one line"
for want in "mpirun -n 2 " "--host localhost:2" "--bind-to" "-x PATH" "$BIN/alexnet-train" \
  '--run.dir '"$WORK"'/dry\ run' "--train.max_steps 4"; do
  grep -qF -- "$want" "$WORK/dry.txt" || fail "dry run: no '$want'"
done
if [ "$(id -u)" -eq 0 ]; then
  grep -q "^OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun" "$WORK/dry.txt" \
    || fail "dry run as root: the OMPI_ALLOW_RUN_AS_ROOT variables are not shown"
fi
[ ! -e "$WORK/dry run" ] || fail "dry run ran the job"
ALEXNET_SOMETHING=1 "$LAUNCH" --dry-run -- | grep -qF -- "-x ALEXNET_SOMETHING" \
  || fail "ALEXNET_* variables are not exported"

# 2. A real 2-rank job on localhost: a slice of Fashion-MNIST, 4 steps.
import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2
"$LAUNCH" -n 2 --host localhost:2 -- --config "$SRC_DIR/configs/fashion-mnist-mini.cfg" \
  --data.train "$WORK/fm-train-00000.h5" --data.val "$WORK/fm-val-00000.h5" \
  --train.batch_size 16 --train.max_steps 4 --train.log_every 2 --train.val_every 0 \
  --optim.schedule constant --optim.warmup_steps 0 \
  --checkpoint.every_minutes 0 --data.workers 1 --run.dir "$WORK/run" > "$WORK/run.txt" 2>&1 \
  || fail_with_log "2-rank run" "$WORK/run.txt"
grep -q "^+ .*mpirun -n 2 " "$WORK/run.txt" || fail_with_log "command not printed" "$WORK/run.txt"
grep -q '"world_size": 2' "$WORK/run/metrics.jsonl" || fail "metrics.jsonl: not 2 ranks"
[ -f "$WORK/run/weights.h5" ] || fail "no weights.h5"
echo "ok: 2-rank job on localhost"

# 3. Refusals: one line naming the culprit, exit 2, at once (no ssh, no hang).
refused "missing hostfile" "$WORK/no-such-hostfile" --hostfile "$WORK/no-such-hostfile" -- --help
refused "unresolvable --host" "no-such-host.invalid" \
  --host localhost:1,no-such-host.invalid:1 -- --help
printf 'localhost slots=1  # this node\n\nbad-node.invalid slots=1\n' > "$WORK/hostfile"
refused "unresolvable host in a hostfile" "bad-node.invalid" --hostfile "$WORK/hostfile" -- --help
refused "bad rank count" "-n" -n zero -- --help
echo "PASS"
