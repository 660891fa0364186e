#!/usr/bin/env bash
# Installs (with apt) everything the build, the main job and the tests need; does nothing when all
# of it is already there. Run as root, or with sudo available.
set -euo pipefail

packages=(
  cmake g++ make pkg-config
  libopenmpi-dev openmpi-bin            # MPI
  libhdf5-dev hdf5-tools                # HDF5 (C), h5dump for debugging
  libboost-program-options-dev          # options and config files
  libgtest-dev googletest               # tests
  libdnnl-dev                           # oneDNN, the CPU backend
  ocl-icd-opencl-dev opencl-c-headers   # Debian's oneDNN is built with OpenCL: its dnnl-config.cmake find_package()s it
  libjpeg62-turbo-dev libpng-dev zlib1g-dev   # image import
  dataset-fashion-mnist                 # the embedded demo dataset
  time                                  # GNU time: peak memory in the malformed-input tests
  python3-h5py python3-numpy            # h5py-compatibility tests
  python3-torch python3-torchvision     # PyTorch as the outside oracle of the model tests
  libopenblas0-pthread                  # a real BLAS under that PyTorch (libblas3 is the slow reference one)
  libprotobuf-dev protobuf-compiler     # TensorBoard event files (trainer/tensorboard_event.proto)
  python3-venv                          # the tests' venv for PyPI-only packages (tensorboard)
  libonnx-dev                           # alexnet-export's ONNX graphs (protobuf classes, checker)
  nlohmann-json3-dev                    # safetensors headers (JSON), alexnet-predict --json
  python3-onnx                          # export tests: onnx.checker on the exported graphs
  python3-pil                           # export tests: PNG and JPEG images for alexnet-predict
  python3-matplotlib                    # launch/scaling-sweep: the PNG plots
  slurmctld                             # Slurm controller: tests/slurm/ runs a one-node cluster
  slurmd                                # Slurm node daemon (and its plugins, PMIx for srun --mpi=pmix)
  slurm-client                          # sbatch, srun, squeue, scontrol (launch/alexnet.sbatch)
  munge                                 # Slurm's authentication (the tests' cluster runs its own munged)
  iproute2                              # ip netns, tc: tests/faults/ emulates hosts and cuts their links
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${missing[*]}" >&2
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
