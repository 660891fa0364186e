#!/usr/bin/env bash
# The whole GPU suite in one command, for whoever is lent a GPU machine. That machine has CUDA,
# cuDNN, NCCL and Python with torch, but no Open MPI, HDF5 or Boost: we build here and carry the
# binaries with a runtime pack (../shared/device/README.md).
#
#   here:         bash tests/gpu/run.sh prepare     configure (ALEXNET_CUDA=ON, sm_90), build,
#                                                   pack the runtime into .gpurt, print the call
#   GPU machine:  bash tests/gpu/run.sh [--no-bench]
#                 runs every GPU test binary (build/bin/test_gpu_*), the two-process NCCL test
#                 where there are 2+ GPUs, prints a table, then bench/gpu_bench.sh.
#                 Exit status: non-zero when any test failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
BUILD=${BUILD_DIR:-build}
# What the GPU machine needs, staged apart from the rest of build/bin (the device tool carries
# 64 MiB at most: the runtime pack takes about 27).
GPU_BIN=$BUILD/gpu/bin
GPU_PROGRAMS=(test_gpu_cudnn_ops test_gpu_kernels test_gpu_nccl test_gpu_training
              test_gpu_device_input alexnet-train alexnet-eval alexnet-data bench-train)

if [[ ${1:-} == prepare ]]; then
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DALEXNET_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" >/dev/null
  cmake --build "$BUILD" -j "$(nproc)"
  rm -rf "$GPU_BIN"
  mkdir -p "$GPU_BIN"
  for p in "${GPU_PROGRAMS[@]}"; do cp "$BUILD/bin/$p" "$GPU_BIN/"; done
  bash ../shared/device/pack-runtime.sh --compress -q "$GPU_BIN" .gpurt
  grep -qx '/.gpurt/' .git/info/exclude 2>/dev/null || echo '/.gpurt/' >>.git/info/exclude
  du -sh "$GPU_BIN" .gpurt
  cat <<CALL
Device tool call (carry at most 64 MiB):
  carry:   [".gpurt", "$GPU_BIN"]
  command: bash tests/gpu/run.sh
CALL
  exit 0
fi
BIN=$GPU_BIN
[[ -d $BIN ]] || BIN=$BUILD/bin  # built on the GPU machine itself

bench=1
[[ ${1:-} == --no-bench ]] && bench=0
WRAP=()
[[ -f .gpurt/with-runtime.sh ]] && WRAP=(bash .gpurt/with-runtime.sh --)
PYTHON=${PYTHON:-python3}
OUT=${OUT:-/tmp/alexnet-gpu-tests}
rm -rf "$OUT"
mkdir -p "$OUT"

echo "# GPU suite, $(date -u '+%Y-%m-%d %H:%M UTC'), $(hostname)"
nvidia-smi -L 2>/dev/null || echo "(nvidia-smi not found)"
[[ ${#WRAP[@]} -gt 0 ]] && "${WRAP[@]}" true && bash .gpurt/with-runtime.sh --check "$BIN/test_gpu_kernels" 2>&1 | grep -iE "not found|missing" || true

status=0
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
for test in "$BIN"/test_gpu_*; do
  name=$(basename "$test")
  echo "## $name"
  if ! "${WRAP[@]}" "$test" --gtest_output="json:$OUT/$name.json" >"$OUT/$name.log" 2>&1; then
    status=1
    grep -E "Failure|FAILED|error" "$OUT/$name.log" | head -40 || true
    tail -5 "$OUT/$name.log"
  fi
done

if ((gpus >= 2)); then
  echo "## two processes, one GPU each (NCCL across processes)"
  if ! "${WRAP[@]}" bash tests/gpu/two_process_nccl.sh "$BIN/test_gpu_nccl" mpirun \
      >"$OUT/two_process.log" 2>&1; then
    status=1
    tail -20 "$OUT/two_process.log"
  fi
else
  echo "## two processes: skipped, this machine has $gpus GPU(s)" | tee "$OUT/two_process.log"
fi

# The job end to end on the GPU(s): train, resume, evaluate; then the multi-GPU layouts.
job() {  # name, launcher words..., -- alexnet-train options...
  local name=$1 log=$OUT/job-$1.log
  shift
  local rc=0
  "${WRAP[@]}" "$@" >"$log" 2>&1 || rc=$?
  if ((rc == 0)); then
    echo "| job $name | ok | $(grep -o '[0-9.]* img/s' "$log" | tail -1) |"
  else
    status=1
    echo "| job $name | FAILED (exit $rc) | $(tail -1 "$log") |"
  fi
}
DATA=$OUT/data/mini
mkdir -p "$OUT/data"
"${WRAP[@]}" "$BIN/alexnet-data" synthetic --out "$DATA" --count 4096 --size 28 --channels 1 \
  --num-classes 10 --val-fraction 0.125 --quiet >/dev/null
common=(--model.arch alexnet-mini --data.train "$DATA-train-*.h5" --data.val "$DATA-val-*.h5"
        --train.batch_size 64 --train.log_every 20 --optim.lr 0.02)
echo "| job | result | last rate |"
echo "|---|---|---|"
job fp32 "$BIN/alexnet-train" --backend cuda "${common[@]}" --train.epochs 2 \
  --run.dir "$OUT/run-fp32"
job bf16-resume "$BIN/alexnet-train" --backend cuda --precision bf16 "${common[@]}" \
  --train.epochs 3 --resume latest --run.dir "$OUT/run-fp32"
job fp16 "$BIN/alexnet-train" --backend cuda --precision fp16 "${common[@]}" \
  --train.epochs 2 --run.dir "$OUT/run-fp16"
job eval "$BIN/alexnet-eval" --backend cuda --weights "$OUT/run-fp32/weights.h5" \
  --data "$DATA-val-*.h5"
if ((gpus >= 2)); then
  job two-ranks mpirun -np 2 "$BIN/alexnet-train" --backend cuda "${common[@]}" \
    --train.epochs 2 --run.dir "$OUT/run-two-ranks"
  job two-gpus-one-rank "$BIN/alexnet-train" --backend cuda --gpus-per-rank 2 "${common[@]}" \
    --train.epochs 2 --run.dir "$OUT/run-two-gpus"
fi

echo
"$PYTHON" - "$OUT" <<'PY'
import glob, json, os, sys
rows, totals = [], [0, 0, 0]
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.json"))):
    report = json.load(open(path))
    for suite in report.get("testsuites", []):
        passed = failed = skipped = 0
        for t in suite.get("testsuite", []):
            if t.get("failures"):
                failed += 1
            elif t.get("result") == "SKIPPED" or t.get("status") == "NOTRUN":
                skipped += 1
            else:
                passed += 1
        rows.append((os.path.basename(path)[:-5], suite["name"], passed, failed, skipped,
                     suite.get("time", "")))
        totals[0] += passed; totals[1] += failed; totals[2] += skipped
print("| binary | suite | passed | failed | skipped | time |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| %s | %s | %d | %d | %d | %s |" % r)
print("| **all** | | %d | %d | %d | |" % tuple(totals))
PY
echo "logs: $OUT"

if ((bench)); then
  echo
  WRAP="${WRAP[*]}" PYTHON=$PYTHON bash bench/gpu_bench.sh "$BIN" || status=1
fi
exit $status
