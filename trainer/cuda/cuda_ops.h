// The CUDA backend's ops, made by trainer/cuda/cuda_backend.cc. All run on the context's stream,
// in NHWC activations (the layout cuDNN's tensor-core kernels take without transposes), and
// allocate only at creation.
//
// File and class names: one file per op of trainer/backend.h, named after the library that does
// the work: cudnn_<op>.cc (cuDNN) or cublas_<op>.cc (cuBLAS); where our own kernels do it, the op
// class is in cuda_<op>.cc and its kernels in <op>_kernels.cu, declared (host launch functions
// taking the stream) in <op>_kernels.h. The per-element arithmetic that the kernels share with
// the CPU backends is plain C++ in trainer/<op>_math.h (ALEXNET_HOST_DEVICE,
// trainer/host_device.h), tested on the CPU. Every op class is Cuda<Op>, whichever library it
// calls. conv2d's files are named conv.
#pragma once

#include <memory>

#include "trainer/backend.h"
#include "trainer/cuda/cuda_context.h"

namespace alexnet::trainer::cuda {

// cuDNN (cudnn_*.cc).
std::unique_ptr<Conv2dOp> make_conv2d(CudaContext& ctx, const Conv2dShape& shape, bool bias);
std::unique_ptr<ReluOp> make_relu(CudaContext& ctx, int64_t elements);
std::unique_ptr<MaxPoolOp> make_max_pool(CudaContext& ctx, const Pool2dShape& shape);
std::unique_ptr<BatchNormOp> make_batch_norm(CudaContext& ctx, const BatchNormShape& shape);

// cuBLAS (cublas_linear.cc).
std::unique_ptr<LinearOp> make_linear(CudaContext& ctx, int64_t batch, int64_t in, int64_t out,
                                      bool bias);

// Own kernels (cuda_<op>.cc, <op>_kernels.cu).
std::unique_ptr<LrnOp> make_lrn(CudaContext& ctx, const LrnShape& shape);
std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(CudaContext& ctx, int64_t batch,
                                                          int64_t channels, int64_t height,
                                                          int64_t width, int64_t out_h,
                                                          int64_t out_w);
std::unique_ptr<DropoutOp> make_dropout(CudaContext& ctx, int64_t elements, double p);
std::unique_ptr<FlattenOp> make_flatten(CudaContext& ctx, int64_t batch, int64_t channels,
                                        int64_t height, int64_t width);
std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(CudaContext& ctx, int64_t batch,
                                                                  int64_t classes,
                                                                  double label_smoothing);
std::unique_ptr<OptimizerUpdateOp> make_optimizer_update(CudaContext& ctx);

// x *= factor over n floats of backend memory, on the context's stream (elementwise_kernels.cu).
// The sum of squares, which needs scratch memory, is trainer/cuda/reduction.h's SumOfSquares.
void scale(CudaContext& ctx, float* x, size_t n, float factor);

}  // namespace alexnet::trainer::cuda
