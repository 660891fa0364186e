#!/usr/bin/env bash
# Our ring all-reduce against plain MPI_Allreduce on 2 ranks, with glibc's default allocator
# settings and with freed memory kept (see bench/allreduce_bench.cc). Run from the repository
# root after building bench-allreduce; extra arguments go to bench-allreduce (e.g. --repeats 9).
set -euo pipefail
cd "$(dirname "$0")/.."

for allocator in default tuned; do
  echo "### bench-allreduce --allocator $allocator"
  # env -u: a GLIBC_TUNABLES in the caller's environment must not tune the default case.
  env -u GLIBC_TUNABLES mpirun -np 2 build/bin/bench-allreduce --allocator "$allocator" "$@"
  echo
done
