#!/usr/bin/env bash
# The NCCL communicator across two processes, each driving its own GPU: mpirun -np 2 of
# test_gpu_nccl, the cases that work at any size plus the two-process one (a silent peer).
# Usage: two_process_nccl.sh TEST_GPU_NCCL [MPIEXEC]. Exits 77 (CTest's SKIP_RETURN_CODE) with a
# "SKIP: ..." line where fewer than 2 GPUs are visible: NCCL refuses two ranks on one device.
set -euo pipefail
binary=${1:?usage: two_process_nccl.sh TEST_GPU_NCCL [MPIEXEC]}
mpiexec=${2:-mpirun}
[[ -x $binary ]] || { echo "two_process_nccl.sh: no executable $binary" >&2; exit 1; }

# Visible GPUs: CUDA_VISIBLE_DEVICES where set (what cudaGetDeviceCount will count), else
# nvidia-smi's list.
if [[ -n "${CUDA_VISIBLE_DEVICES+set}" ]]; then
  IFS=, read -r -a visible <<<"$CUDA_VISIBLE_DEVICES"
  gpus=${#visible[@]}
elif command -v nvidia-smi >/dev/null 2>&1; then
  gpus=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
else
  gpus=0
fi
if ((gpus < 2)); then
  echo "SKIP: the two-process NCCL test needs 2 GPUs, $gpus visible"
  exit 77
fi

command -v "$mpiexec" >/dev/null 2>&1 || { echo "two_process_nccl.sh: no $mpiexec on PATH" >&2; exit 1; }
# Open MPI refuses to run as root without these (CI containers).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
exec "$mpiexec" -np 2 "$binary" \
  --gtest_filter='WiresAndOps/NcclAllReduce.*:NcclGrouped.*:NcclTwoProcess.*'
