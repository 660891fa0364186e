// Checks an MPI call: anything but MPI_SUCCESS becomes std::runtime_error naming the call, where
// it was and what it was doing, with MPI's own message (io/call_error.h), e.g. "MPI call
// MPI_Sendrecv(...) failed at comm/mpi_communicator.cc:120 while all-reducing 6100000 floats (ring
// step 1 of 2): MPI_ERR_TRUNCATE". Needs MPI_ERRORS_RETURN on the communicator (MpiCommunicator
// sets it), else MPI aborts first.
#pragma once

#include <mpi.h>

#include <string>

#include "io/call_error.h"

namespace alexnet::comm {

std::string mpi_error_text(int code);

#define ALEXNET_MPI_CHECK(call, context)                                                     \
  do {                                                                                       \
    const int alexnet_mpi_status_ = (call);                                                  \
    if (alexnet_mpi_status_ != MPI_SUCCESS) {                                                \
      ::alexnet::io::throw_call_error("MPI", #call, __FILE__, __LINE__, (context),           \
                                      ::alexnet::comm::mpi_error_text(alexnet_mpi_status_)); \
    }                                                                                        \
  } while (0)

}  // namespace alexnet::comm
