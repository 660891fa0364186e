// No allocation inside a training step: after warm-up steps, a whole step (batch copy, forward,
// loss, backward, optimizer update) and an evaluation forward make no heap allocation from our
// code, and the libraries under it (oneDNN, libgomp) allocate no buffers, on the oneDNN backend.
//
// This binary replaces glibc's malloc family and operator new/delete with counting wrappers
// (symbol interposition reaches the shared libraries too) and attributes each allocation to its
// immediate caller: our code (this executable, which links the trainer statically) or a library.
// oneDNN 2.6 allocates a few small blocks inside every primitive execution (the execution
// context's argument map, per-thread GEMM packing blocks of at most 32 KiB) that no API avoids;
// they come from glibc's free lists, never from fresh pages, and the test bounds their size.
// The reference backend is a test oracle written for obviousness and is not checked here.
#include <gtest/gtest.h>

#include <execinfo.h>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <new>
#include <span>
#include <string>
#include <vector>

#include "trainer/backend.h"
#include "trainer/model.h"
#include "trainer/model_spec.h"
#include "trainer/optimizer.h"

// ASan and TSan replace the malloc family themselves (ours would bypass their heap, and their
// allocations inside their own start-up would be counted): the checks skip, visibly, there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALEXNET_SANITIZER_HEAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define ALEXNET_SANITIZER_HEAP 1
#endif
#endif
#ifdef ALEXNET_SANITIZER_HEAP
constexpr bool kSanitizerHeap = true;
#else
constexpr bool kSanitizerHeap = false;
#endif
#define ALEXNET_SKIP_UNDER_SANITIZER()                                                  \
  if (kSanitizerHeap) {                                                                 \
    GTEST_SKIP() << "built with a sanitizer that owns malloc: allocations not counted"; \
  }

extern "C" {
// The bounds of this executable's code, from the linker.
extern const char __executable_start;
extern const char etext;
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {

// Blocks at or above this size are buffers (activations, scratch, workspace) by any measure.
constexpr size_t kLargeBlock = 64 * 1024;

std::atomic<bool> counting{false};
std::atomic<long> ours{0}, library_small{0}, library_large{0};

void reset() { ours = library_small = library_large = 0; }

#ifndef ALEXNET_SANITIZER_HEAP
// ALEXNET_TRACE_LARGE_ALLOCATIONS=1 prints the stack of each large library allocation counted:
// where a new CPU's kernels allocate (glibc's backtrace; its own first-use allocation is not
// counted, thanks to the guard).
thread_local bool tracing = false;
void trace_large_allocation(size_t n) {
  static const bool enabled = std::getenv("ALEXNET_TRACE_LARGE_ALLOCATIONS") != nullptr;
  if (!enabled || tracing) return;
  tracing = true;
  void* frames[24];
  const int depth = backtrace(frames, 24);
  std::fprintf(stderr, "large library allocation of %zu bytes:\n", n);
  backtrace_symbols_fd(frames, depth, 2);
  tracing = false;
}

void note(size_t n, const void* caller) {
  if (!counting.load(std::memory_order_relaxed) || tracing) return;
  const auto* c = static_cast<const char*>(caller);
  if (c >= &__executable_start && c < &etext) {
    ours.fetch_add(1);
  } else if (n >= kLargeBlock) {
    library_large.fetch_add(1);
    trace_large_allocation(n);
  } else {
    library_small.fetch_add(1);
  }
}

void* checked(void* p) {
  if (p == nullptr) throw std::bad_alloc();
  return p;
}
#endif  // ALEXNET_SANITIZER_HEAP

}  // namespace

#ifndef ALEXNET_SANITIZER_HEAP
extern "C" {
void* malloc(size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  note(n * size, __builtin_return_address(0));
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_realloc(p, n);
}
void* memalign(size_t alignment, size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  note(n, __builtin_return_address(0));
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  note(n, __builtin_return_address(0));
  void* p = __libc_memalign(alignment, n);
  if (p == nullptr) return ENOMEM;
  *out = p;
  return 0;
}
}

// operator new attributed to its own caller (libstdc++'s would call malloc from libstdc++).
void* operator new(size_t n) {
  note(n, __builtin_return_address(0));
  return checked(__libc_malloc(n));
}
void* operator new[](size_t n) {
  note(n, __builtin_return_address(0));
  return checked(__libc_malloc(n));
}
void* operator new(size_t n, std::align_val_t a) {
  note(n, __builtin_return_address(0));
  return checked(__libc_memalign(static_cast<size_t>(a), n));
}
void* operator new[](size_t n, std::align_val_t a) {
  note(n, __builtin_return_address(0));
  return checked(__libc_memalign(static_cast<size_t>(a), n));
}
void operator delete(void* p) noexcept { __libc_free(p); }
void operator delete[](void* p) noexcept { __libc_free(p); }
void operator delete(void* p, size_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t) noexcept { __libc_free(p); }
void operator delete(void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { __libc_free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { __libc_free(p); }
#endif  // ALEXNET_SANITIZER_HEAP

namespace alexnet::trainer {
namespace {

struct Case {
  std::string arch, backend;
  int64_t batch;
};

class NoAllocation : public ::testing::TestWithParam<Case> {};

TEST_P(NoAllocation, InTrainingStepsAndEvaluation) {
  ALEXNET_SKIP_UNDER_SANITIZER();
  const Case c = GetParam();
  const ModelSpec spec =
      c.arch == "alexnet-mini" ? build_model(c.arch, 10, 1, 28, 28) : build_model(c.arch, 10, 3);
  std::unique_ptr<Backend> backend = make_backend(c.backend);
  Model model(spec, *backend, c.batch);
  std::vector<float> params(static_cast<size_t>(spec.param_floats));
  std::vector<float> buffers(static_cast<size_t>(std::max<int64_t>(spec.buffer_floats, 1)));
  initialize_parameters(spec, 3, params.data(), buffers.data());
  backend->copy_to_device(model.params(), params.data(), params.size() * 4);
  std::vector<float> input(static_cast<size_t>(model.input_elements()), 0.5f);
  std::vector<int32_t> labels(static_cast<size_t>(c.batch), 1);
  auto input_memory = backend->allocate(input.size() * 4);
  auto label_memory = backend->allocate(labels.size() * 4);
  OptimizerConfig oc;
  oc.momentum = 0.9;
  oc.weight_decay = 5e-4;
  Optimizer optimizer(oc, params.size());
  const auto n = static_cast<size_t>(spec.param_floats);
  int64_t ready_calls = 0;
  auto ready = [&](int64_t, int64_t) { ++ready_calls; };

  auto train_step = [&](uint64_t step) {
    backend->copy_to_device(input_memory.get(), input.data(), input.size() * 4);
    backend->copy_to_device(label_memory.get(), labels.data(), labels.size() * 4);
    DropoutKey key;
    key.step = step;
    model.forward(static_cast<const float*>(input_memory.get()), true, key);
    model.loss(static_cast<const int32_t*>(label_memory.get()), true);
    model.backward(ready);
    optimizer.step({model.params(), n}, {model.grads(), n}, 0.01);
    backend->synchronize();
  };
  auto eval_step = [&] {
    model.forward(static_cast<const float*>(input_memory.get()), false);
    model.loss(static_cast<const int32_t*>(label_memory.get()), false);
    backend->synchronize();
  };
  // Warm-up: first-use work (thread pools, lazily made scratch memory) belongs here.
  train_step(0);
  eval_step();
  train_step(1);

  reset();
  counting = true;
  train_step(2);
  eval_step();
  train_step(3);
  counting = false;
  const std::string where =
      " inside two training steps and an evaluation forward of " + c.arch + " on " + c.backend;
  EXPECT_EQ(ours.load(), 0) << "heap allocations by our code" << where;
  EXPECT_EQ(library_large.load(), 0) << "library allocations of 64 KiB or more" << where;
  std::printf("%s: %ld small library allocations (oneDNN's per-execution bookkeeping)\n",
              c.arch.c_str(), library_small.load());
  EXPECT_GT(ready_calls, 0);
}

// The checker itself: an allocation by our code, through new or malloc, is seen as ours.
TEST(NoAllocationChecker, SeesOurAllocations) {
  ALEXNET_SKIP_UNDER_SANITIZER();
  reset();
  counting = true;
  auto v = std::make_unique<std::vector<int>>(100000);
  void* p = std::malloc(100);
  counting = false;
  std::free(p);
  EXPECT_GE(ours.load(), 3);
  EXPECT_EQ(library_large.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Models, NoAllocation,
                         ::testing::Values(Case{"alexnet-mini", "onednn", 8},
                                           Case{"alexnet-paper", "onednn", 2},
                                           Case{"alexnet-torchvision", "onednn", 2},
                                           Case{"alexnet-keras", "onednn", 2}),
                         [](const ::testing::TestParamInfo<Case>& param) {
                           std::string name = param.param.arch + "_" + param.param.backend;
                           for (char& ch : name) {
                             if (ch == '-') ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace alexnet::trainer
