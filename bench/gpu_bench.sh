#!/usr/bin/env bash
# The GPU benchmark (issue: GPU path), on a machine with a CUDA device:
#  1. training images/s of alexnet-torchvision at batch 256, ours (bench-train --backend cuda)
#     against PyTorch (torchvision's alexnet, channels_last, autocast bf16) in the same run,
#     alternating rounds, best round of each: fp32 with TF32 (PyTorch's default for cuDNN
#     convolutions; both sides the same), and bf16; the batch already on the GPU for both;
#  2. the step time of the real job (alexnet-train, one rank, synthetic 256 px data through the
#     loader) split into compute, communication wait and data wait, from its metrics.jsonl.
# Prints markdown tables. Usage (repository root):
#   bash bench/gpu_bench.sh [BIN_DIR]        BIN_DIR: the built binaries (default build/bin)
# Environment: PYTHON (with torch + torchvision; default python3; never run under WRAP), ROUNDS (3),
# STEPS (30), WRAP (the command our MPI binaries run under; default .gpurt/with-runtime.sh -- when a
# runtime pack is there, see ../shared/device/README.md), WORK (scratch folder, default
# /tmp/alexnet-gpu-bench), STEP_TIMEOUT_S (180: the limit of each measuring process).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-30}
WORK=${WORK:-/tmp/alexnet-gpu-bench}
LIMIT=${STEP_TIMEOUT_S:-180}
if [[ -z ${WRAP+x} ]]; then
  WRAP=""
  [[ -f .gpurt/with-runtime.sh ]] && WRAP="bash .gpurt/with-runtime.sh --"
fi
read -r -a WRAP_WORDS <<<"$WRAP"

for p in bench-train alexnet-train alexnet-data; do
  [[ -x $BIN/$p ]] || { echo "gpu_bench: no $BIN/$p (build it, or pass the binaries' folder)" >&2; exit 1; }
done
gpus=0
if command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
fi
if ((gpus == 0)); then
  echo "gpu_bench: no GPU visible (nvidia-smi $(command -v nvidia-smi >/dev/null && echo 'lists none' || echo 'not found')): nothing to measure" >&2
  exit 1
fi
mkdir -p "$WORK"
rm -f "$WORK/failed-runs.txt"

echo "# GPU benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
  sed 's/^/card: /' || true
peer=1
if ! "$PYTHON" -c 'import torch, torchvision; print("peer: torch", torch.__version__, "torchvision", torchvision.__version__, "cuDNN", torch.backends.cudnn.version(), "CUDA", torch.cuda.is_available())' 2>"$WORK/peer.err"; then
  peer=0
  echo "peer: none ($PYTHON cannot import torch and torchvision: $(tail -1 "$WORK/peer.err"))"
fi
echo

# ---- 1. images/s against PyTorch ----------------------------------------------------------------
# Each prints the rate, or nothing (and the log's tail on stderr) when the run failed.
ours_rate() {  # precision, extra flags...
  local log=$WORK/ours-$1-round$r.log
  if ! timeout -k 10 "$LIMIT" "${WRAP_WORDS[@]}" "$BIN/bench-train" --backend cuda \
      --precision "$1" "${@:2}" --no-peer --cases alexnet-torchvision:256 --input device \
      --warmup 10 --steps "$STEPS" --rounds 1 >"$log" 2>&1; then
    { echo "bench-train $* (${log##*/}):"; tail -3 "$log"; } >>"$WORK/failed-runs.txt"
    return 0
  fi
  awk -F'|' '/alexnet-torchvision/ {gsub(/ /, "", $4); print $4}' "$log"
}
torch_rate() {  # precision, extra flags...
  local log=$WORK/torch-$1-round$r.log
  ((peer)) || return 0
  if ! timeout -k 10 "$LIMIT" "$PYTHON" bench/torch_train_bench.py --arch alexnet-torchvision \
      --layers /dev/null --batch 256 --channels 3 --height 224 --width 224 --classes 1000 \
      --threads 8 --warmup 10 --steps "$STEPS" --device cuda --precision "$1" "${@:2}" \
      >"$log" 2>&1; then
    { echo "torch_train_bench.py $* (${log##*/}):"; tail -3 "$log"; } >>"$WORK/failed-runs.txt"
    return 0
  fi
  awk '/^train/ {print $2}' "$log"
}
best() { printf '%s\n' "$@" | awk '$1 + 0 > m {m = $1 + 0} END {if (m > 0) print m; else print "-"}'; }

echo "| alexnet-torchvision, batch 256 | ours img/s | PyTorch img/s | ratio |"
echo "|---|---|---|---|"
failures=0
for mode in "fp32 --tf32" "bf16"; do
  read -r precision flag <<<"$mode"
  ours=()
  torch=()
  # shellcheck disable=SC2086  # an empty flag must vanish
  for ((r = 0; r < ROUNDS; ++r)); do
    ours+=("$(ours_rate "$precision" ${flag:-})")
    torch+=("$(torch_rate "$precision" ${flag:-})")
  done
  o=$(best "${ours[@]}")
  t=$(best "${torch[@]}")
  ratio=$(awk -v o="$o" -v t="$t" 'BEGIN { if (o + 0 > 0 && t + 0 > 0) printf "%.2fx", o / t; else print "-" }')
  label=$precision
  [[ -n ${flag:-} ]] && label="$precision (TF32)"
  echo "| $label | $o | $t | $ratio |"
  [[ $o != - ]] || failures=$((failures + 1))
done
if [[ -s $WORK/failed-runs.txt ]]; then
  echo
  echo "failed runs (- in the table):"
  head -c 3000 "$WORK/failed-runs.txt"
fi
echo
echo "Best of $ROUNDS alternating rounds of $STEPS steps after 10 warm-up steps; batch on the GPU."
echo

# ---- 2. the job's step split ---------------------------------------------------------------------
DATA=$WORK/synthetic
if [[ ! -f $DATA-00000.h5 ]]; then
  echo "(writing $((256 * 24)) synthetic 256 px images, about 1.2 GB, to $WORK)" >&2
  timeout -k 10 "$LIMIT" "${WRAP_WORDS[@]}" "$BIN/alexnet-data" synthetic --out "$DATA" \
    --count $((256 * 24)) --size 256 --num-classes 1000 --quiet >"$WORK/data.log" 2>&1 ||
    { echo "alexnet-data failed:"; tail -5 "$WORK/data.log"; rm -f "$DATA"-*.h5; exit 1; }
fi
workers=$(($(nproc) > 2 ? $(nproc) - 2 : 1))
echo "| job, batch 256 per GPU | img/s | compute ms | comm wait ms | data wait ms |"
echo "|---|---|---|---|---|"
cases=("fp32 1" "bf16 1")
if ((gpus >= 2)); then cases+=("bf16 $gpus"); fi  # all GPUs, one rank each: NCCL's share appears
for c in "${cases[@]}"; do
  read -r precision ranks <<<"$c"
  run=$WORK/run-$precision-$ranks
  rm -rf "$run"
  launcher=()
  if ((ranks > 1)); then launcher=(mpirun -np "$ranks"); fi
  if ! timeout -k 10 "$LIMIT" "${WRAP_WORDS[@]}" "${launcher[@]}" "$BIN/alexnet-train" \
      --backend cuda --precision "$precision" --model.arch alexnet-torchvision \
      --data.train "$DATA-*.h5" --data.workers "$workers" --train.batch_size 256 \
      --train.epochs 1 --train.max_steps 24 --train.log_every 8 --train.val_every 0 \
      --checkpoint.every_steps 0 --run.dir "$run" >"$run.log" 2>&1; then
    echo "| $precision, $ranks GPU(s) | failed: $(tail -1 "$run.log" | cut -c1-120) | | | |"
    failures=$((failures + 1))
    continue
  fi
  # The last progress window (after warm-up): compute = forward + backward + optimizer.
  last=$(grep '"split": "train"' "$run/metrics.jsonl" 2>/dev/null | tail -1 || true)
  if [[ -z $last ]]; then
    echo "| $precision, $ranks GPU(s) | no progress line in $run/metrics.jsonl | | | |"
    failures=$((failures + 1))
    continue
  fi
  "$PYTHON" -c '
import json, sys
m = json.loads(sys.argv[3])
compute = m["seconds_forward"] + m["seconds_backward"] + m["seconds_optimizer"]
print("| %s, %s GPU(s) | %.0f | %.1f | %.1f | %.1f |" % (sys.argv[1], sys.argv[2],
      m["images_per_sec"], 1e3 * compute, 1e3 * m["seconds_comm_wait"],
      1e3 * m["seconds_data_wait"]))' "$precision" "$ranks" "$last" ||
    echo "| $precision, $ranks GPU(s) | unreadable: $last | | | |"
done
echo
echo "Per step, the last window of 8 steps; data: synthetic 256 px JPEG-free HDF5 shards through"
echo "the loader ($workers workers) with augmentation on the GPU; one GPU per rank (a single GPU"
echo "has nothing to all-reduce; with several, the gradients go over NCCL)."
((failures == 0))
