// RAII cuDNN descriptors, each built from a plain plan struct (trainer/cuda/cudnn_plan.h) and
// destroyed with its owner; every create and set is checked.
#pragma once

#include <cudnn.h>

#include "trainer/cuda/cudnn_plan.h"

namespace alexnet::trainer::cuda {

class TensorDescriptor {
 public:
  TensorDescriptor(const plan::TensorDims& dims, cudnnDataType_t type);
  // An empty descriptor, set by its user (batch norm's derived parameter descriptor).
  TensorDescriptor();
  ~TensorDescriptor();
  TensorDescriptor(const TensorDescriptor&) = delete;
  TensorDescriptor& operator=(const TensorDescriptor&) = delete;
  cudnnTensorDescriptor_t get() const { return desc_; }

 private:
  cudnnTensorDescriptor_t desc_ = nullptr;
};

// In the NHWC filter format: memory [O, KH, KW, I/groups].
class FilterDescriptor {
 public:
  FilterDescriptor(const plan::FilterDims& dims, cudnnDataType_t type);
  ~FilterDescriptor();
  FilterDescriptor(const FilterDescriptor&) = delete;
  FilterDescriptor& operator=(const FilterDescriptor&) = delete;
  cudnnFilterDescriptor_t get() const { return desc_; }

 private:
  cudnnFilterDescriptor_t desc_ = nullptr;
};

// Cross-correlation (what PyTorch calls convolution) with the given compute type, groups and math.
class ConvolutionDescriptor {
 public:
  ConvolutionDescriptor(const plan::ConvGeometry& geometry, cudnnDataType_t compute_type,
                        cudnnMathType_t math);
  ~ConvolutionDescriptor();
  ConvolutionDescriptor(const ConvolutionDescriptor&) = delete;
  ConvolutionDescriptor& operator=(const ConvolutionDescriptor&) = delete;
  cudnnConvolutionDescriptor_t get() const { return desc_; }
  void set_math(cudnnMathType_t math);

 private:
  cudnnConvolutionDescriptor_t desc_ = nullptr;
};

// Max pooling over square windows; NaN propagates (as the reference and PyTorch).
class PoolingDescriptor {
 public:
  PoolingDescriptor(const plan::PoolGeometry& geometry, cudnnPoolingMode_t mode);
  ~PoolingDescriptor();
  PoolingDescriptor(const PoolingDescriptor&) = delete;
  PoolingDescriptor& operator=(const PoolingDescriptor&) = delete;
  cudnnPoolingDescriptor_t get() const { return desc_; }

 private:
  cudnnPoolingDescriptor_t desc_ = nullptr;
};

// Size, alpha, beta and k in cuDNN's own convention (see cuda_lrn.cc for why the LRN op does
// not use cuDNN).
class LrnDescriptor {
 public:
  LrnDescriptor(unsigned size, double alpha, double beta, double k);
  ~LrnDescriptor();
  LrnDescriptor(const LrnDescriptor&) = delete;
  LrnDescriptor& operator=(const LrnDescriptor&) = delete;
  cudnnLRNDescriptor_t get() const { return desc_; }

 private:
  cudnnLRNDescriptor_t desc_ = nullptr;
};

class ActivationDescriptor {
 public:
  explicit ActivationDescriptor(cudnnActivationMode_t mode);
  ~ActivationDescriptor();
  ActivationDescriptor(const ActivationDescriptor&) = delete;
  ActivationDescriptor& operator=(const ActivationDescriptor&) = delete;
  cudnnActivationDescriptor_t get() const { return desc_; }

 private:
  cudnnActivationDescriptor_t desc_ = nullptr;
};

}  // namespace alexnet::trainer::cuda
