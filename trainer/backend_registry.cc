// Backends by name, and whether this build and machine have the CUDA one.
#include <stdexcept>

#include "trainer/backend.h"
#ifdef ALEXNET_WITH_CUDA
#include "trainer/cuda/cuda_backend.h"
#endif

namespace alexnet::trainer {

std::unique_ptr<Backend> make_backend(const std::string& name, const BackendOptions& options) {
  if (name == "reference" || name == "onednn") {
    if (options.precision != Precision::kFloat32) {
      throw std::invalid_argument(std::string("precision ") + precision_name(options.precision) +
                                  " needs the cuda backend: the " + name +
                                  " backend computes in fp32");
    }
    return name == "reference" ? make_reference_backend() : make_onednn_backend();
  }
  if (name == "cuda") {
#ifdef ALEXNET_WITH_CUDA
    return cuda::make_cuda_backend(options);
#else
    throw std::invalid_argument(
        "backend 'cuda' is not in this build (configure with -DALEXNET_CUDA=ON where the CUDA "
        "Toolkit, cuDNN and NCCL are installed)");
#endif
  }
  throw std::invalid_argument("unknown backend '" + name + "' (reference, onednn, cuda)");
}

bool cuda_backend_built() {
#ifdef ALEXNET_WITH_CUDA
  return true;
#else
  return false;
#endif
}

int cuda_device_count() {
#ifdef ALEXNET_WITH_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

}  // namespace alexnet::trainer
