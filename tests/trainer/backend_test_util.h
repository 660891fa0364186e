// Helpers for the backend tests (CPU and GPU alike): random data, buffers in any backend's memory,
// NCHW <-> NHWC conversion, relative error.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "trainer/backend.h"

namespace alexnet::trainer::testing {

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.0f,
                                        float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A buffer in a backend's memory (host or device), filled from and read back to host vectors.
template <typename T = float>
class DeviceArray {
 public:
  DeviceArray(Backend& backend, const std::vector<T>& values)
      : backend_(backend),
        size_(values.size()),
        memory_(backend.allocate(std::max<size_t>(size_, 1) * sizeof(T))) {
    if (size_ > 0) backend_.copy_to_device(memory_.get(), values.data(), size_ * sizeof(T));
  }
  DeviceArray(Backend& backend, size_t size, T fill)
      : DeviceArray(backend, std::vector<T>(size, fill)) {}
  T* get() { return static_cast<T*>(memory_.get()); }
  std::vector<T> read() {
    std::vector<T> values(size_);
    backend_.synchronize();
    if (size_ > 0) backend_.copy_to_host(values.data(), memory_.get(), size_ * sizeof(T));
    return values;
  }
  size_t size() const { return size_; }

 private:
  Backend& backend_;
  size_t size_;
  Backend::Memory memory_;
};

// [N, C, H, W] <-> [N, H, W, C].
inline std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int64_t n, int64_t c, int64_t h,
                                       int64_t w) {
  std::vector<float> y(x.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t r = 0; r < h * w; ++r) y[(i * h * w + r) * c + k] = x[(i * c + k) * h * w + r];
  return y;
}
inline std::vector<float> nhwc_to_nchw(const std::vector<float>& y, int64_t n, int64_t c, int64_t h,
                                       int64_t w) {
  std::vector<float> x(y.size());
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < c; ++k)
      for (int64_t r = 0; r < h * w; ++r) x[(i * c + k) * h * w + r] = y[(i * h * w + r) * c + k];
  return x;
}

// An activation in the backend's layout, from NCHW data, and back.
inline std::vector<float> to_backend(const Backend& b, const std::vector<float>& nchw, int64_t n,
                                     int64_t c, int64_t h, int64_t w) {
  return b.activation_layout() == ActivationLayout::kNHWC ? nchw_to_nhwc(nchw, n, c, h, w) : nchw;
}
inline std::vector<float> from_backend(const Backend& b, const std::vector<float>& data, int64_t n,
                                       int64_t c, int64_t h, int64_t w) {
  return b.activation_layout() == ActivationLayout::kNHWC ? nhwc_to_nchw(data, n, c, h, w) : data;
}

// max |a - b| / max(max |b|, tiny): one relative error for a whole tensor; NaN anywhere fails.
inline double relative_error(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return INFINITY;
  double diff = 0, scale = 1e-30;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) return INFINITY;
    diff = std::max(diff, std::abs(static_cast<double>(a[i]) - b[i]));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return diff / scale;
}

}  // namespace alexnet::trainer::testing
