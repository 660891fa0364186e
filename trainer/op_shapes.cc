// The reference's shape rules (trainer/op_shapes.h), the one check every backend makes.
#include "trainer/op_shapes.h"

#include <limits>
#include <stdexcept>
#include <string>

namespace alexnet::trainer {
namespace shape_check {

[[noreturn]] void fail(const char* op, const std::string& what) {
  throw std::invalid_argument(std::string(op) + ": " + what);
}

void require_positive(const char* op, const char* name, int64_t value) {
  if (value <= 0) fail(op, std::string(name) + " must be positive, got " + std::to_string(value));
}

void require_non_negative(const char* op, const char* name, int64_t value) {
  if (value < 0)
    fail(op, std::string(name) + " must not be negative, got " + std::to_string(value));
}

}  // namespace shape_check

using shape_check::fail;
using shape_check::require_non_negative;
using shape_check::require_positive;

void validate(const Conv2dShape& s) {
  const char* op = "conv2d";
  require_positive(op, "batch", s.batch);
  require_positive(op, "in_channels", s.in_channels);
  require_positive(op, "out_channels", s.out_channels);
  require_positive(op, "height", s.height);
  require_positive(op, "width", s.width);
  require_positive(op, "kernel_h", s.kernel_h);
  require_positive(op, "kernel_w", s.kernel_w);
  require_positive(op, "stride_h", s.stride_h);
  require_positive(op, "stride_w", s.stride_w);
  require_non_negative(op, "pad_h", s.pad_h);
  require_non_negative(op, "pad_w", s.pad_w);
  require_positive(op, "groups", s.groups);
  if (s.in_channels % s.groups != 0 || s.out_channels % s.groups != 0) {
    fail(op, "groups (" + std::to_string(s.groups) + ") must divide in_channels (" +
                 std::to_string(s.in_channels) + ") and out_channels (" +
                 std::to_string(s.out_channels) + ")");
  }
  // Not out_height() > 0: its division truncates toward zero, so it returns 1 when the kernel
  // overhangs the padded input by less than one stride.
  if (s.kernel_h > s.height + 2 * s.pad_h || s.kernel_w > s.width + 2 * s.pad_w) {
    fail(op, "kernel " + std::to_string(s.kernel_h) + "x" + std::to_string(s.kernel_w) +
                 " is larger than the padded input");
  }
}

void validate(const Pool2dShape& s) {
  const char* op = "max_pool";
  require_positive(op, "batch", s.batch);
  require_positive(op, "channels", s.channels);
  require_positive(op, "height", s.height);
  require_positive(op, "width", s.width);
  require_positive(op, "kernel", s.kernel);
  require_positive(op, "stride", s.stride);
  require_non_negative(op, "pad", s.pad);
  // PyTorch's rule; it also guarantees that every window holds at least one input element.
  if (s.pad > s.kernel / 2) fail(op, "pad must be at most half the kernel");
  if (s.kernel > s.height + 2 * s.pad || s.kernel > s.width + 2 * s.pad) {
    fail(op, "kernel is larger than the padded input");  // see the note in the conv check
  }
  if (s.height * s.width > std::numeric_limits<int32_t>::max()) {
    fail(op, "the input plane is too large for int32 argmax indices");
  }
}

void validate(const LrnShape& s) {
  const char* op = "lrn";
  require_positive(op, "batch", s.batch);
  require_positive(op, "channels", s.channels);
  require_positive(op, "height", s.height);
  require_positive(op, "width", s.width);
  require_positive(op, "size", s.size);
}

void validate(const BatchNormShape& s) {
  const char* op = "batch_norm";
  require_positive(op, "batch", s.batch);
  require_positive(op, "channels", s.channels);
  require_positive(op, "spatial", s.spatial);
  // As PyTorch: the unbiased variance of a single value divides by zero.
  if (s.batch * s.spatial < 2) fail(op, "training needs more than one value per channel");
  if (!(s.eps >= 0)) fail(op, "eps must not be negative");
}

}  // namespace alexnet::trainer
