// The optimizer's element-wise update for the CUDA backend, where the host cannot touch the
// parameters: own kernels (optimizer_update_kernels.cu), the same bits as the host loops.
#include <memory>

#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/optimizer_update_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

class CudaOptimizerUpdate final : public OptimizerUpdateOp {
 public:
  explicit CudaOptimizerUpdate(CudaContext& ctx) : ctx_(ctx) {}

  void update(UpdateRule rule, bool coupled_decay, const UpdateCoefficients& c, float* params,
              const float* grads, float* first, float* second, size_t n) override {
    optimizer_update(rule, coupled_decay, c, params, grads, first, second, n, ctx_.stream());
  }

 private:
  CudaContext& ctx_;
};

}  // namespace

std::unique_ptr<OptimizerUpdateOp> make_optimizer_update(CudaContext& ctx) {
  return std::make_unique<CudaOptimizerUpdate>(ctx);
}

}  // namespace alexnet::trainer::cuda
