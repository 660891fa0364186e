#!/usr/bin/env bash
# The main job on the embedded default: CPU, Fashion-MNIST, two ranks.
# Installs what is missing, builds, imports Fashion-MNIST (Debian's dataset-fashion-mnist) into
# HDF5 under data/, trains alexnet-mini data-parallel on two MPI ranks (configs/
# fashion-mnist-mini.cfg: 3 epochs, about 10 minutes on 2 cores) and evaluates the weights on the
# 10,000 test images. Extra arguments go to alexnet-train, e.g. --train.epochs=1 or --resume latest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash launch/install-deps.sh
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j "$(nproc)" --target alexnet-data alexnet-train alexnet-eval

SRC=/usr/share/datasets/fashion-mnist
DATA=${DATA_DIR:-data}
mkdir -p "$DATA"
if [ ! -f "$DATA/fashion-mnist-train-00000.h5" ]; then
  "$BUILD_DIR/bin/alexnet-data" import-idx --images "$SRC/train-images-idx3-ubyte.gz" \
    --labels "$SRC/train-labels-idx1-ubyte.gz" --class-names fashion-mnist \
    --out "$DATA/fashion-mnist-train"
  "$BUILD_DIR/bin/alexnet-data" import-idx --images "$SRC/t10k-images-idx3-ubyte.gz" \
    --labels "$SRC/t10k-labels-idx1-ubyte.gz" --class-names fashion-mnist --no-shuffle \
    --out "$DATA/fashion-mnist-test"
fi
"$BUILD_DIR/bin/alexnet-data" inspect "$DATA"/fashion-mnist-train-*.h5 | tail -n 15
"$BUILD_DIR/bin/alexnet-data" inspect "$DATA"/fashion-mnist-test-*.h5 | tail -n 1


# Open MPI refuses to start as root unless told (containers and CI run as root).
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
RUN=${RUN_DIR:-runs/fashion-mnist-mini}
mpirun -np 2 "$BUILD_DIR/bin/alexnet-train" --config configs/fashion-mnist-mini.cfg \
  --data.train "$DATA/fashion-mnist-train-*.h5" --data.val "$DATA/fashion-mnist-test-*.h5" \
  --run.dir "$RUN" "$@"
"$BUILD_DIR/bin/alexnet-eval" --model.arch alexnet-mini --weights "$RUN/weights.h5" \
  --data "$DATA"/fashion-mnist-test-*.h5
echo "run-demo: checkpoints, metrics.jsonl and TensorBoard events are in $RUN/"
