#!/usr/bin/env bash
# The data-parallel alexnet-train job end to end under mpirun, on real Fashion-MNIST images, one
# case per CTest test:
#   resume    2N steps straight == N steps, stop, resume, N steps (bitwise, 2 ranks); a resume on
#             another world size says the data order changes
#   damaged   a damaged checkpoint is refused by path; --resume latest falls back to a good one
#   signal    SIGTERM to the ranks and SIGUSR1 to mpirun: checkpoint, exit 3, resumable
#   dead      a rank killed with SIGKILL ends the job non-zero within 30 s
#   hang      a rank that stops answering (SIGSTOP) ends the job through the watchdog (the
#             heartbeat off)
#   lost      a rank whose heartbeat stops (SIGSTOP: as a lost node) ends the job with status 5
#             within comm.heartbeat_s x misses, a line naming the rank and its host
#   mismatch  ranks with different configurations are refused (exit 2, one message)
#   logs      metrics.jsonl fields; TensorBoard itself reads the event file; the Chrome trace
#   disk      a full disk while checkpointing: clear error, the previous checkpoint intact
#   gpuopts   GPU options where they cannot work: exit 2 with one line naming the problem (the
#             cuda backend without a device, bf16 or several GPUs on the CPU backend)
#   prune     pruning loses no checkpoint: a damaged newest one and an abandoned branch (--resume
#             PATH to an older one) are moved to checkpoints/abandoned/ bit for bit, the new ones
#             are kept
# Usage: train_job_e2e.sh BIN_DIR SOURCE_DIR WORK_DIR CASE [VENV_PYTHON]
set -euo pipefail
BIN=$1
SRC_DIR=$2
WORK=$3
CASE=$4
VENV_PYTHON=${5:-}
# shellcheck source=tests/test_lib.sh
source "$(dirname "$0")/../test_lib.sh"
TEST_CASE=$CASE  # in every FAIL line
allow_mpirun_as_root
export OMPI_MCA_rmaps_base_oversubscribe=1
umount "$WORK/small" 2>/dev/null || true  # a mount left by an interrupted disk case
fresh_dir "$WORK"

import_fashion_mnist "$BIN" t10k "$WORK/fm" --val-fraction 0.2

# The demo config on the small slice: batch 32 per rank, constant lr (a schedule over
# max_steps would differ between a run and its halves), no time-based checkpoints.
TRAIN=("$BIN/alexnet-train" --config "$SRC_DIR/configs/fashion-mnist-mini.cfg"
  --data.train "$WORK/fm-train-00000.h5" --data.val "$WORK/fm-val-00000.h5"
  --train.batch_size 32 --train.log_every 2 --optim.schedule constant --optim.warmup_steps 0
  --checkpoint.every_minutes 0 --data.workers 1)
job() { "${TRAIN[@]}" "$@"; }
# mpirun starts alexnet-train itself (no shell in between, which would take the signals).
mpijob() { mpirun -np 2 "${TRAIN[@]}" "$@"; }

case_resume() {
  mpijob --train.max_steps 12 --run.dir "$WORK/straight" > "$WORK/straight.txt" 2>&1 \
    || fail_with_log "straight run" "$WORK/straight.txt"
  mpijob --train.max_steps 6 --run.dir "$WORK/halves" > "$WORK/half1.txt" 2>&1 \
    || fail_with_log "first half" "$WORK/half1.txt"
  mpijob --train.max_steps 12 --run.dir "$WORK/halves" --resume latest > "$WORK/half2.txt" 2>&1 \
    || fail_with_log "second half" "$WORK/half2.txt"
  grep -q "resumed from .*step-000000006.h5 at step 6" "$WORK/half2.txt" \
    || fail_with_log "no resume message" "$WORK/half2.txt"
  same_state "$WORK/straight/checkpoints/step-000000012.h5" \
    "$WORK/halves/checkpoints/step-000000012.h5" || fail "resumed run differs from the straight one"
  # One rank continuing a two-rank run: allowed, and it says what changes.
  # ... and a changed setting is named (a requeued job re-reads its config file).
  job --train.max_steps 14 --run.dir "$WORK/halves" --resume latest --optim.lr 0.01 \
    > "$WORK/one.txt" 2>&1 || fail_with_log "resume on 1 rank" "$WORK/one.txt"
  grep -q "the data order changes" "$WORK/one.txt" \
    || fail_with_log "no world-size note" "$WORK/one.txt"
  grep -q "differ from the checkpoint's: optim.lr 0.035 -> 0.01$" "$WORK/one.txt" \
    || fail_with_log "changed lr not reported" "$WORK/one.txt"
}

case_damaged() {
  mpijob --train.max_steps 9 --checkpoint.every_steps 3 --checkpoint.keep 5 \
    --run.dir "$WORK/run" > "$WORK/run.txt" 2>&1 || fail_with_log "run" "$WORK/run.txt"
  local newest="$WORK/run/checkpoints/step-000000009.h5"
  [ -f "$newest" ] || fail "no checkpoint at step 9"
  # Damage the middle of the file: the arrays' checksum no longer matches.
  local size
  size=$(stat -c %s "$newest")
  printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of="$newest" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
  set +e
  job --train.max_steps 10 --run.dir "$WORK/run" --resume "$newest" > "$WORK/refused.txt" 2> "$WORK/refused.err"
  local rc=$?
  set -e
  [ $rc -eq 2 ] \
    || fail_with_log "damaged checkpoint: exit $rc, want 2" "$WORK/refused.txt" "$WORK/refused.err"
  [ "$(wc -l < "$WORK/refused.err")" = 1 ] \
    || fail_with_log "error is not one line" "$WORK/refused.err"
  grep -q "step-000000009.h5" "$WORK/refused.err" || fail "error does not name the file"
  job --train.max_steps 10 --run.dir "$WORK/run" --resume latest > "$WORK/fallback.txt" 2>&1 \
    || fail_with_log "resume latest with a damaged newest" "$WORK/fallback.txt"
  grep -q "skipping a damaged checkpoint" "$WORK/fallback.txt" || fail "no skip message"
  grep -q "resumed from .*step-000000006.h5" "$WORK/fallback.txt" || fail "did not fall back to step 6"
}

# Starts a long 2-rank job in the background (options after DIR added); waits for its first
# progress line.
start_long_job() {
  local dir=$1
  shift
  # mpirun itself in the background (not a function's subshell): $! is mpirun's pid.
  mpirun -np 2 "${TRAIN[@]}" --train.epochs 50 --run.dir "$dir" --comm.timeout_s 8 "$@" \
    > "$dir.txt" 2>&1 &
  JOB_PID=$!
  trap 'kill -KILL $JOB_PID 2>/dev/null || true' EXIT  # never leave a job behind a failed case
  for _ in $(seq 1 600); do
    grep -q "^epoch 0 step 4/" "$dir.txt" 2>/dev/null && return 0
    kill -0 $JOB_PID 2>/dev/null || fail_with_log "job ended early" "$dir.txt"
    sleep 0.1
  done
  fail_with_log "no progress line within 60 s" "$dir.txt"
}

# Waits for the background job; sets JOB_RC and JOB_SECONDS.
wait_job() {
  local start=$SECONDS
  set +e
  wait "$JOB_PID"
  JOB_RC=$?
  set -e
  JOB_SECONDS=$((SECONDS - start))
}

rank_pids() { pgrep -f "alexnet-train.*--run.dir $1" | while read -r p; do [ "$(ps -o comm= -p "$p")" = alexnet-train ] && echo "$p"; done; }

case_signal() {
  start_long_job "$WORK/term"
  kill -TERM $(rank_pids "$WORK/term")  # as Slurm signals each task
  wait_job
  [ $JOB_RC -eq 3 ] || fail_with_log "SIGTERM: exit $JOB_RC, want 3" "$WORK/term.txt"
  grep -q "stopped by a signal" "$WORK/term.txt" || fail "no stop message"
  ls "$WORK/term/checkpoints/"step-*.h5 > /dev/null || fail "no checkpoint after SIGTERM"
  start_long_job "$WORK/usr1"
  kill -USR1 "$JOB_PID"  # mpirun forwards SIGUSR1 to every rank
  wait_job
  [ $JOB_RC -eq 3 ] || fail_with_log "SIGUSR1: exit $JOB_RC, want 3" "$WORK/usr1.txt"
  local step
  step=$(/usr/bin/python3 -c "import h5py,glob; print(h5py.File(sorted(glob.glob('$WORK/usr1/checkpoints/step-*.h5'))[-1],'r').attrs['step'])")
  job --train.max_steps $((step + 2)) --run.dir "$WORK/usr1" --resume latest > "$WORK/after.txt" 2>&1 \
    || fail_with_log "resume after SIGUSR1" "$WORK/after.txt"
  grep -q "resumed from" "$WORK/after.txt" || fail "did not resume"
}

case_dead() {
  start_long_job "$WORK/dead"
  kill -KILL "$(rank_pids "$WORK/dead" | tail -1)"
  wait_job
  [ $JOB_RC -ne 0 ] || fail "job exited 0 after a rank was killed"
  [ $JOB_SECONDS -le 30 ] || fail "job took $JOB_SECONDS s to end after a rank died"
  echo "dead rank: job ended with status $JOB_RC after $JOB_SECONDS s"
}

case_hang() {
  start_long_job "$WORK/hang" --comm.heartbeat_s 0  # the watchdog's case: the heartbeat off
  local stopped
  stopped=$(rank_pids "$WORK/hang" | tail -1)
  kill -STOP "$stopped"  # alive but silent, as behind a cut link
  wait_job
  kill -KILL "$stopped" 2>/dev/null || true
  [ $JOB_RC -ne 0 ] || fail "job exited 0"
  [ $JOB_SECONDS -le 40 ] || fail "job took $JOB_SECONDS s to end (watchdog at 8 s)"
  grep -q "no progress for" "$WORK/hang.txt" || fail_with_log "no watchdog message" "$WORK/hang.txt"
  echo "silent rank: job ended with status $JOB_RC after $JOB_SECONDS s"
}

case_lost() {
  # The watchdog (8 s) far behind the heartbeat (2 s).
  start_long_job "$WORK/lost" --comm.heartbeat_s 0.5 --comm.heartbeat_misses 4
  local stopped
  stopped=$(rank_pids "$WORK/lost" | tail -1)
  kill -STOP "$stopped"  # its heartbeat thread stops too, as on a node that went down
  wait_job
  kill -KILL "$stopped" 2>/dev/null || true
  [ $JOB_RC -eq 5 ] || fail_with_log "lost rank: exit $JOB_RC, want 5" "$WORK/lost.txt"
  [ $JOB_SECONDS -le 15 ] || fail "job took $JOB_SECONDS s to end (heartbeat bound 2 s)"
  grep -q "rank 0: rank 1 on host $(hostname) sent no heartbeat for 2\.[0-9] s (comm.heartbeat_s 0.5 x 4)" \
    "$WORK/lost.txt" || fail_with_log "no heartbeat message" "$WORK/lost.txt"
  echo "lost rank: job ended with status $JOB_RC after $JOB_SECONDS s"
}

case_mismatch() {
  set +e
  mpirun -np 1 "${TRAIN[@]}" --train.max_steps 2 --run.dir "$WORK/m" : \
    -np 1 "${TRAIN[@]}" --train.max_steps 2 --run.dir "$WORK/m" --optim.lr 0.5 > "$WORK/m.txt" 2> "$WORK/m.err"
  local rc=$?
  set -e
  [ $rc -eq 2 ] || fail_with_log "exit $rc, want 2" "$WORK/m.txt" "$WORK/m.err"
  [ "$(grep -c "another configuration or build" "$WORK/m.err")" = 1 ] \
    || fail_with_log "want one message" "$WORK/m.err"
}

# Runs the job expecting exit 2 and one stderr line matching $1.
expect_bad_option() {
  local pattern=$1
  shift
  set +e
  job --train.max_steps 2 --run.dir "$WORK/opts" "$@" > "$WORK/opts.txt" 2> "$WORK/opts.err"
  local rc=$?
  set -e
  [ $rc -eq 2 ] || fail_with_log "$* : exit $rc, want 2" "$WORK/opts.txt" "$WORK/opts.err"
  [ "$(wc -l < "$WORK/opts.err")" = 1 ] || fail_with_log "$* : want one line" "$WORK/opts.err"
  grep -q "$pattern" "$WORK/opts.err" || fail_with_log "$* : no '$pattern'" "$WORK/opts.err"
}

case_gpuopts() {
  if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then
    expect_bad_option "CUDA" --backend cuda
  fi
  expect_bad_option "precision bf16 needs the cuda backend" --precision bf16
  expect_bad_option "gpus-per-rank 2 needs backend cuda" --gpus-per-rank 2
  expect_bad_option "data.augment_on device needs backend cuda" --data.augment_on device
  expect_bad_option "precision 'fp8'" --precision fp8
}

case_logs() {
  mpijob --train.max_steps 8 --train.val_every 4 --profile.steps 2 --profile.start 2 \
    --comm.bucket_mb 1 --run.dir "$WORK/logs" > "$WORK/logs.txt" 2>&1 \
      || fail_with_log "run" "$WORK/logs.txt"
  /usr/bin/python3 - "$WORK/logs/metrics.jsonl" <<'PY' || fail "metrics.jsonl"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
train = [r for r in rows if r["split"] == "train"]
val = [r for r in rows if r["split"] == "val"]
assert [r["step"] for r in train] == [2, 4, 6, 8], [r["step"] for r in train]
for r in train:
    for k in ("step", "epoch", "loss", "lr", "images_per_sec", "seconds_forward",
              "seconds_backward", "seconds_comm_wait", "seconds_optimizer", "seconds_data_wait"):
        assert k in r, (k, r)
    assert r["seconds_forward"] > 0 and r["seconds_backward"] > 0, r
assert [r["step"] for r in val] == [4, 8], val
assert all(0 <= r["top1"] <= r["top5"] <= 1 and r["samples"] == 2000 for r in val), val
PY
  /usr/bin/python3 - "$WORK/logs/profile/trace.json" <<'PY' || fail "Chrome trace"
import json, sys
events = json.load(open(sys.argv[1]))["traceEvents"]
spans = [e for e in events if e.get("ph") == "X"]
for rank in (0, 1):
    mine = [e for e in spans if e["pid"] == rank]
    cats = {e["cat"] for e in mine}
    assert {"forward", "backward", "all-reduce", "data"} <= cats, (rank, cats)
    assert any(e["name"] == "features.0" and e["cat"] == "backward" for e in mine), rank
    assert all(e["dur"] >= 0 for e in mine)
# 2 steps, several 1 MB buckets each, on the communication thread
assert len([e for e in spans if e["cat"] == "all-reduce" and e["pid"] == 0]) >= 4
PY
  if [ -z "$VENV_PYTHON" ] || [ ! -x "$VENV_PYTHON" ]; then
    fail "no Python venv with tensorboard (the python_venv fixture)"
  fi
  "$VENV_PYTHON" "$SRC_DIR/tests/trainer/read_tensorboard_events.py" "$WORK/logs/tensorboard" \
    > "$WORK/tb.txt" || fail "TensorBoard could not read the events"
  grep -q "^train/loss 8 " "$WORK/tb.txt" || fail_with_log "no train/loss at step 8" "$WORK/tb.txt"
  grep -q "^val/top1 8 " "$WORK/tb.txt" || fail_with_log "no val/top1 at step 8" "$WORK/tb.txt"
}

case_disk() {
  MNT="$WORK/small"
  mkdir -p "$MNT"
  local mnt=$MNT
  # 24 MB: room for one checkpoint of alexnet-mini (14 MB with its momentum), not for two.
  if ! mount -t tmpfs -o size=24m tmpfs "$mnt" 2>/dev/null; then
    echo "SKIP: cannot mount a small tmpfs here (needs root); full-disk case not run"
    return 0
  fi
  trap 'umount "$MNT" 2>/dev/null || true' EXIT
  set +e
  job --train.max_steps 6 --checkpoint.every_steps 2 --checkpoint.keep 1 --run.dir "$mnt/run" \
    > "$WORK/disk.txt" 2> "$WORK/disk.err"
  local rc=$?
  set -e
  [ $rc -ne 0 ] || fail "a full disk went unnoticed"
  grep -q "not written" "$WORK/disk.err" || fail_with_log "no checkpoint error" "$WORK/disk.err"
  grep -q "previous checkpoint .*step-000000002.h5 is intact" "$WORK/disk.err" \
    || fail_with_log "the message does not name the intact checkpoint" \
      "$WORK/disk.txt" "$WORK/disk.err"
  # The intact one still verifies and resumes (on a disk with room).
  cp -r "$mnt/run" "$WORK/copy"
  ls "$WORK/copy/checkpoints/" | grep -q "step-000000002.h5" || fail "previous checkpoint gone"
  ! ls "$WORK/copy/checkpoints/" | grep -q tmp || fail "temporary file left behind"
  job --train.max_steps 3 --run.dir "$WORK/copy" --resume latest > "$WORK/resume.txt" 2>&1 \
    || fail_with_log "resume from the intact checkpoint" "$WORK/resume.txt"
  umount "$mnt"
  trap - EXIT
}

# sha256 and name of each file under a folder, sorted (what survived, bit for bit).
hashes() { (cd "$1" && find . -type f -name 'step-*.h5' | sort | xargs -r sha256sum); }

case_prune() {
  local ck="$WORK/a/checkpoints"
  job --train.max_steps 4 --checkpoint.every_steps 2 --checkpoint.keep 5 --run.dir "$WORK/a" \
    > "$WORK/a1.txt" 2>&1 || fail_with_log "first run" "$WORK/a1.txt"
  job --train.max_steps 9 --checkpoint.every_steps 0 --checkpoint.keep 5 --run.dir "$WORK/a" \
    --resume latest > "$WORK/a2.txt" 2>&1 || fail_with_log "second run" "$WORK/a2.txt"
  [ "$(ls "$ck")" = "$(printf 'step-000000002.h5\nstep-000000004.h5\nstep-000000009.h5')" ] \
    || { ls "$ck"; fail "want checkpoints 2, 4, 9"; }
  local size
  size=$(stat -c %s "$ck/step-000000009.h5")
  printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of="$ck/step-000000009.h5" bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
  local damaged
  damaged=$(sha256sum < "$ck/step-000000009.h5")
  # A run that writes no checkpoint (nothing left to train) moves nothing.
  job --train.max_steps 4 --run.dir "$WORK/a" --resume latest > "$WORK/a0.txt" 2>&1 \
    || fail_with_log "resume with nothing to train" "$WORK/a0.txt"
  grep -q "nothing left to train" "$WORK/a0.txt" || fail_with_log "trained" "$WORK/a0.txt"
  [ "$(ls "$ck")" = "$(printf 'step-000000002.h5\nstep-000000004.h5\nstep-000000009.h5')" ] \
    || { ls -R "$ck"; fail "a run without a checkpoint moved or removed some"; }
  job --train.max_steps 5 --checkpoint.keep 1 --run.dir "$WORK/a" --resume latest \
    > "$WORK/a3.txt" 2>&1 || fail_with_log "resume with a damaged newest" "$WORK/a3.txt"
  grep -q "resumed from .*step-000000004.h5 at step 4" "$WORK/a3.txt" \
    || fail_with_log "did not resume from 4" "$WORK/a3.txt"
  grep -q "moved checkpoints after step 4 into .*/abandoned/: step-000000009.h5$" "$WORK/a3.txt" \
    || fail_with_log "no line naming the checkpoint moved aside" "$WORK/a3.txt"
  [ "$(ls "$ck")" = "$(printf 'abandoned\nstep-000000005.h5')" ] || { ls -R "$ck"; fail "want step 5 (and abandoned/) only"; }
  [ "$(ls "$ck/abandoned")" = step-000000009.h5 ] || { ls "$ck/abandoned"; fail "want the damaged 9 in abandoned/"; }
  [ "$(sha256sum < "$ck/abandoned/step-000000009.h5")" = "$damaged" ] || fail "the damaged 9 changed"

  # --resume PATH to an older checkpoint: the branch 4, 6 goes aside; the new 4, 5 and the old 2 stay.
  ck="$WORK/b/checkpoints"
  job --train.max_steps 6 --checkpoint.every_steps 2 --checkpoint.keep 5 --run.dir "$WORK/b" \
    > "$WORK/b1.txt" 2>&1 || fail_with_log "branch run" "$WORK/b1.txt"
  local before
  before=$(hashes "$ck")
  job --train.max_steps 5 --checkpoint.every_steps 2 --checkpoint.keep 3 --run.dir "$WORK/b" \
    --resume "$ck/step-000000002.h5" > "$WORK/b2.txt" 2>&1 \
      || fail_with_log "resume from 2" "$WORK/b2.txt"
  grep -q "moved checkpoints after step 2 into .*/abandoned/: step-000000004.h5 step-000000006.h5$" \
    "$WORK/b2.txt" || fail_with_log "no line naming the abandoned branch" "$WORK/b2.txt"
  [ "$(ls "$ck")" = "$(printf 'abandoned\nstep-000000002.h5\nstep-000000004.h5\nstep-000000005.h5')" ] \
    || { ls -R "$ck"; fail "want 2 and the new 4, 5"; }
  # Every file of the first run still there, bit for bit: 2 in place, 4 and 6 under abandoned/.
  local after
  after=$( (cd "$ck" && sha256sum step-000000002.h5 && cd abandoned && sha256sum step-000000004.h5 step-000000006.h5) \
    | sed 's|  |  ./|')
  [ "$after" = "$before" ] || { echo "before: $before"; echo "after: $after"; fail "a checkpoint changed"; }
  # The next --resume latest continues the new branch.
  job --train.max_steps 6 --run.dir "$WORK/b" --resume latest > "$WORK/b3.txt" 2>&1 \
    || fail_with_log "resume latest on the new branch" "$WORK/b3.txt"
  grep -q "resumed from .*checkpoints/step-000000005.h5 at step 5" "$WORK/b3.txt" \
    || fail_with_log "did not continue the new branch" "$WORK/b3.txt"
  # A fresh run in that folder (4, 5, 6 after the default keep 3): all go aside, none over another.
  local all_before
  all_before=$(find "$ck" -type f -name 'step-*.h5' -exec sha256sum {} + | cut -d' ' -f1 | sort)
  job --train.max_steps 2 --checkpoint.keep 1 --run.dir "$WORK/b" > "$WORK/b4.txt" 2>&1 \
    || fail_with_log "fresh run" "$WORK/b4.txt"
  grep -q "moved checkpoints of an earlier run (starting fresh) into .*/abandoned/: step-000000004-1.h5 step-000000005.h5 step-000000006-1.h5$" \
    "$WORK/b4.txt" || { cat "$WORK/b4.txt"; ls -R "$ck"; fail "fresh run: no line naming the moved ones"; }
  [ "$(ls "$ck")" = "$(printf 'abandoned\nstep-000000002.h5')" ] || { ls -R "$ck"; fail "fresh run: want its 2 only"; }
  [ "$(find "$ck/abandoned" -type f -exec sha256sum {} + | cut -d' ' -f1 | sort)" = "$all_before" ] \
    || { ls -R "$ck"; fail "fresh run: the earlier run's checkpoints are not all in abandoned/"; }
}

"case_$CASE"
passed "$WORK" "train job e2e ($CASE): OK"
