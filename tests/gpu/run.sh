#!/usr/bin/env bash
# The whole GPU suite in one command, for whoever is lent a GPU machine. That machine has CUDA,
# cuDNN, NCCL and Python with torch, but no Open MPI, HDF5 or Boost: we build here and carry the
# binaries with a runtime pack (../shared/device/README.md).
#
#   here:         bash tests/gpu/run.sh prepare     configure (ALEXNET_CUDA=ON, sm_90), build the
#                                                   GPU programs, stage them in build/gpu/bin,
#                                                   pack the runtime into .gpurt, print the call
#   GPU machine:  bash tests/gpu/run.sh [--no-bench]
#                 runs every GPU test binary (build/gpu/bin/test_gpu_*, test_backend_ops), the
#                 two-process NCCL test where there are 2+ GPUs, the job end to end (train,
#                 resume, evaluate), then bench/gpu_bench.sh. Per-part timeouts inside an overall
#                 budget (TIME_BUDGET_S, default 480 s), so one hang cannot eat the session. The
#                 console gets one line a part, then the failure details, then the tables (last:
#                 the device tool returns only the output's tail). Exit status: non-zero when
#                 anything failed.
#
# Results: $OUT when set (the device tool brings back what is written there: at most 8 files, so
# only summary.md, failures.log, gpurt-check.log and logs.tar.gz go there), else
# /tmp/alexnet-gpu-tests. Scratch (data, run folders, every log): WORK, default /tmp/alexnet-gpu-work.
# Environment: TIME_BUDGET_S (480), TEST_TIMEOUT_S (240 a test binary), JOB_TIMEOUT_S (150 a job),
# ROUNDS (2: the bench's rounds), PYTHON (python3, never run under the runtime wrapper).
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build}
# What the GPU machine needs, staged apart from the rest of build/bin (the device tool carries
# 64 MiB at most, the working tree included: the compressed runtime pack takes about 26).
GPU_BIN=$BUILD/gpu/bin
GPU_PROGRAMS=(test_backend_ops test_gpu_kernels test_gpu_nccl test_gpu_training
              test_gpu_device_input alexnet-train alexnet-eval alexnet-data bench-train)
KIT=${GPURT_KIT:-../shared/device}

if [[ ${1:-} == prepare ]]; then
  [[ -f $KIT/pack-runtime.sh ]] || { echo "prepare: no $KIT/pack-runtime.sh (set GPURT_KIT)" >&2; exit 1; }
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DALEXNET_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target "${GPU_PROGRAMS[@]}"
  rm -rf "$GPU_BIN"
  mkdir -p "$GPU_BIN"
  for p in "${GPU_PROGRAMS[@]}"; do cp "$BUILD/bin/$p" "$GPU_BIN/"; done
  bash "$KIT/pack-runtime.sh" --compress -q "$GPU_BIN" .gpurt
  rm -rf .gpurt/rt  # an unpacked runtime (a local run's) would be carried too: 76 MiB more
  # Carried paths must be git-ignored (.gitignore has /build/ and /.gpurt/).
  for p in .gpurt "$GPU_BIN"; do
    git check-ignore -q "$p" 2>/dev/null || echo "warning: $p is not git-ignored: the device tool will not carry it" >&2
  done
  carried=$(du -scb .gpurt "$GPU_BIN" | tail -1 | cut -f1)
  tree=$(git ls-files -z 2>/dev/null | du -cb --files0-from=- 2>/dev/null | tail -1 | cut -f1 || true)
  total=$(( (carried + ${tree:-0}) / 1048576 ))
  echo "carried: $((carried / 1048576)) MiB (.gpurt + $GPU_BIN), with the tracked tree $total MiB of 64"
  ((total < 64)) || { echo "prepare: over the device tool's 64 MiB" >&2; exit 1; }
  cat <<CALL
Device tool call (timeout_s 600; the suite keeps itself within TIME_BUDGET_S=480):
  carry:   [".gpurt", "$GPU_BIN"]
  command: bash tests/gpu/run.sh
CALL
  exit 0
fi

bench=1
case ${1:-} in
  "") ;;
  --no-bench) bench=0 ;;
  *) echo "usage: bash tests/gpu/run.sh [prepare | --no-bench]" >&2; exit 2 ;;
esac

BIN=$GPU_BIN
[[ -d $BIN ]] || BIN=$BUILD/bin  # built on the GPU machine itself
if ! compgen -G "$BIN/test_gpu_*" >/dev/null || [[ ! -f $BIN/alexnet-train ]]; then
  echo "no GPU programs in $BIN: run 'bash tests/gpu/run.sh prepare' here and carry $GPU_BIN" >&2
  exit 1
fi
chmod +x "$BIN"/* 2>/dev/null || true  # in case the transfer dropped the mode bits
WRAP=()
if [[ -f .gpurt/with-runtime.sh ]]; then
  WRAP=(bash .gpurt/with-runtime.sh --)
  trap 'rm -rf .gpurt/rt' EXIT  # the unpacked runtime (76 MiB) must not be carried next time
fi
PYTHON=${PYTHON:-python3}
if [[ -n ${OUT:-} ]]; then
  RESULTS=$OUT  # the device tool's folder: it empties it before each command
else
  RESULTS=/tmp/alexnet-gpu-tests
  rm -rf "$RESULTS"
fi
WORK=${WORK:-/tmp/alexnet-gpu-work}
LOGS=$WORK/logs
rm -rf "$WORK"
mkdir -p "$RESULTS" "$LOGS"
SUMMARY=$WORK/summary.md      # the tables, printed last
DETAILS=$WORK/failures.log    # what failed, in full
: >"$SUMMARY"
: >"$DETAILS"
T0=$SECONDS
BUDGET=${TIME_BUDGET_S:-480}
RESERVE=25  # seconds kept for the summary
status=0
failed=()

gpu_count() {
  local n=0 f
  if command -v nvidia-smi >/dev/null 2>&1; then
    n=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  else
    for f in /dev/nvidia[0-9]*; do [[ -e $f ]] && n=$((n + 1)); done
  fi
  echo "${n:-0}"
}
# limited CAP CMD...: CMD under `timeout`, at most CAP seconds and never past the budget.
# Returns 124/137 when stopped, 200 when no time was left to start it.
limited() {
  local cap=$1 left
  shift
  left=$((BUDGET - (SECONDS - T0) - RESERVE))
  if ((left < 10)); then return 200; fi
  if ((left < cap)); then cap=$left; fi
  timeout -k 15 "$cap" "$@"
}
describe_rc() {  # exit status -> words
  case $1 in
    0) echo ok ;;
    124 | 137) echo "TIMED OUT" ;;
    200) echo "skipped: time budget spent" ;;
    *) echo "FAILED (exit $1)" ;;
  esac
}
# note NAME LOG: the failure details of one part, in full to failures.log, in short to the console.
note() {
  local name=$1 log=$2
  {
    echo "=== $name ($log)"
    grep -E '^\[  FAILED  \]' "$log" | sort -u | head -20 || true
    awk '/: Failure$/ {n = 8; c++} c <= 5 && n > 0 {print; n--}' "$log" || true
    echo "--- last lines:"
    tail -n 40 "$log" || true
  } >>"$DETAILS"
  {
    echo "### $name"
    grep -E '^\[  FAILED  \]' "$log" | sort -u | head -8 || true
    awk '/: Failure$/ {n = 6; c++} c <= 2 && n > 0 {print; n--}' "$log" || true
    echo "(last lines)"
    tail -n 6 "$log" || true
  } | cut -c1-240 >>"$WORK/short-failures.txt"
}

gpus=$(gpu_count)
{
  echo "# GPU suite, $(date -u '+%Y-%m-%d %H:%M UTC'), ${HOSTNAME:-?}, $(nproc) cores, git $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  if ((gpus > 0)); then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
      sed 's/^/GPU: /' || true
  else
    echo "GPU: none visible (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'lists none' || echo 'not found'))"
  fi
} | tee -a "$SUMMARY"

if ((${#WRAP[@]} > 0)); then
  # The first thing on a new machine: where every library resolves (the pack unpacks here).
  bash .gpurt/with-runtime.sh --check "$BIN/alexnet-train" >"$LOGS/gpurt-check.log" 2>&1 || true
  cp "$LOGS/gpurt-check.log" "$RESULTS/"
  if grep -qiE "not found|error" "$LOGS/gpurt-check.log"; then
    echo "runtime pack: problems (gpurt-check.log):"
    grep -iE "not found|error|warn" "$LOGS/gpurt-check.log" | head -15 || true
  else
    echo "runtime pack: every library resolves"
  fi
  grep -E '^\[gpurt\]' "$LOGS/gpurt-check.log" | head -8 >>"$SUMMARY" || true
  export GPURT_QUIET=1  # the wrapper's summary once, not in every log
fi

# ---- 1. the test binaries -----------------------------------------------------------------------
: >"$LOGS/exit-codes.txt"
# test_backend_ops: the one op table, whose cuda_* targets run only here.
for test in "$BIN"/test_gpu_* "$BIN"/test_backend_ops; do
  [[ -f $test ]] || continue
  name=$(basename "$test")
  start=$SECONDS rc=0
  limited "${TEST_TIMEOUT_S:-240}" "${WRAP[@]}" "$test" --gtest_output="json:$LOGS/$name.json" \
    >"$LOGS/$name.log" 2>&1 || rc=$?
  echo "$name $rc $((SECONDS - start))" >>"$LOGS/exit-codes.txt"
  result=$(describe_rc "$rc")
  if ((rc == 0 && gpus > 0)) && grep -qE '^no CUDA (device|backend)' "$LOGS/$name.log"; then
    result="FAILED: tests skipped with 'no CUDA device' on a GPU machine (driver? gpurt-check.log)"
    echo "### $name: $result" >>"$WORK/short-failures.txt"
    status=1
    failed+=("$name")
  fi
  echo "## $name: $result ($((SECONDS - start)) s)"
  if ((rc != 0)); then
    status=1
    failed+=("$name")
    note "$name" "$LOGS/$name.log"
  fi
done

if ((gpus >= 2)); then
  start=$SECONDS rc=0
  limited 300 "${WRAP[@]}" bash tests/gpu/two_process_nccl.sh "$BIN/test_gpu_nccl" mpirun \
    >"$LOGS/two_process_nccl.log" 2>&1 || rc=$?
  echo "## two processes, one GPU each (NCCL across processes): $(describe_rc "$rc") ($((SECONDS - start)) s)"
  if ((rc != 0 && rc != 77)); then
    status=1
    failed+=(two_process_nccl)
    note two_process_nccl "$LOGS/two_process_nccl.log"
  fi
else
  echo "## two processes: skipped, this machine has $gpus GPU(s)"
fi

# ---- 2. the job end to end on the GPU(s): train, resume, evaluate; then the multi-GPU layouts ----
JOBS=$WORK/jobs.md
{
  echo "| job | result | seconds | last train img/s | last top-1 |"
  echo "|---|---|---|---|---|"
} >"$JOBS"
job() {  # name, command words... (run under the wrapper)
  local name=$1 log=$LOGS/job-$1.log rc=0 start=$SECONDS result rate top1
  shift
  limited "${JOB_TIMEOUT_S:-150}" "${WRAP[@]}" "$@" >"$log" 2>&1 || rc=$?
  result=$(describe_rc "$rc")
  if ((rc == 0)) && [[ $name == bf16-resume ]] && ! grep -q 'resumed from' "$log"; then
    rc=1 result="FAILED (did not resume)"
  fi
  rate=$(grep -o '[0-9.]* img/s' "$log" | tail -1 || true)
  top1=$(grep -oE 'top-1 [0-9.]+%' "$log" | tail -1 || true)
  echo "| $name | $result | $((SECONDS - start)) | ${rate:--} | ${top1:--} |" >>"$JOBS"
  echo "## job $name: $result ($((SECONDS - start)) s)"
  if ((rc != 0)); then
    status=1
    failed+=("job-$name")
    note "job $name" "$log"
  fi
}
if ((gpus == 0)); then
  echo "## no GPU: job section skipped"
  echo "| (all) | skipped: no GPU | | | |" >>"$JOBS"
else
  DATA=$WORK/data/mini
  mkdir -p "$WORK/data"
  job data "$BIN/alexnet-data" synthetic --out "$DATA" --count 4096 --size 28 --channels 1 \
    --num-classes 10 --val-fraction 0.125 --quiet
  # 3584 training images, batch 64: 56 steps an epoch; validation after each epoch.
  common=(--model.arch alexnet-mini --data.train "$DATA-train-*.h5" --data.val "$DATA-val-*.h5"
          --train.batch_size 64 --train.log_every 20 --optim.lr 0.02)
  job fp32 "$BIN/alexnet-train" --backend cuda "${common[@]}" --train.epochs 2 \
    --run.dir "$WORK/run-fp32"
  job bf16-resume "$BIN/alexnet-train" --backend cuda --precision bf16 "${common[@]}" \
    --train.epochs 3 --resume latest --run.dir "$WORK/run-fp32"
  job fp16 "$BIN/alexnet-train" --backend cuda --precision fp16 "${common[@]}" \
    --train.epochs 2 --run.dir "$WORK/run-fp16"
  job eval "$BIN/alexnet-eval" --backend cuda --weights "$WORK/run-fp32/weights.h5" \
    --data "$DATA-val-*.h5"
  if ((gpus >= 2)); then
    job two-ranks mpirun -np 2 "$BIN/alexnet-train" --backend cuda "${common[@]}" \
      --train.epochs 2 --run.dir "$WORK/run-two-ranks"
    job two-gpus-one-rank "$BIN/alexnet-train" --backend cuda --gpus-per-rank 2 "${common[@]}" \
      --train.epochs 2 --run.dir "$WORK/run-two-gpus"
  fi
fi

# ---- 3. the benchmark ---------------------------------------------------------------------------
BENCH_LOG=$LOGS/bench.log
if ((!bench)); then
  echo "## bench: skipped (--no-bench)"
elif ((gpus == 0)); then
  echo "## no GPU: bench skipped"
else
  start=$SECONDS rc=0
  limited 600 env WRAP="${WRAP[*]}" PYTHON="$PYTHON" WORK="$WORK/bench" ROUNDS="${ROUNDS:-2}" \
    bash bench/gpu_bench.sh "$BIN" >"$BENCH_LOG" 2>&1 || rc=$?
  echo "## bench: $(describe_rc "$rc") ($((SECONDS - start)) s)"
  if ((rc != 0)); then
    status=1
    failed+=(bench)
    note bench "$BENCH_LOG"
  fi
fi

# ---- summary: failure details, then the tables (last) -------------------------------------------
{
  echo
  echo "## tests"
  "$PYTHON" - "$LOGS" <<'PY' || { echo "(no Python for the table; exit codes:)"; cat "$LOGS/exit-codes.txt"; }
import glob, json, os, sys
logs = sys.argv[1]
codes = {}
for line in open(os.path.join(logs, "exit-codes.txt")):
    name, rc, secs = line.split()
    codes[name] = (int(rc), secs)
print("| binary | suite | passed | failed | skipped | seconds |")
print("|---|---|---|---|---|---|")
totals = [0, 0, 0]
for name, (rc, secs) in codes.items():
    path = os.path.join(logs, name + ".json")
    try:
        report = json.load(open(path))
    except (OSError, ValueError):
        words = {124: "timed out", 137: "timed out", 200: "not run (time budget)"}.get(rc, "exit %d" % rc)
        print("| %s | (no report: %s) | | | | %s |" % (name, words, secs))
        continue
    for suite in report.get("testsuites", []):
        passed = failed = skipped = 0
        for t in suite.get("testsuite", []):
            if t.get("failures"):
                failed += 1
            elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                skipped += 1
            else:
                passed += 1
        print("| %s | %s | %d | %d | %d | %s |" % (name, suite["name"], passed, failed, skipped,
                                                  suite.get("time", "").rstrip("s")))
        totals[0] += passed; totals[1] += failed; totals[2] += skipped
    if rc != 0 and not any(s.get("failures") for s in report.get("testsuites", [])):
        print("| %s | (exit %d after the report) | | | | |" % (name, rc))
print("| **all** | | %d | %d | %d | |" % tuple(totals))
PY
  echo
  echo "## jobs"
  cat "$JOBS"
  if [[ -s $BENCH_LOG ]]; then
    echo
    echo "## bench (bench/gpu_bench.sh)"
    grep -vE '^\[gpurt\]' "$BENCH_LOG" | tail -n 40 || true
  fi
  echo
  if ((status == 0)); then
    echo "RESULT: ok ($((SECONDS - T0)) s)"
  else
    echo "RESULT: FAILED: ${failed[*]:-?} ($((SECONDS - T0)) s; details in failures.log)"
  fi
} >>"$SUMMARY"

if [[ -s $WORK/short-failures.txt ]]; then
  echo
  echo "## failures (short; in full: failures.log)"
  head -c 5000 "$WORK/short-failures.txt"
fi
cat "$SUMMARY"
cp "$SUMMARY" "$RESULTS/summary.md"
[[ -s $DETAILS ]] && cp "$DETAILS" "$RESULTS/failures.log"
# Every log, the gtest reports and the runs' metrics: one archive (no data, no checkpoints).
tar -czf "$RESULTS/logs.tar.gz" -C "$WORK" --exclude='*.h5' --exclude=checkpoints \
  --exclude=data --exclude=synthetic . 2>/dev/null || echo "(logs.tar.gz incomplete)"
echo "files: $RESULTS (summary.md, logs.tar.gz$([[ -s $DETAILS ]] && echo ', failures.log'), gpurt-check.log); scratch: $WORK"
exit $status
