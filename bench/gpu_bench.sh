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
# Environment: PYTHON (with torch + torchvision; default python3), ROUNDS (3), STEPS (30),
# WRAP (the command our MPI binaries run under; default .gpurt/with-runtime.sh -- when a runtime
# pack is there, see ../shared/device/README.md), WORK (scratch folder, default /tmp/alexnet-gpu-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/bin}
PYTHON=${PYTHON:-python3}
ROUNDS=${ROUNDS:-3}
STEPS=${STEPS:-30}
WORK=${WORK:-/tmp/alexnet-gpu-bench}
if [[ -z ${WRAP+x} ]]; then
  WRAP=""
  [[ -f .gpurt/with-runtime.sh ]] && WRAP="bash .gpurt/with-runtime.sh --"
fi
mkdir -p "$WORK"

echo "# GPU benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null |
  sed 's/^/card: /' || echo "card: (nvidia-smi not found)"
"$PYTHON" -c 'import torch, torchvision; print("peer: torch", torch.__version__, "torchvision", torchvision.__version__, "cuDNN", torch.backends.cudnn.version())'
echo

# ---- 1. images/s against PyTorch ----------------------------------------------------------------
ours_rate() {  # precision, extra flags...
  local out
  out=$($WRAP "$BIN/bench-train" --backend cuda --precision "$1" "${@:2}" --no-peer \
        --cases alexnet-torchvision:256 --input device --warmup 10 --steps "$STEPS" --rounds 1)
  echo "$out" | awk -F'|' '/alexnet-torchvision/ {gsub(/ /, "", $4); print $4}'
}
torch_rate() {  # precision, extra flags...
  "$PYTHON" bench/torch_train_bench.py --arch alexnet-torchvision --layers /dev/null --batch 256 \
    --channels 3 --height 224 --width 224 --classes 1000 --threads 8 --warmup 10 \
    --steps "$STEPS" --device cuda --precision "$1" "${@:2}" | awk '/^train/ {print $2}'
}
best() { printf '%s\n' "$@" | sort -g | tail -1; }

echo "| alexnet-torchvision, batch 256 | ours img/s | PyTorch img/s | ratio |"
echo "|---|---|---|---|"
for mode in "fp32 --tf32" "bf16"; do
  read -r precision flag <<<"$mode"
  ours=() torch=()
  for ((r = 0; r < ROUNDS; ++r)); do
    ours+=("$(ours_rate "$precision" ${flag:-})")
    torch+=("$(torch_rate "$precision" ${flag:-})")
  done
  o=$(best "${ours[@]}") t=$(best "${torch[@]}")
  ratio=$(awk -v o="$o" -v t="$t" 'BEGIN { if (t > 0) printf "%.2fx", o / t; else print "-" }')
  label=$precision; [[ -n ${flag:-} ]] && label="$precision (TF32)"
  echo "| $label | $o | $t | $ratio |"
done
echo
echo "Best of $ROUNDS alternating rounds of $STEPS steps after 10 warm-up steps; batch on the GPU."
echo

# ---- 2. the job's step split ---------------------------------------------------------------------
DATA=$WORK/synthetic
if [[ ! -f $DATA-00000.h5 ]]; then
  $WRAP "$BIN/alexnet-data" synthetic --out "$DATA" --count $((256 * 24)) --size 256 \
    --num-classes 1000 --quiet >/dev/null
fi
workers=$(( $(nproc) > 2 ? $(nproc) - 2 : 1 ))
echo "| job, batch 256 per GPU | img/s | compute ms | comm wait ms | data wait ms |"
echo "|---|---|---|---|---|"
gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
cases=("fp32 1" "bf16 1")
((gpus >= 2)) && cases+=("bf16 $gpus")  # all GPUs, one rank each: NCCL's share appears
for c in "${cases[@]}"; do
  read -r precision ranks <<<"$c"
  run=$WORK/run-$precision-$ranks
  rm -rf "$run"
  launcher=()
  ((ranks > 1)) && launcher=(mpirun -np "$ranks")
  $WRAP "${launcher[@]}" "$BIN/alexnet-train" --backend cuda --precision "$precision" \
    --model.arch alexnet-torchvision --data.train "$DATA-*.h5" --data.workers "$workers" \
    --train.batch_size 256 --train.epochs 1 --train.max_steps 24 --train.log_every 8 \
    --train.val_every 0 --checkpoint.every_steps 0 --run.dir "$run" >"$run.log" 2>&1 ||
    { echo "alexnet-train failed ($precision, $ranks rank(s)):"; tail -5 "$run.log"; continue; }
  # The last progress window (after warm-up): compute = forward + backward + optimizer.
  grep '"split": "train"' "$run/metrics.jsonl" | tail -1 | "$PYTHON" -c '
import json, sys
m = json.loads(sys.stdin.read())
compute = m["seconds_forward"] + m["seconds_backward"] + m["seconds_optimizer"]
print("| %s, %s GPU(s) | %.0f | %.1f | %.1f | %.1f |" % (sys.argv[1], sys.argv[2],
      m["images_per_sec"], 1e3 * compute, 1e3 * m["seconds_comm_wait"],
      1e3 * m["seconds_data_wait"]))' "$precision" "$ranks"
done
echo
echo "Per step, the last window of 8 steps; data: synthetic 256 px JPEG-free HDF5 shards through"
echo "the loader ($workers workers) with augmentation on the GPU; one GPU per rank (a single GPU"
echo "has nothing to all-reduce; with several, the gradients go over NCCL)."
