// 2-d convolution (PyTorch's cross-correlation, groups, symmetric zero padding) with cuDNN, over
// NHWC activations, matching reference::conv2d_*.
//
// Layouts: x [N, H, W, I], y [N, OH, OW, O] (NHWC); the weight parameter w and its gradient dw are
// PyTorch's [O, I/g, KH, KW]; cuDNN gets the filter in its NHWC format [O, KH, KW, I/g] (what its
// channels-last kernels take), transposed into an op buffer at every forward and backward-data and
// back out of one after backward-filter. Bias b and db are [O], fp32.
//
// Precision (ctx.precision()): fp32 convolves the fp32 tensors, FMA math only unless TF32 is
// allowed. bf16 / fp16 cast x, w and dy into 16-bit op buffers (cast_kernels.h), convolve with fp32
// accumulation (compute type CUDNN_DATA_FLOAT, tensor-core math), and cast y, dx and dw back to
// fp32; the bias is added to and reduced from the fp32 y / dy. backward_weights casts its x again
// (one cheap element-wise pass) rather than assuming the forward's x is unchanged.
//
// Algorithms: chosen once per direction at creation by cudnnFind*Algorithm (which times them
// with buffers it allocates itself), fastest within ctx.conv_workspace_limit()
// (plan::choose_algorithm); the shared workspace is reserved for the largest of the three.
#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/cuda/cast_kernels.h"
#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"
#include "trainer/cuda/cudnn_descriptors.h"
#include "trainer/cuda/layout_kernels.h"

namespace alexnet::trainer::cuda {
namespace {

cudnnMathType_t to_cudnn(plan::ConvMath math) {
  switch (math) {
    case plan::ConvMath::kFma:
      return CUDNN_FMA_MATH;
    case plan::ConvMath::kDefault:
      return CUDNN_DEFAULT_MATH;
    case plan::ConvMath::kTensorOp:
      break;
  }
  return CUDNN_TENSOR_OP_MATH;
}

// cudnnFind*'s results (all three perf structs have these fields) as plan candidates.
template <typename Perf>
std::vector<plan::AlgoCandidate> candidates(const std::vector<Perf>& perf, int returned) {
  std::vector<plan::AlgoCandidate> out;
  for (int i = 0; i < returned; ++i) {
    const Perf& p = perf[static_cast<size_t>(i)];
    plan::AlgoCandidate c;
    c.algo = static_cast<int>(p.algo);
    c.ok = p.status == CUDNN_STATUS_SUCCESS;
    if (!c.ok) c.status = cudnnGetErrorString(p.status);
    c.time_ms = p.time;
    c.workspace = p.memory;
    c.deterministic = p.determinism == CUDNN_DETERMINISTIC;
    c.math_type = static_cast<int>(p.mathType);
    out.push_back(c);
  }
  return out;
}

class CudaConv2d final : public Conv2dOp {
 public:
  CudaConv2d(CudaContext& ctx, const Conv2dShape& s, bool bias)
      : ctx_(ctx),
        s_((validate(s), s)),
        precision_(ctx.precision()),
        mixed_(precision_ != Precision::kFloat32),
        type_(cudnn_data_type(precision_)),
        math_(plan::conv_math(precision_, ctx.allow_tf32())),
        x_desc_(plan::conv_input(s), type_),
        y_desc_(plan::conv_output(s), type_),
        y32_desc_(plan::conv_output(s), CUDNN_DATA_FLOAT),
        bias_desc_(plan::channel_vector(s.out_channels, "conv2d"), CUDNN_DATA_FLOAT),
        w_desc_(plan::conv_filter(s), type_),
        fwd_conv_(plan::conv_geometry(s), CUDNN_DATA_FLOAT, to_cudnn(math_)),
        data_conv_(plan::conv_geometry(s), CUDNN_DATA_FLOAT, to_cudnn(math_)),
        filter_conv_(plan::conv_geometry(s), CUDNN_DATA_FLOAT, to_cudnn(math_)),
        what_(plan::describe(s) + " in " + precision_name(precision_)) {
    (void)bias;  // whether b / db are given is seen per call (null pointers)
    check_output_dims();
    const size_t esize = element_bytes(precision_);
    x_elements_ = static_cast<size_t>(s.batch * s.height * s.width * s.in_channels);
    y_elements_ = static_cast<size_t>(s.batch * s.out_height() * s.out_width() * s.out_channels);
    w_elements_ = static_cast<size_t>(plan::filter_elements(s));
    filter_ = ctx.allocate(w_elements_ * esize, what_ + ": filter in cuDNN's layout");
    if (mixed_) {
      x16_ = ctx.allocate(x_elements_ * esize, what_ + ": 16-bit input / input gradient");
      y16_ = ctx.allocate(y_elements_ * esize, what_ + ": 16-bit output / output gradient");
      w16_ = ctx.allocate(w_elements_ * esize, what_ + ": 16-bit weights in PyTorch's layout");
    }
    choose_algorithms();
  }

  void forward(const float* x, const float* w, const float* b, float* y) override {
    const float one = 1, zero = 0;
    prepare_filter(w);
    const void* xin = x;
    void* yout = y;
    if (mixed_) {
      alexnet::cuda::cast_from_float(x, x16_.get(), x_elements_, precision_, ctx_.stream());
      xin = x16_.get();
      yout = y16_.get();
    }
    ALEXNET_CUDNN_CHECK(
        cudnnConvolutionForward(ctx_.cudnn(), &one, x_desc_.get(), xin, w_desc_.get(),
                                filter_.get(), fwd_conv_.get(), fwd_algo_, ctx_.workspace(),
                                ctx_.workspace_size(), &zero, y_desc_.get(), yout),
        "running " + what_);
    if (mixed_) alexnet::cuda::cast_to_float(y16_.get(), y, y_elements_, precision_, ctx_.stream());
    if (b) {
      ALEXNET_CUDNN_CHECK(
          cudnnAddTensor(ctx_.cudnn(), &one, bias_desc_.get(), b, &one, y32_desc_.get(), y),
          "adding the bias of " + what_);
    }
  }

  void backward_data(const float* dy, const float* w, float* dx) override {
    if (!data_error_.empty()) throw std::runtime_error(data_error_);
    const float one = 1, zero = 0;
    prepare_filter(w);
    const void* dyin = dy;
    void* dxout = dx;
    if (mixed_) {
      alexnet::cuda::cast_from_float(dy, y16_.get(), y_elements_, precision_, ctx_.stream());
      dyin = y16_.get();
      dxout = x16_.get();
    }
    ALEXNET_CUDNN_CHECK(
        cudnnConvolutionBackwardData(
            ctx_.cudnn(), &one, w_desc_.get(), filter_.get(), y_desc_.get(), dyin, data_conv_.get(),
            data_algo_, ctx_.workspace(), ctx_.workspace_size(), &zero, x_desc_.get(), dxout),
        "running the data gradient of " + what_);
    if (mixed_)
      alexnet::cuda::cast_to_float(x16_.get(), dx, x_elements_, precision_, ctx_.stream());
  }

  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    const float one = 1, zero = 0;
    const void* xin = x;
    const void* dyin = dy;
    if (mixed_) {
      alexnet::cuda::cast_from_float(x, x16_.get(), x_elements_, precision_, ctx_.stream());
      alexnet::cuda::cast_from_float(dy, y16_.get(), y_elements_, precision_, ctx_.stream());
      xin = x16_.get();
      dyin = y16_.get();
    }
    // Into filter_ ([O, KH, KW, I/g]): forward and backward_data rewrite it from w anyway.
    ALEXNET_CUDNN_CHECK(
        cudnnConvolutionBackwardFilter(ctx_.cudnn(), &one, x_desc_.get(), xin, y_desc_.get(), dyin,
                                       filter_conv_.get(), filter_algo_, ctx_.workspace(),
                                       ctx_.workspace_size(), &zero, w_desc_.get(), filter_.get()),
        "running the filter gradient of " + what_);
    finish_filter_gradient(dw);
    if (db) {
      ALEXNET_CUDNN_CHECK(cudnnConvolutionBackwardBias(ctx_.cudnn(), &one, y32_desc_.get(), dy,
                                                       &zero, bias_desc_.get(), db),
                          "running the bias gradient of " + what_);
    }
  }

 private:
  int64_t in_per_group() const { return s_.in_channels / s_.groups; }
  int64_t kernel_area() const { return s_.kernel_h * s_.kernel_w; }

  // w [O, I/g, KH, KW] fp32 -> filter_ [O, KH, KW, I/g] in the compute type.
  void prepare_filter(const float* w) {
    if (mixed_) {
      alexnet::cuda::cast_from_float(w, w16_.get(), w_elements_, precision_, ctx_.stream());
      transpose_batched(w16_.get(), filter_.get(), s_.out_channels, in_per_group(), kernel_area(),
                        element_bytes(precision_), ctx_.stream());
    } else {
      transpose_batched(w, filter_.get(), s_.out_channels, in_per_group(), kernel_area(),
                        sizeof(float), ctx_.stream());
    }
  }

  // filter_ [O, KH, KW, I/g] in the compute type -> dw [O, I/g, KH, KW] fp32.
  void finish_filter_gradient(float* dw) {
    if (mixed_) {
      transpose_batched(filter_.get(), w16_.get(), s_.out_channels, kernel_area(), in_per_group(),
                        element_bytes(precision_), ctx_.stream());
      alexnet::cuda::cast_to_float(w16_.get(), dw, w_elements_, precision_, ctx_.stream());
    } else {
      transpose_batched(filter_.get(), dw, s_.out_channels, kernel_area(), in_per_group(),
                        sizeof(float), ctx_.stream());
    }
  }

  void check_output_dims() {
    int n = 0, c = 0, h = 0, w = 0;
    ALEXNET_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(fwd_conv_.get(), x_desc_.get(),
                                                              w_desc_.get(), &n, &c, &h, &w),
                        "creating " + what_);
    if (n != s_.batch || c != s_.out_channels || h != s_.out_height() || w != s_.out_width()) {
      throw std::logic_error("conv2d: cuDNN's output " + std::to_string(n) + "x" +
                             std::to_string(c) + "x" + std::to_string(h) + "x" + std::to_string(w) +
                             " differs from the reference's for " + what_);
    }
  }

  // Applies the chosen math type: the one cuDNN timed the algorithm with, except that fp32
  // without TF32 stays FMA-only whatever cuDNN reports.
  void use_math(ConvolutionDescriptor& conv, const plan::AlgoCandidate& chosen) {
    conv.set_math(math_ == plan::ConvMath::kFma ? CUDNN_FMA_MATH
                                                : static_cast<cudnnMathType_t>(chosen.math_type));
  }

  void choose_algorithms() {
    const size_t limit = ctx_.conv_workspace_limit();
    const std::string what = "choosing algorithms for " + what_;
    int returned = 0;

    std::vector<cudnnConvolutionFwdAlgoPerf_t> fwd(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
    ALEXNET_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithm(
                            ctx_.cudnn(), x_desc_.get(), w_desc_.get(), fwd_conv_.get(),
                            y_desc_.get(), static_cast<int>(fwd.size()), &returned, fwd.data()),
                        what);
    const plan::AlgoCandidate f =
        plan::choose_algorithm(candidates(fwd, returned), limit, false, "forward " + what_);
    fwd_algo_ = static_cast<cudnnConvolutionFwdAlgo_t>(f.algo);
    use_math(fwd_conv_, f);

    // The first layer never runs backward_data (no one wants the images' gradient), and its
    // 3-channel dx is the shape cuDNN's NHWC kernels support least: a data gradient without a
    // usable algorithm fails at its first use, not at creation.
    plan::AlgoCandidate d;
    try {
      std::vector<cudnnConvolutionBwdDataAlgoPerf_t> data(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
      ALEXNET_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithm(
                              ctx_.cudnn(), w_desc_.get(), y_desc_.get(), data_conv_.get(),
                              x_desc_.get(), static_cast<int>(data.size()), &returned, data.data()),
                          what);
      d = plan::choose_algorithm(candidates(data, returned), limit, false,
                                 "data gradient " + what_);
      data_algo_ = static_cast<cudnnConvolutionBwdDataAlgo_t>(d.algo);
      use_math(data_conv_, d);
    } catch (const std::runtime_error& e) {
      data_error_ = e.what();
      d = plan::AlgoCandidate{};  // needs no workspace
    }

    std::vector<cudnnConvolutionBwdFilterAlgoPerf_t> filter(
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT);
    ALEXNET_CUDNN_CHECK(
        cudnnFindConvolutionBackwardFilterAlgorithm(
            ctx_.cudnn(), x_desc_.get(), y_desc_.get(), filter_conv_.get(), w_desc_.get(),
            static_cast<int>(filter.size()), &returned, filter.data()),
        what);
    const plan::AlgoCandidate g = plan::choose_algorithm(candidates(filter, returned), limit, false,
                                                         "filter gradient " + what_);
    filter_algo_ = static_cast<cudnnConvolutionBwdFilterAlgo_t>(g.algo);
    use_math(filter_conv_, g);

    ctx_.reserve_workspace(std::max({f.workspace, d.workspace, g.workspace}));
  }

  CudaContext& ctx_;
  Conv2dShape s_;
  Precision precision_;
  bool mixed_;
  cudnnDataType_t type_;  // of x, y, w as cuDNN sees them
  plan::ConvMath math_;
  TensorDescriptor x_desc_, y_desc_;  // NHWC in the compute type
  TensorDescriptor y32_desc_;         // fp32 y / dy, for the bias
  TensorDescriptor bias_desc_;        // 1 x O x 1 x 1 fp32
  FilterDescriptor w_desc_;
  // One per direction: each carries the math type its algorithm was chosen with.
  ConvolutionDescriptor fwd_conv_, data_conv_, filter_conv_;
  std::string what_;
  size_t x_elements_ = 0, y_elements_ = 0, w_elements_ = 0;
  DeviceBuffer filter_;  // [O, KH, KW, I/g] in the compute type: w, or dw before its transpose
  DeviceBuffer x16_, y16_, w16_;  // 16-bit only: x or dx, y or dy, w or dw in [O, I/g, KH, KW]
  cudnnConvolutionFwdAlgo_t fwd_algo_{};
  cudnnConvolutionBwdDataAlgo_t data_algo_{};
  cudnnConvolutionBwdFilterAlgo_t filter_algo_{};
  std::string data_error_;  // why backward_data cannot run, where no algorithm was found
};

}  // namespace

std::unique_ptr<Conv2dOp> make_conv2d(CudaContext& ctx, const Conv2dShape& shape, bool bias) {
  return std::make_unique<CudaConv2d>(ctx, shape, bias);
}

}  // namespace alexnet::trainer::cuda
