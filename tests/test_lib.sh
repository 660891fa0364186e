# shellcheck shell=bash
# Sourced by the shell tests (tests/*/*.sh): what each of them would otherwise define again.
#   source "$(dirname "$0")/../test_lib.sh"
# Safe under set -euo pipefail: it defines functions and two constants and runs nothing else.

# The Debian package dataset-fashion-mnist's files (train-* 60,000 images, t10k-* 10,000).
FASHION_MNIST=/usr/share/datasets/fashion-mnist
TESTS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# fail MESSAGE: "FAIL: MESSAGE" (or "FAIL (TEST_CASE): MESSAGE" where the test sets TEST_CASE)
# as the last line, and the test ends with status 1. Its scratch folder stays, to look at.
fail() {
  echo "FAIL${TEST_CASE:+ ($TEST_CASE)}: $*"
  exit 1
}

# fail_with_log MESSAGE LOG...: the logs (a command's output), then fail MESSAGE.
fail_with_log() {
  local message=$1
  shift
  cat "$@"
  fail "$message"
}

# fresh_dir DIR: DIR exists and is empty (what an earlier run left there is removed).
fresh_dir() { rm -rf "$1" && mkdir -p "$1"; }

# passed DIR MESSAGE: the test's last line, MESSAGE; its scratch folder DIR is removed (only on
# success: a failed test keeps its files; KEEP_WORK=1 keeps them on success too).
passed() {
  echo "$2"
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$1"
}

# emulated_hosts_up HOSTS_SH N: N emulated hosts (tests/faults/hosts.sh, with the caller's
# EMU_HOSTS_* set) up, or the test skips (77, the reason said: not root, no ip netns) or fails.
emulated_hosts_up() {
  local rc=0 out
  out=$(bash "$1" up "$2" 2>&1) || rc=$?
  [ $rc -ne 77 ] || { echo "$out"; exit 77; }  # "SKIP: why"
  [ $rc -eq 0 ] || fail "hosts.sh up $2: $out"
}

# Open MPI refuses to start as root unless told (the test machines and containers run as root).
allow_mpirun_as_root() { export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; }

# import_fashion_mnist BIN_DIR SET OUT [import-idx options...]: Fashion-MNIST's SET (train or
# t10k) as HDF5 shards OUT-*.h5 (OUT-train-*, OUT-val-* with --val-fraction), with its class names.
import_fashion_mnist() {
  local bin=$1 set=$2 out=$3
  shift 3
  local images=$FASHION_MNIST/$set-images-idx3-ubyte.gz
  [ -f "$images" ] || fail "missing $images (apt-get install dataset-fashion-mnist)"
  "$bin/alexnet-data" import-idx --quiet --images "$images" \
    --labels "$FASHION_MNIST/$set-labels-idx1-ubyte.gz" --class-names fashion-mnist "$@" \
    --out "$out" || fail "alexnet-data import-idx of Fashion-MNIST $set"
}

# same_state A B: two checkpoints equal bit for bit (every array, and the step).
same_state() { /usr/bin/python3 "$TESTS_DIR/same_checkpoint_state.py" "$1" "$2"; }
