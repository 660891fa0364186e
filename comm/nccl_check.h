// Checks an NCCL call: a failure becomes std::runtime_error naming the call, where it was, what it
// was doing, NCCL's name for the result and its last error message (io/call_error.h), e.g. "NCCL
// call ncclCommInitRankConfig(...) failed at comm/nccl_communicator.cc:90 while creating the NCCL
// communicator of rank 3 of 8: unhandled system error (run with NCCL_DEBUG=INFO for details)
// [socketStartConnect: Connect to 10.0.0.2<43125> failed : Connection refused]".
//
// ALEXNET_NCCL_CHECK accepts only ncclSuccess. ALEXNET_NCCL_CHECK_ASYNC also accepts
// ncclInProgress, the answer of a non-blocking communicator (ncclConfig_t::blocking = 0) whose
// operation goes on in the background: the caller must then poll ncclCommGetAsyncError until the
// state leaves ncclInProgress before its next NCCL call on that communicator.
#pragma once

#include <nccl.h>

#include <string>

#include "io/call_error.h"

namespace alexnet::comm {

// NCCL's name for `result` and, where the library keeps one, its last error message.
inline std::string nccl_error_text(ncclResult_t result) {
  std::string text = ncclGetErrorString(result);
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 13, 0)
  // The comm argument is unused: the message is the library's (thread's) last one.
  const char* last = ncclGetLastError(nullptr);
  if (last != nullptr && last[0] != '\0') text += std::string(" [") + last + "]";
#endif
  return text;
}

[[noreturn]] inline void throw_nccl_error(const char* call, const char* file, int line,
                                          const std::string& context, ncclResult_t result) {
  io::throw_call_error("NCCL", call, file, line, context, nccl_error_text(result));
}

}  // namespace alexnet::comm

#define ALEXNET_NCCL_CHECK(call, context)                                     \
  do {                                                                        \
    const ncclResult_t alexnet_nccl_status_ = (call);                         \
    if (alexnet_nccl_status_ != ncclSuccess) {                                \
      ::alexnet::comm::throw_nccl_error(#call, __FILE__, __LINE__, (context), \
                                        alexnet_nccl_status_);                \
    }                                                                         \
  } while (0)

#define ALEXNET_NCCL_CHECK_ASYNC(call, context)                                          \
  do {                                                                                   \
    const ncclResult_t alexnet_nccl_status_ = (call);                                    \
    if (alexnet_nccl_status_ != ncclSuccess && alexnet_nccl_status_ != ncclInProgress) { \
      ::alexnet::comm::throw_nccl_error(#call, __FILE__, __LINE__, (context),            \
                                        alexnet_nccl_status_);                           \
    }                                                                                    \
  } while (0)
