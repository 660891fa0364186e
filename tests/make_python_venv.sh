#!/usr/bin/env bash
# Makes the Python virtual environment of the tests that need PyPI packages Debian does not ship
# (tensorboard, onnxruntime, safetensors): VENV_DIR/bin/python. Run by a CTest fixture; does
# nothing (and needs no network) when they are already importable there.
# Debian's /usr/bin/python3, not the first python3 on PATH (a pyenv one on our machines): with
# --system-site-packages the venv also sees Debian's numpy, torch and h5py.
set -euo pipefail

if [ $# -ne 1 ]; then
  echo "usage: $0 VENV_DIR" >&2
  exit 2
fi
venv=$1
packages=(tensorboard onnxruntime safetensors)  # import names are the same
imports="import $(IFS=,; echo "${packages[*]}")"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c "$imports" 2>/dev/null; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv --system-site-packages "$venv"
fi
"$venv/bin/python" -m pip install --quiet "${packages[@]}"
"$venv/bin/python" -c "$imports"
