#!/usr/bin/env bash
# The whole test suite, slow tests included: install dependencies, configure, build, run ctest.
# Extra arguments go to ctest (e.g. tests/run.sh -LE slow for the fast edit loop).
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)"
cd "$BUILD_DIR"
ctest --output-on-failure -j "$(nproc)" "$@"
