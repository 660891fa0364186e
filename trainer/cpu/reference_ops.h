// The plain reference of every AlexNet operation, forward and backward: simple loops over dense
// NCHW (activations), [O, I/groups, KH, KW] (conv weights) and [O, I] (FC weights) arrays, in
// PyTorch's layouts and conventions. This is the specification: the oneDNN and cuDNN backends are
// tested against it, and it is tested against numerical gradients and against PyTorch.
// Templated on the scalar type so that gradient checks can run in double precision.
//
// Backward functions *overwrite* their outputs (no accumulation), except where noted.
#pragma once

#include <cstdint>

#include "trainer/op_shapes.h"

namespace alexnet::trainer::reference {

// The shapes are shared with every backend (trainer/op_shapes.h).
using trainer::BatchNormShape;
using trainer::Conv2dShape;
using trainer::DropoutKey;
using trainer::LrnShape;
using trainer::Pool2dShape;

// y[N, O, OH, OW] = conv(x[N, I, H, W], w[O, I/g, KH, KW]) + b[O] (b may be null: no bias).
template <typename T>
void conv2d_forward(const Conv2dShape& s, const T* x, const T* w, const T* b, T* y);
// dx[N, I, H, W] from dy[N, O, OH, OW] and w.
template <typename T>
void conv2d_backward_data(const Conv2dShape& s, const T* dy, const T* w, T* dx);
// dw[O, I/g, KH, KW] and db[O] (db may be null) from x and dy.
template <typename T>
void conv2d_backward_weights(const Conv2dShape& s, const T* x, const T* dy, T* dw, T* db);

// y = max(x, 0) over n elements; dx = dy where y > 0 (the output, as in-place ReLU allows).
template <typename T>
void relu_forward(int64_t n, const T* x, T* y);
template <typename T>
void relu_backward(int64_t n, const T* y, const T* dy, T* dx);

// Max pooling; padding never wins (it is -inf). argmax[N, C, OH, OW] receives the flat index
// (h * W + w) of each maximum inside its input plane, the first one on ties (as PyTorch).
template <typename T>
void max_pool_forward(const Pool2dShape& s, const T* x, T* y, int32_t* argmax);
// dx (overwritten) gets dy routed to the argmax positions; overlapping windows accumulate.
template <typename T>
void max_pool_backward(const Pool2dShape& s, const T* dy, const int32_t* argmax, T* dx);

// PyTorch's adaptive average pooling to [out_h, out_w] (torchvision AlexNet: 6x6): bin i covers
// rows [floor(i * H / oh), ceil((i + 1) * H / oh)).
template <typename T>
void adaptive_avg_pool_forward(int64_t batch, int64_t channels, int64_t height, int64_t width,
                               int64_t out_h, int64_t out_w, const T* x, T* y);
template <typename T>
void adaptive_avg_pool_backward(int64_t batch, int64_t channels, int64_t height, int64_t width,
                                int64_t out_h, int64_t out_w, const T* dy, T* dx);

template <typename T>
void lrn_forward(const LrnShape& s, const T* x, T* y);
template <typename T>
void lrn_backward(const LrnShape& s, const T* x, const T* dy, T* dx);

template <typename T>
void batch_norm_forward_training(const BatchNormShape& s, const T* x, const T* gamma, const T* beta,
                                 T* y, T* save_mean, T* save_invstd, T* running_mean,
                                 T* running_var);
template <typename T>
void batch_norm_forward_inference(const BatchNormShape& s, const T* x, const T* gamma,
                                  const T* beta, const T* running_mean, const T* running_var, T* y);
template <typename T>
void batch_norm_backward(const BatchNormShape& s, const T* x, const T* dy, const T* gamma,
                         const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta);

// Fully connected: y[N, O] = x[N, I] w[O, I]^T + b[O] (b may be null).
template <typename T>
void linear_forward(int64_t batch, int64_t in, int64_t out, const T* x, const T* w, const T* b,
                    T* y);
template <typename T>
void linear_backward_data(int64_t batch, int64_t in, int64_t out, const T* dy, const T* w, T* dx);
template <typename T>
void linear_backward_weights(int64_t batch, int64_t in, int64_t out, const T* x, const T* dy, T* dw,
                             T* db);

// Inverted dropout: element i is kept with probability 1 - p and scaled by 1 / (1 - p). The
// mask is a pure function of (seed, step, rank, layer, i) (trainer/dropout_math.h, shared with
// the CUDA kernels so that every backend draws the same mask), so runs reproduce and every rank
// draws different masks. mask[i] is 1 where kept, 0 where dropped. p is quantized to 24 bits
// (the keep probability is exactly 1 - round(p * 2^24) / 2^24); p = 1 drops everything and
// outputs zeros.
void dropout_mask(int64_t n, double p, const DropoutKey& key, uint8_t* mask);
template <typename T>
void dropout_forward(int64_t n, double p, const uint8_t* mask, const T* x, T* y);
template <typename T>
void dropout_backward(int64_t n, double p, const uint8_t* mask, const T* dy, T* dx);

// Softmax cross-entropy over [N, classes] logits with integer labels, mean over the batch,
// optional label smoothing eps (PyTorch's: target = (1 - eps) one-hot + eps / classes).
// Returns the loss; dlogits receives d(loss)/d(logits).
template <typename T>
T softmax_cross_entropy(int64_t batch, int64_t classes, const T* logits, const int32_t* labels,
                        double label_smoothing, T* dlogits);

}  // namespace alexnet::trainer::reference
