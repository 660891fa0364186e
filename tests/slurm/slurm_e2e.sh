#!/usr/bin/env bash
# The job under Slurm, through launch/alexnet.sbatch, on a one-node cluster of our own
# (tests/slurm/slurm_cluster.sh) on real Fashion-MNIST images:
#   run       2 tasks (srun --mpi=pmix), 12 steps: the job completes, with its checkpoint and
#             metrics.jsonl; the same through ALEXNET_LAUNCHER=mpirun, 4 steps
#   preempt   USR1 to the batch shell as Slurm sends it before the time limit: the job
#             checkpoints and exits 3, the script requeues it, the next run resumes and finishes;
#             its final checkpoint equals an uninterrupted mpirun run's bit for bit (2 ranks)
# Prints "SKIP: <reason>" and exits 0 where no cluster can be started (not root, no packages).
# Usage: slurm_e2e.sh BIN_DIR SOURCE_DIR WORK_DIR
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 BIN_DIR SOURCE_DIR WORK_DIR" >&2; exit 2; }
BIN=$(cd "$1" && pwd)
SRC_DIR=$(cd "$2" && pwd)
WORK=$3
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
TEST_CASE=slurm_e2e  # in every FAIL line
allow_mpirun_as_root
export OMPI_MCA_rmaps_base_oversubscribe=1
CLUSTER_SH=$SRC_DIR/tests/slurm/slurm_cluster.sh
if [ -d "$WORK/cluster/pids" ]; then  # daemons left by an interrupted run
  bash "$CLUSTER_SH" down "$WORK/cluster" > /dev/null 2>&1 || true
fi
fresh_dir "$WORK"
WORK=$(cd "$WORK" && pwd)
CLUSTER=$WORK/cluster

set +e
bash "$CLUSTER_SH" up "$CLUSTER" > "$WORK/up.txt" 2>&1
rc=$?
set -e
if [ $rc -eq 77 ]; then  # not possible on this machine: not a failure of ours
  echo "SKIP: $(tail -n 1 "$WORK/up.txt")"
  exit 0
fi
trap 'bash "$CLUSTER_SH" down "$CLUSTER" > "$WORK/down.txt" 2>&1 || true' EXIT  # always down
[ $rc -eq 0 ] || fail_with_log "the cluster did not come up" "$WORK/up.txt"
cat "$WORK/up.txt"
export SLURM_CONF=$CLUSTER/slurm.conf

import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2

# The demo config on the small slice: batch 32 per rank, constant lr, no time-based checkpoints.
# A copy: a requeued job reads its configuration again, and the tree may change meanwhile.
cp "$SRC_DIR/configs/fashion-mnist-mini.cfg" "$WORK/job.cfg"
ARGS=(--config "$WORK/job.cfg" --data.train "$WORK/fm-train-00000.h5"
  --data.val "$WORK/fm-val-00000.h5" --train.batch_size 32 --train.log_every 2
  --optim.schedule constant --optim.warmup_steps 0 --checkpoint.every_minutes 0 --data.workers 1)

# submit NAME [alexnet-train arguments...]: prints the job id. From the source tree, as a user
# would (the template's defaults ask for 8 cores per task: this node has 2 in all).
submit() {
  local name=$1
  shift
  (cd "$SRC_DIR" && sbatch --parsable --job-name="$name" --ntasks-per-node=2 --cpus-per-task=1 \
    --time=10 --output="$WORK/$name.out" --export="ALL,ALEXNET_BIN=$BIN" \
    launch/alexnet.sbatch "${ARGS[@]}" "$@")
}
job_field() { { scontrol show job -o "$1" 2> /dev/null || true; } | tr ' ' '\n' | sed -n "s/^$2=//p"; }

# wait_job ID SECONDS: until the job has ended for good (a requeue passes through PENDING).
wait_job() {
  local state=""
  for _ in $(seq $(($2 * 2))); do
    state=$(job_field "$1" JobState)
    case $state in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE)
        return 0 ;;
    esac
    sleep 0.5
  done
  scontrol show job "$1"
  fail "job $1 still $state after $2 s"
}

# want_completed ID OUTPUT: completed with status 0, or fail with its output and the daemons' logs.
want_completed() {
  local id=$1 out=$2 state code
  state=$(job_field "$id" JobState)
  code=$(job_field "$id" ExitCode)
  if [ "$state" != COMPLETED ] || [ "$code" != 0:0 ]; then
    cat "$out"
    tail -n 20 "$CLUSTER/log/slurmctld.log" "$CLUSTER/log/slurmd.log"
    fail "job $id: $state, exit code $code (want COMPLETED, 0:0)"
  fi
}

# --- run: 12 steps on 2 tasks through srun --mpi=pmix ------------------------------------------
id=$(submit run --train.max_steps 12 --run.dir "$WORK/run")
wait_job "$id" 300
want_completed "$id" "$WORK/run.out"
grep -q "running: srun --mpi=pmix .*alexnet-train .*--resume latest" "$WORK/run.out" \
  || fail_with_log "the command line is not printed" "$WORK/run.out"
grep -q "no checkpoint in .*: starting from scratch" "$WORK/run.out" || fail "first run: no fresh start"
grep -q "2 rank(s) x batch 32" "$WORK/run.out" || fail_with_log "not 2 ranks" "$WORK/run.out"
[ -f "$WORK/run/checkpoints/step-000000012.h5" ] || fail "no checkpoint at step 12"
/usr/bin/python3 - "$WORK/run/metrics.jsonl" <<'PY' || fail "metrics.jsonl"
import json, sys
steps = [r["step"] for r in map(json.loads, open(sys.argv[1])) if r["split"] == "train"]
assert steps == [2, 4, 6, 8, 10, 12], steps
PY
echo "run: job $id completed, 12 steps on 2 ranks under srun"

# The same through mpirun inside the allocation (it takes its slots from Slurm), with the
# out-of-band keepalive, one setting of it replaced by the user's (ALEXNET_MPIRUN_ARGS).
id=$(ALEXNET_LAUNCHER=mpirun ALEXNET_MPIRUN_ARGS="--mca oob_tcp_keepalive_probes 4" \
  submit mpirun --train.max_steps 4 --run.dir "$WORK/mpirun")
wait_job "$id" 300
want_completed "$id" "$WORK/mpirun.out"
want="running: mpirun --bind-to none --mca oob_tcp_keepalive_time 5"
want+=" --mca oob_tcp_keepalive_intvl 2 --mca oob_tcp_keepalive_probes 4 [^ ]*/alexnet-train "
grep -q -- "$want" "$WORK/mpirun.out" || fail_with_log "not '$want'" "$WORK/mpirun.out"
grep -q "2 rank(s) x batch 32" "$WORK/mpirun.out" \
  || fail_with_log "mpirun: not 2 ranks" "$WORK/mpirun.out"
[ -f "$WORK/mpirun/checkpoints/step-000000004.h5" ] || fail "mpirun: no checkpoint at step 4"
echo "run: job $id completed, 4 steps on 2 ranks under mpirun in the allocation"

# --- preempt: USR1 to the batch shell, checkpoint, exit 3, requeue, resume, N steps in all ------
N=40  # about 0.3-0.5 s a step here: the signal comes at step 4-6, well before N
id=$(submit preempt --train.epochs 50 --train.max_steps $N --run.dir "$WORK/preempt")
for _ in $(seq 240); do
  grep -q "^epoch 0 step 4/" "$WORK/preempt.out" 2> /dev/null && break
  [ "$(job_field "$id" JobState)" = RUNNING ] || [ "$(job_field "$id" JobState)" = PENDING ] \
    || fail_with_log "job $id ended early" "$WORK/preempt.out"
  sleep 0.5
done
grep -q "^epoch 0 step 4/" "$WORK/preempt.out" \
  || fail_with_log "no progress in 120 s" "$WORK/preempt.out"
# What --signal=B:USR1@120 does before the time limit: USR1 to the batch shell alone.
scancel --signal=USR1 --batch "$id"
for _ in $(seq 240); do
  [ "$(job_field "$id" Restarts)" = 1 ] && break
  sleep 0.5
done
[ "$(job_field "$id" Restarts)" = 1 ] \
  || fail_with_log "job $id was not requeued" "$WORK/preempt.out"
wait_job "$id" 300
want_completed "$id" "$WORK/preempt.out"
out=$WORK/preempt.out
grep -q "got SIGUSR1" "$out" || fail_with_log "the batch shell did not take USR1" "$out"
stopped=$(sed -n 's/^stopped by a signal at step \([0-9]*\);.*/\1/p' "$out")
if [ -z "$stopped" ] || [ "$stopped" -ge $N ]; then cat "$out"; fail "the job did not stop on the signal"; fi
grep -q "alexnet-train ended with status 3" "$out" || fail_with_log "first run: not status 3" "$out"
grep -q "requeueing job $id" "$out" || fail_with_log "not requeued by the script" "$out"
grep -q "job $id (run 2)" "$out" || fail_with_log "no second run" "$out"
grep -q "resumed from .*step-$(printf %09d "$stopped").h5 at step $stopped " "$out" \
  || fail_with_log "the second run did not resume from step $stopped" "$out"
grep -q "alexnet-train: done after $N steps" "$out" \
  || fail_with_log "second run did not finish" "$out"
[ "$(grep -c "JobId=$id " "$CLUSTER/log/jobcomp.txt")" = 2 ] \
  || fail_with_log "want two ends of job $id in the completion log" "$CLUSTER/log/jobcomp.txt"
echo "preempt: job $id stopped at step $stopped, requeued itself, resumed and finished $N steps"

# The same N steps without interruption, 2 ranks under mpirun directly: bit for bit the same.
mpirun -np 2 "$BIN/alexnet-train" "${ARGS[@]}" --train.epochs 50 --train.max_steps $N \
  --run.dir "$WORK/straight" > "$WORK/straight.txt" 2>&1 \
    || fail_with_log "straight run" "$WORK/straight.txt"
grep -q "2 rank(s) x batch 32" "$WORK/straight.txt" || fail "straight run: not 2 ranks"
step_file=step-$(printf %09d $N).h5
same_state "$WORK/straight/checkpoints/$step_file" "$WORK/preempt/checkpoints/$step_file" \
  || fail "the requeued run differs from the uninterrupted one"

# Down now (not only in the trap), and every daemon it started must be gone.
pids=$(cat "$CLUSTER/pids/"* 2> /dev/null)
trap - EXIT
bash "$CLUSTER_SH" down "$CLUSTER"
for p in $pids; do
  ! kill -0 "$p" 2> /dev/null || fail "daemon $p ($(ps -o comm= -p "$p")) still running after down"
done
passed "$WORK" "slurm e2e: OK"
