// RAII cuDNN descriptors (cudnn_descriptors.h). Destructors ignore the status: they must not
// throw, and destroying a valid descriptor does not fail.
#include "trainer/cuda/cudnn_descriptors.h"

#include "io/cuda/cuda_check.h"

namespace alexnet::trainer::cuda {

TensorDescriptor::TensorDescriptor() {
  ALEXNET_CUDNN_CHECK(cudnnCreateTensorDescriptor(&desc_), "creating a tensor descriptor");
}

TensorDescriptor::TensorDescriptor(const plan::TensorDims& d, cudnnDataType_t type)
    : TensorDescriptor() {
  ALEXNET_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(desc_, type, d.n, d.c, d.h, d.w, d.stride_n,
                                                   d.stride_c, d.stride_h, d.stride_w),
                      "describing a " + std::to_string(d.n) + "x" + std::to_string(d.c) + "x" +
                          std::to_string(d.h) + "x" + std::to_string(d.w) + " tensor");
}

TensorDescriptor::~TensorDescriptor() { cudnnDestroyTensorDescriptor(desc_); }

FilterDescriptor::FilterDescriptor(const plan::FilterDims& d, cudnnDataType_t type) {
  ALEXNET_CUDNN_CHECK(cudnnCreateFilterDescriptor(&desc_), "creating a filter descriptor");
  const std::string what = "describing a " + std::to_string(d.out) + "x" +
                           std::to_string(d.in_per_group) + "x" + std::to_string(d.kh) + "x" +
                           std::to_string(d.kw) + " filter";
  try {
    ALEXNET_CUDNN_CHECK(cudnnSetFilter4dDescriptor(desc_, type, CUDNN_TENSOR_NHWC, d.out,
                                                   d.in_per_group, d.kh, d.kw),
                        what);
  } catch (...) {
    cudnnDestroyFilterDescriptor(desc_);
    throw;
  }
}

FilterDescriptor::~FilterDescriptor() { cudnnDestroyFilterDescriptor(desc_); }

ConvolutionDescriptor::ConvolutionDescriptor(const plan::ConvGeometry& g,
                                             cudnnDataType_t compute_type, cudnnMathType_t math) {
  ALEXNET_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&desc_),
                      "creating a convolution descriptor");
  try {
    ALEXNET_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(desc_, g.pad_h, g.pad_w, g.stride_h,
                                                        g.stride_w, g.dilation_h, g.dilation_w,
                                                        CUDNN_CROSS_CORRELATION, compute_type),
                        "describing a convolution");
    ALEXNET_CUDNN_CHECK(cudnnSetConvolutionGroupCount(desc_, g.groups),
                        "setting a convolution's groups to " + std::to_string(g.groups));
    set_math(math);
  } catch (...) {
    cudnnDestroyConvolutionDescriptor(desc_);
    throw;
  }
}

void ConvolutionDescriptor::set_math(cudnnMathType_t math) {
  ALEXNET_CUDNN_CHECK(cudnnSetConvolutionMathType(desc_, math),
                      "setting a convolution's math type");
}

ConvolutionDescriptor::~ConvolutionDescriptor() { cudnnDestroyConvolutionDescriptor(desc_); }

PoolingDescriptor::PoolingDescriptor(const plan::PoolGeometry& g, cudnnPoolingMode_t mode) {
  ALEXNET_CUDNN_CHECK(cudnnCreatePoolingDescriptor(&desc_), "creating a pooling descriptor");
  try {
    ALEXNET_CUDNN_CHECK(cudnnSetPooling2dDescriptor(desc_, mode, CUDNN_PROPAGATE_NAN, g.window,
                                                    g.window, g.pad, g.pad, g.stride, g.stride),
                        "describing a pooling");
  } catch (...) {
    cudnnDestroyPoolingDescriptor(desc_);
    throw;
  }
}

PoolingDescriptor::~PoolingDescriptor() { cudnnDestroyPoolingDescriptor(desc_); }

LrnDescriptor::LrnDescriptor(unsigned size, double alpha, double beta, double k) {
  ALEXNET_CUDNN_CHECK(cudnnCreateLRNDescriptor(&desc_), "creating an LRN descriptor");
  try {
    ALEXNET_CUDNN_CHECK(cudnnSetLRNDescriptor(desc_, size, alpha, beta, k), "describing an LRN");
  } catch (...) {
    cudnnDestroyLRNDescriptor(desc_);
    throw;
  }
}

LrnDescriptor::~LrnDescriptor() { cudnnDestroyLRNDescriptor(desc_); }

ActivationDescriptor::ActivationDescriptor(cudnnActivationMode_t mode) {
  ALEXNET_CUDNN_CHECK(cudnnCreateActivationDescriptor(&desc_), "creating an activation descriptor");
  try {
    // NaN propagates, as max(x, 0) does in the reference; coef is used by clipped modes only.
    ALEXNET_CUDNN_CHECK(cudnnSetActivationDescriptor(desc_, mode, CUDNN_PROPAGATE_NAN, 0.0),
                        "describing an activation");
  } catch (...) {
    cudnnDestroyActivationDescriptor(desc_);
    throw;
  }
}

ActivationDescriptor::~ActivationDescriptor() { cudnnDestroyActivationDescriptor(desc_); }

}  // namespace alexnet::trainer::cuda
