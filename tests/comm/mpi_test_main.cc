// main() of the multi-rank tests: MPI around GoogleTest. Run under mpirun (CTest does); every rank
// runs every test, only rank 0 prints, and mpirun's exit status is non-zero when any rank fails.
#include <gtest/gtest.h>

#include "comm/mpi_communicator.h"

int main(int argc, char** argv) {
  alexnet::comm::MpiSession mpi(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  const int failed = RUN_ALL_TESTS();
  // Every rank's verdict: a failure on rank 1 must fail the run even if rank 0 passed.
  int any = failed;
  MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && any != failed) std::fprintf(stderr, "a test failed on another rank\n");
  return any;
}
