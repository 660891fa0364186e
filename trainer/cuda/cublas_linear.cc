// The fully connected layer with cuBLAS: y[N, O] = x[N, I] w[O, I]^T + b[O] and its gradients.
//
// cuBLAS is column-major; a row-major [R, C] array is the column-major [C, R] matrix (its
// transpose) with leading dimension C. So, writing M' for the column-major view of row-major M:
//   forward        y' [O, N] = w'^T x'     gemm(T, N, m=O, n=N, k=I, A=w lda=I, B=x ldb=I, ldc=O)
//   bias           y' += b ones^T          gemm(N, N, m=O, n=N, k=1, A=b lda=O, B=ones ldb=1)
//   backward data  dx'[I, N] = w' dy'      gemm(N, N, m=I, n=N, k=O, A=w lda=I, B=dy ldb=O, ldc=I)
//   backward w     dw'[I, O] = x' dy'^T    gemm(N, T, m=I, n=O, k=N, A=x lda=I, B=dy ldb=O, ldc=I)
//   bias grad      db [O, 1] = dy' ones    gemm(N, N, m=O, n=1, k=N, A=dy lda=O, B=ones ldb=N)
// In bf16/fp16, x, w and dy are cast into 16-bit buffers made at creation and multiplied with
// fp32 accumulation into fp32 outputs; the bias terms stay fp32 (k = 1 or a sum over the batch).
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "io/cuda/cast_kernels.h"
#include "io/cuda/cuda_check.h"
#include "trainer/cuda/cuda_ops.h"

namespace alexnet::trainer::cuda {
namespace {

cudaDataType_t cuda_data_type(Precision precision) {
  switch (precision) {
    case Precision::kFloat32:
      return CUDA_R_32F;
    case Precision::kBFloat16:
      return CUDA_R_16BF;
    case Precision::kFloat16:
      return CUDA_R_16F;
  }
  return CUDA_R_32F;
}

int to_int(const char* name, int64_t value) {
  if (value <= 0 || value > INT32_MAX) {
    throw std::invalid_argument(std::string("linear: ") + name + " must be in [1, 2^31), got " +
                                std::to_string(value));
  }
  return static_cast<int>(value);
}

class CudaLinear final : public LinearOp {
 public:
  CudaLinear(CudaContext& ctx, int64_t batch, int64_t in, int64_t out, bool bias)
      : ctx_(ctx),
        batch_(to_int("batch", batch)),
        in_(to_int("in", in)),
        out_(to_int("out", out)),
        bias_(bias),
        precision_(ctx.precision()),
        ab_type_(cuda_data_type(precision_)),
        // fp32 means fp32 unless TF32 is allowed; 16-bit inputs accumulate in fp32.
        compute_(precision_ == Precision::kFloat32 && ctx.allow_tf32()
                     ? CUBLAS_COMPUTE_32F_FAST_TF32
                     : CUBLAS_COMPUTE_32F),
        ones_(ctx.allocate(static_cast<size_t>(batch) * sizeof(float), "linear's ones vector")) {
    const std::vector<float> ones(static_cast<size_t>(batch), 1.0f);
    ALEXNET_CUDA_CHECK(cudaMemcpyAsync(ones_.get(), ones.data(), ones.size() * sizeof(float),
                                       cudaMemcpyHostToDevice, ctx.stream()),
                       "filling linear's ones vector");
    // The host vector goes out of scope: wait for the copy (creation time, not a training step).
    ALEXNET_CUDA_CHECK(cudaStreamSynchronize(ctx.stream()), "waiting for linear's ones vector");
    if (precision_ != Precision::kFloat32) {
      const size_t bytes = element_bytes(precision_);
      x16_ = ctx.allocate(static_cast<size_t>(batch * in) * bytes, "linear's 16-bit input");
      w16_ = ctx.allocate(static_cast<size_t>(out * in) * bytes, "linear's 16-bit weights");
      dy16_ = ctx.allocate(static_cast<size_t>(batch * out) * bytes, "linear's 16-bit gradient");
    }
  }

  void forward(const float* x, const float* w, const float* b, float* y) override {
    float beta = 0;
    if (bias_ && b != nullptr) {
      // y' = b ones^T first; the product then adds to it.
      gemm_fp32(CUBLAS_OP_N, CUBLAS_OP_N, out_, batch_, 1, b, out_, ones(), 1, 0, y, out_,
                "broadcasting linear's bias");
      beta = 1;
    }
    const void* a = as_compute(w, w16_, static_cast<size_t>(out_) * in_);
    const void* bb = as_compute(x, x16_, static_cast<size_t>(batch_) * in_);
    gemm(CUBLAS_OP_T, CUBLAS_OP_N, out_, batch_, in_, a, in_, bb, in_, beta, y, out_,
         "linear forward");
  }

  void backward_data(const float* dy, const float* w, float* dx) override {
    const void* a = as_compute(w, w16_, static_cast<size_t>(out_) * in_);
    const void* bb = as_compute(dy, dy16_, static_cast<size_t>(batch_) * out_);
    gemm(CUBLAS_OP_N, CUBLAS_OP_N, in_, batch_, out_, a, in_, bb, out_, 0, dx, in_,
         "linear backward data");
  }

  void backward_weights(const float* x, const float* dy, float* dw, float* db) override {
    const void* a = as_compute(x, x16_, static_cast<size_t>(batch_) * in_);
    const void* bb = as_compute(dy, dy16_, static_cast<size_t>(batch_) * out_);
    gemm(CUBLAS_OP_N, CUBLAS_OP_T, in_, out_, batch_, a, in_, bb, out_, 0, dw, in_,
         "linear backward weights");
    if (bias_ && db != nullptr) {
      gemm_fp32(CUBLAS_OP_N, CUBLAS_OP_N, out_, 1, batch_, dy, out_, ones(), batch_, 0, db, out_,
                "linear bias gradient");
    }
  }

 private:
  const float* ones() const { return static_cast<const float*>(ones_.get()); }

  // x itself in fp32; otherwise x cast into the op's 16-bit buffer.
  const void* as_compute(const float* x, const DeviceBuffer& buffer, size_t n) {
    if (precision_ == Precision::kFloat32) return x;
    alexnet::cuda::cast_from_float(x, buffer.get(), n, precision_, ctx_.stream());
    return buffer.get();
  }

  // C (fp32) = op(A) op(B) + beta C with A and B in the op's precision.
  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* a, int lda,
            const void* b, int ldb, float beta, float* c, int ldc, const char* what) {
    const float alpha = 1;
    ALEXNET_CUBLAS_CHECK(
        cublasGemmEx(ctx_.cublas(), ta, tb, m, n, k, &alpha, a, ab_type_, lda, b, ab_type_, ldb,
                     &beta, c, CUDA_R_32F, ldc, compute_, CUBLAS_GEMM_DEFAULT),
        what);
  }

  // The bias terms: always plain fp32 (no TF32: a sum over ones that rounding would only spoil).
  void gemm_fp32(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* a,
                 int lda, const float* b, int ldb, float beta, float* c, int ldc,
                 const char* what) {
    const float alpha = 1;
    ALEXNET_CUBLAS_CHECK(
        cublasGemmEx(ctx_.cublas(), ta, tb, m, n, k, &alpha, a, CUDA_R_32F, lda, b, CUDA_R_32F, ldb,
                     &beta, c, CUDA_R_32F, ldc, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
        what);
  }

  CudaContext& ctx_;
  int batch_, in_, out_;
  bool bias_;
  Precision precision_;
  cudaDataType_t ab_type_;
  cublasComputeType_t compute_;
  DeviceBuffer ones_;              // float [batch], all 1
  DeviceBuffer x16_, w16_, dy16_;  // 16-bit copies of x, w, dy (bf16/fp16 only)
};

}  // namespace

std::unique_ptr<LinearOp> make_linear(CudaContext& ctx, int64_t batch, int64_t in, int64_t out,
                                      bool bias) {
  return std::make_unique<CudaLinear>(ctx, batch, in, out, bias);
}

}  // namespace alexnet::trainer::cuda
