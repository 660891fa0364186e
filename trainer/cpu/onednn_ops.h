// The oneDNN CPU backend's ops and the few things they share.
//
// File and class names (the same rule in every backend): one file per op of trainer/backend.h,
// named onednn_<op>.cc after the op (conv2d's file is onednn_conv.cc), holding class
// OneDnn<Op>, whether oneDNN or our own loop does the work: it is the oneDNN backend's op either
// way, and the file says at its top which and why (own loops: relu, lrn, dropout,
// softmax_cross_entropy, and adaptive_avg_pool for overlapping bins). Arithmetic that a loop here
// shares with the reference ops or the CUDA kernels is in trainer/<op>_math.h. Activations are NHWC
// (channels-last, oneDNN's `nhwc`), which oneDNN 2.x's JIT convolutions take directly (with weights
// in the format they choose) and which cuDNN's tensor cores prefer too.
#pragma once

#include <dnnl.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "io/call_error.h"
#include "trainer/backend.h"

namespace alexnet::trainer::onednn {

// The process's CPU engine and its in-order stream.
dnnl::engine& engine();
dnnl::stream& stream();

// Runs a oneDNN call; a dnnl::error becomes std::runtime_error naming the call, where it was,
// and what it was doing (io/call_error.h), e.g. "oneDNN call convolution_forward::primitive_desc
// failed at trainer/cpu/onednn_conv.cc:42 while creating conv 96x11x11/4 on 227x227x3: could not
// create a primitive descriptor (status 3)".
#define ALEXNET_DNNL_CHECK(call, context)                                                 \
  [&]() -> decltype(auto) {                                                               \
    try {                                                                                 \
      return (call);                                                                      \
    } catch (const dnnl::error& dnnl_error_) {                                            \
      ::alexnet::io::throw_call_error("oneDNN", #call, __FILE__, __LINE__, (context),     \
                                      std::string(dnnl_error_.what()) + " (status " +     \
                                          std::to_string(int(dnnl_error_.status)) + ")"); \
    }                                                                                     \
  }()

// ---- Shared by the op files ----

// Scratchpads: every primitive is made with oneDNN's user-managed scratchpad mode
// (`scratchpad_attr()`), and its Args carry a scratchpad memory object (`add_scratchpad`) that
// `run` points at the process's one scratchpad buffer before each execution. In the default
// (library) mode oneDNN allocates a scratchpad inside every execution of many of its AVX-512
// kernels (20+ allocations of 64 KiB or more in two training steps): memory allocated once is
// the house rule. One buffer serves every primitive because they run one at a time on the
// in-order stream from the training thread; it grows only while ops are made, never in a step.
dnnl::primitive_attr scratchpad_attr();
void reserve_scratchpad(size_t bytes);
void* scratchpad_data();

// A primitive's arguments, made once. dnnl::primitive::execute takes a std::unordered_map and
// copies it into a new vector on every call, heap allocations inside every training step; this
// keeps the C API's argument array ready, and the memory objects it points at alive.
class Args {
 public:
  Args() = default;
  Args(std::initializer_list<std::pair<int, dnnl::memory>> args) {
    for (const auto& a : args) insert(a);
  }
  void insert(const std::pair<int, dnnl::memory>& a) {
    memories_.push_back(a.second);
    raw_.push_back({a.first, a.second.get()});
  }
  // The primitive's scratchpad (its primitive_desc's scratchpad_desc()), if it needs one.
  void add_scratchpad(const dnnl::memory::desc& md, const dnnl::engine& eng) {
    if (md.get_size() == 0) return;
    reserve_scratchpad(md.get_size());
    scratchpad_ = static_cast<int>(raw_.size());
    insert({DNNL_ARG_SCRATCHPAD, dnnl::memory(md, eng, DNNL_MEMORY_NONE)});
  }
  int size() const { return static_cast<int>(raw_.size()); }
  const dnnl_exec_arg_t* data() const { return raw_.data(); }
  // The scratchpad's memory object, or null.
  dnnl_memory_t scratchpad() const { return scratchpad_ < 0 ? nullptr : raw_[scratchpad_].memory; }

 private:
  std::vector<dnnl::memory> memories_;
  std::vector<dnnl_exec_arg_t> raw_;
  int scratchpad_ = -1;
};

// A reorder from `from` to `to` (user scratchpad mode); its arguments, scratchpad included, go
// into `args`.
inline dnnl::reorder make_reorder(const dnnl::memory& from, const dnnl::memory& to, Args& args,
                                  const std::string& context) {
  const auto pd =
      ALEXNET_DNNL_CHECK(dnnl::reorder::primitive_desc(from, to, scratchpad_attr()), context);
  args = {{DNNL_ARG_FROM, from}, {DNNL_ARG_TO, to}};
  args.add_scratchpad(pd.scratchpad_desc(), pd.get_engine());
  return ALEXNET_DNNL_CHECK(dnnl::reorder(pd), context);
}

// oneDNN memory objects take a mutable handle; the ops only read what the caller passes as const.
// An fp32 activation of n x c x h x w in the NHWC layout the CPU backend keeps between layers.
inline dnnl::memory::desc nhwc_desc(int64_t n, int64_t c, int64_t h, int64_t w) {
  return dnnl::memory::desc({n, c, h, w}, dnnl::memory::data_type::f32,
                            dnnl::memory::format_tag::nhwc);
}

inline void* handle(const float* p) { return const_cast<float*>(p); }

// Points a memory object made once at the caller's array for this call.
inline void point(const dnnl::memory& m, const float* p) {
  ALEXNET_DNNL_CHECK(m.set_data_handle(handle(p)), "setting a data handle");
}

// A memory object without a buffer, for the caller's arrays.
inline dnnl::memory unbound(const dnnl::memory::desc& md, const std::string& context) {
  return ALEXNET_DNNL_CHECK(dnnl::memory(md, engine(), DNNL_MEMORY_NONE), context);
}

// Runs one primitive through the C API (no allocation on our side) and waits: the host loops
// after it (and callers reading host memory) need its results; with an OpenMP or TBB CPU
// runtime execution is synchronous and the wait is free. An empty primitive (a reorder that
// turned out not to be needed) is skipped. Failures name the call, the place and `context`.
void check_status(dnnl_status_t status, const char* call, const char* file, int line,
                  const char* context);
inline void run(const dnnl::primitive& p, const Args& args, const char* context) {
  if (!p) return;
  if (dnnl_memory_t pad = args.scratchpad()) {
    check_status(dnnl_memory_set_data_handle(pad, scratchpad_data()), "dnnl_memory_set_data_handle",
                 __FILE__, __LINE__, context);
  }
  check_status(dnnl_primitive_execute(p.get(), stream().get(), args.size(), args.data()),
               "dnnl_primitive_execute", __FILE__, __LINE__, context);
  check_status(dnnl_stream_wait(stream().get()), "dnnl_stream_wait", __FILE__, __LINE__, context);
}
inline void run(const dnnl::primitive& p, const Args& args, const std::string& context) {
  run(p, args, context.c_str());
}

std::unique_ptr<Conv2dOp> make_conv2d(const Conv2dShape& shape, bool bias);
std::unique_ptr<LinearOp> make_linear(int64_t batch, int64_t in, int64_t out, bool bias);
std::unique_ptr<ReluOp> make_relu(int64_t elements);
std::unique_ptr<FlattenOp> make_flatten(int64_t batch, int64_t channels, int64_t height,
                                        int64_t width);
std::unique_ptr<SoftmaxCrossEntropyOp> make_softmax_cross_entropy(int64_t batch, int64_t classes,
                                                                  double label_smoothing);
std::unique_ptr<MaxPoolOp> make_max_pool(const Pool2dShape& shape);
std::unique_ptr<AdaptiveAvgPoolOp> make_adaptive_avg_pool(int64_t batch, int64_t channels,
                                                          int64_t height, int64_t width,
                                                          int64_t out_h, int64_t out_w);
std::unique_ptr<LrnOp> make_lrn(const LrnShape& shape);
std::unique_ptr<BatchNormOp> make_batch_norm(const BatchNormShape& shape);
std::unique_ptr<DropoutOp> make_dropout(int64_t elements, double p);

}  // namespace alexnet::trainer::onednn
