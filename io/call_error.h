// The one message for a failed library call (CUDA, cuDNN, cuBLAS, NCCL, MPI, HDF5, oneDNN):
//   "<library> call <call> failed at <file>:<line> while <context>: <the library's error>"
// e.g. "MPI call MPI_Sendrecv(...) failed at comm/mpi_communicator.cc:120 while all-reducing
// 6100000 floats (ring step 1 of 2): MPI_ERR_TRUNCATE". Each library's check macro supplies the
// call as text, where it was, what it was doing and the library's own words for the error.
#pragma once

#include <string>

namespace alexnet::io {

std::string failed_call_message(const char* library, const char* call, const char* file, int line,
                                const std::string& context, const std::string& error);

// Throws std::runtime_error(failed_call_message(...)): a failed call is an internal failure
// (exit status 1), not bad input. HDF5 on a user's file throws DataError with the same message.
[[noreturn]] void throw_call_error(const char* library, const char* call, const char* file,
                                   int line, const std::string& context, const std::string& error);

}  // namespace alexnet::io
