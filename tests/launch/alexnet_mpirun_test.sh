#!/usr/bin/env bash
# launch/alexnet-mpirun: the printed command (--dry-run: the keepalive settings, the options passed
# through to mpirun), a real 2-rank job on localhost, and the one-line refusals (exit 2) of a
# missing hostfile, of hosts that do not resolve and of a bad pass-through.
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

# 1b. Out-of-band keepalive (a lost host ends the job in seconds), then the options passed
#     through, in their order, after the wrapper's own and before the executable.
keepalive="--mca oob_tcp_keepalive_time 5 --mca oob_tcp_keepalive_intvl 2"
keepalive+=" --mca oob_tcp_keepalive_probes 3"
grep -qF -- "$keepalive" "$WORK/dry.txt" || fail "dry run: no '$keepalive'"
"$LAUNCH" -n 2 --host localhost:2 --mca btl_tcp_if_include 10.0.0.0/8 -x FOO=a\ b \
  --mpirun-arg --tag-output --mca oob_tcp_if_include lo --dry-run -- --train.max_steps 4 \
  > "$WORK/pass.txt" || fail "dry run with pass-through"
cat "$WORK/pass.txt"
want="--bind-to socket $keepalive -x PATH .*--mca btl_tcp_if_include 10.0.0.0/8 -x FOO=a\\\\ b"
want+=" --tag-output --mca oob_tcp_if_include lo $BIN/alexnet-train --train.max_steps 4\$"
grep -q -- "$want" "$WORK/pass.txt" || fail "pass-through: not '$want'"
# The user's setting of a keepalive parameter wins, given here or in the environment (mpirun
# refuses a parameter listed twice): the wrapper's own is left out, the other two stay.
"$LAUNCH" --mca oob_tcp_keepalive_time 30 --dry-run -- > "$WORK/own.txt" || fail "own --mca"
[ "$(grep -o 'oob_tcp_keepalive_time' "$WORK/own.txt" | wc -l)" -eq 1 ] \
  || fail_with_log "--mca oob_tcp_keepalive_time given twice" "$WORK/own.txt"
for want in "--mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 3 " \
  "--mca oob_tcp_keepalive_time 30 "; do
  grep -qF -- "$want" "$WORK/own.txt" || fail_with_log "own --mca: no '$want'" "$WORK/own.txt"
done
OMPI_MCA_oob_tcp_keepalive_probes=9 "$LAUNCH" --dry-run -- > "$WORK/env.txt" || fail "env MCA"
if grep -qF oob_tcp_keepalive_probes "$WORK/env.txt" \
  || ! grep -qF -- "--mca oob_tcp_keepalive_time 5 " "$WORK/env.txt"; then
  fail_with_log "OMPI_MCA_oob_tcp_keepalive_probes in the environment" "$WORK/env.txt"
fi
echo "ok: keepalive settings and pass-through in the command"

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
refused "--mca without a value" "--mca" --mca btl_tcp_if_include
refused "--mca with a bad name" "--foo" --mca --foo 1 -- --help
refused "-x without a variable" "-x" -x
refused "--mpirun-arg without a value" "--mpirun-arg" --mpirun-arg
refused "--mpirun-arg of the wrapper's own option" "-np" --mpirun-arg -np -- --help
echo "PASS"
