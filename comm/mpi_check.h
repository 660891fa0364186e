// Checks an MPI call: anything but MPI_SUCCESS becomes std::runtime_error naming the call, where
// it was and what it was doing, with MPI's own message, e.g. "MPI call MPI_Sendrecv(...) failed
// at comm/mpi_communicator.cc:120 while all-reducing 6100000 floats (ring step 1 of 2):
// MPI_ERR_TRUNCATE". Needs MPI_ERRORS_RETURN on the communicator (MpiCommunicator sets it), else
// MPI aborts first.
#pragma once

#include <mpi.h>

#include <stdexcept>
#include <string>

namespace alexnet::comm {

std::string mpi_error_text(int code);

#define ALEXNET_MPI_CHECK(call, context)                                                       \
  do {                                                                                         \
    const int alexnet_mpi_status_ = (call);                                                    \
    if (alexnet_mpi_status_ != MPI_SUCCESS) {                                                  \
      throw std::runtime_error(std::string("MPI call ") + #call + " failed at " __FILE__ ":" + \
                               std::to_string(__LINE__) + " while " + (context) + ": " +       \
                               ::alexnet::comm::mpi_error_text(alexnet_mpi_status_));          \
    }                                                                                          \
  } while (0)

}  // namespace alexnet::comm
