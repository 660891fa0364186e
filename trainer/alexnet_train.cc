// alexnet-train: the data-parallel training job. Every MPI rank trains a replica of the model on
// its shard of the data; gradients are averaged over the ranks every step (in buckets, while
// backward runs); rank 0 writes checkpoints, the metrics log and TensorBoard events. Runs as one
// process too (no mpirun needed).
//
// Exit status (README.md, io/cli.h): 0 done; 1 internal failure; 2 bad input or options (one
// line naming the file or option); 3 stopped by SIGTERM or
// SIGUSR1 after writing a checkpoint (requeue with --resume latest); 4 the loss became NaN or
// Inf (the last good checkpoint is kept); 5 a peer rank stopped answering (comm.timeout_s).
#include <malloc.h>

#include <iostream>
#include <memory>
#include <string>

#include "comm/communicator.h"
#include "comm/mpi_communicator.h"
#include "io/cli.h"
#include "io/dataset.h"
#include "trainer/model_spec.h"
#include "trainer/train_job.h"
#include "trainer/train_options.h"

using namespace alexnet;
using namespace alexnet::trainer;

int main(int argc, char** argv) {
  // Keep freed memory in the process (no mmap for large blocks, no trimming): fresh pages cost
  // 20-50x the bandwidth on these VMs, and MPI and the loader allocate and free large buffers.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  TrainOptions o;
  // Before MPI: the shared frame's statuses; -1 goes on to the job.
  const int early = io::run_cli("alexnet-train", [&] {
    if (!parse_train_options(argc, argv, o)) return 0;
    if (o.version) {
      std::cout << "alexnet-train " << ALEXNET_BUILD_ID << "\n";
      return 0;
    }
    if (o.print_config) {
      std::cout << config_text(o);
      return 0;
    }
    if (o.summary) {
      // With a dataset: its classes and channels; without: ImageNet's 1000 and RGB.
      ModelSpec spec = build_model(o.arch, 1000, 3);
      if (!o.train_files.empty()) spec = model_for(o, io::Dataset::open(o.train_files));
      std::cout << summary_table(spec);
      return 0;
    }
    return -1;
  });
  if (early >= 0) return early;

  std::unique_ptr<comm::MpiSession> mpi;
  std::unique_ptr<comm::MpiCommunicator> comm;
  const int started = io::run_cli("alexnet-train", [&] {
    mpi = std::make_unique<comm::MpiSession>(&argc, &argv);
    comm = std::make_unique<comm::MpiCommunicator>();
    return 0;
  });
  if (started != 0) return started;
  const int rank = comm->rank(), world = comm->size();
  const std::string who =
      world > 1 ? "alexnet-train: rank " + std::to_string(rank) : "alexnet-train";
  // The same frame, with the peers aborted: a rank that fails alone would leave them waiting.
  const int status = io::run_cli(
      who.c_str(),
      [&] {
        try {
          return TrainJob(o, *comm).run();
        } catch (const CollectiveError& e) {  // every rank has it: rank 0 says it, none aborts
          if (rank == 0) std::cerr << "alexnet-train: error: " << e.what() << "\n";
          return e.status;
        } catch (const comm::PeerLost& e) {  // NCCL: a peer failed or stopped answering
          std::cerr << who << ": error: " << e.what() << "\n";
          if (world > 1) comm->abort(io::kExitPeerLost);
          return static_cast<int>(io::kExitPeerLost);
        }
      },
      [&](int failure) {
        if (world > 1) comm->abort(failure);
      });
  comm.reset();
  mpi.reset();
  return status;
}
