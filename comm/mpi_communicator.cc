// MpiCommunicator: MPI set-up, the choice of all-reduce, and the small collectives.
#include "comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "comm/hierarchical_all_reduce.h"
#include "comm/mpi_check.h"
#include "comm/ring_all_reduce.h"

namespace alexnet::comm {

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS)
    return "MPI error " + std::to_string(code);
  return std::string(text, static_cast<size_t>(length));
}

WireType parse_wire_type(const std::string& name) {
  if (name == "fp32") return WireType::kFloat32;
  if (name == "bf16") return WireType::kBFloat16;
  if (name == "fp16") return WireType::kFloat16;
  throw std::invalid_argument("gradient wire type '" + name + "': expected fp32, bf16 or fp16");
}

const char* wire_type_name(WireType type) {
  switch (type) {
    case WireType::kFloat32:
      return "fp32";
    case WireType::kBFloat16:
      return "bf16";
    case WireType::kFloat16:
      return "fp16";
  }
  return "?";
}

MpiSession::MpiSession(int* argc, char*** argv) {
  int provided = MPI_THREAD_SINGLE;
  ALEXNET_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_MULTIPLE, &provided), "starting MPI");
  if (provided < MPI_THREAD_SERIALIZED) {
    MPI_Finalize();
    throw std::runtime_error(
        "this MPI library grants only thread level " + std::to_string(provided) +
        "; the trainer needs MPI_THREAD_SERIALIZED (its all-reduce runs on its own thread)");
  }
  thread_multiple_ = provided == MPI_THREAD_MULTIPLE;
}

MpiSession::~MpiSession() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

AllReduceAlgorithm parse_all_reduce_algorithm(const std::string& name) {
  if (name == "ring") return AllReduceAlgorithm::kRing;
  if (name == "hierarchical") return AllReduceAlgorithm::kHierarchical;
  if (name == "auto") return AllReduceAlgorithm::kAuto;
  throw std::invalid_argument("all-reduce algorithm '" + name +
                              "': expected ring, hierarchical or auto");
}

const char* all_reduce_algorithm_name(AllReduceAlgorithm algorithm) {
  switch (algorithm) {
    case AllReduceAlgorithm::kRing:
      return "ring";
    case AllReduceAlgorithm::kHierarchical:
      return "hierarchical";
    case AllReduceAlgorithm::kAuto:
      return "auto";
  }
  return "?";
}

MpiCommunicator::MpiCommunicator(MPI_Comm comm) : MpiCommunicator(comm, 0) {}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, PretendNodes pretend)
    : MpiCommunicator(comm, std::max(1, pretend.ranks_per_node)) {}

MpiCommunicator::MpiCommunicator(MPI_Comm comm, int pretend_ranks_per_node) {
  ALEXNET_MPI_CHECK(MPI_Comm_dup(comm, &comm_), "duplicating the communicator");
  ALEXNET_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "setting MPI_ERRORS_RETURN");
  ALEXNET_MPI_CHECK(MPI_Comm_rank(comm_, &rank_), "asking the rank");
  ALEXNET_MPI_CHECK(MPI_Comm_size(comm_, &size_), "asking the size");
  // The node from MPI itself (works under mpirun, srun and any launcher); the communicators made
  // from comm_ inherit its MPI_ERRORS_RETURN.
  ALEXNET_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node_),
                    "splitting the ranks by node");
  if (pretend_ranks_per_node > 0) {
    MPI_Comm real_node = node_;
    ALEXNET_MPI_CHECK(MPI_Comm_split(real_node, rank_ / pretend_ranks_per_node, rank_, &node_),
                      "splitting the node into pretend nodes (a test)");
    ALEXNET_MPI_CHECK(MPI_Comm_free(&real_node), "freeing the real node's communicator");
  }
  ALEXNET_MPI_CHECK(MPI_Comm_rank(node_, &local_rank_), "asking the node-local rank");
  ALEXNET_MPI_CHECK(MPI_Comm_size(node_, &local_size_), "asking the ranks on this node");
  // The nodes, and the ranks on the largest and on the smallest (as a maximum of its negative).
  const int64_t leader = local_rank_ == 0 ? 1 : 0;
  int64_t nodes = 0;
  ALEXNET_MPI_CHECK(MPI_Allreduce(&leader, &nodes, 1, MPI_INT64_T, MPI_SUM, comm_),
                    "counting the nodes");
  const int64_t sizes[2] = {local_size_, -local_size_};
  int64_t largest_smallest[2] = {0, 0};
  ALEXNET_MPI_CHECK(MPI_Allreduce(sizes, largest_smallest, 2, MPI_INT64_T, MPI_MAX, comm_),
                    "asking the ranks on the largest and on the smallest node");
  nodes_ = static_cast<int>(nodes);
  largest_node_ = static_cast<int>(largest_smallest[0]);
  smallest_node_ = static_cast<int>(-largest_smallest[1]);
  // Local rank i of every node, in rank order: the ring of shard i between nodes.
  ALEXNET_MPI_CHECK(MPI_Comm_split(comm_, local_rank_, rank_, &across_),
                    "grouping the same local rank of every node");
  ring_ = std::make_unique<RingAllReduce>(comm_, "ring");
  set_algorithm(AllReduceAlgorithm::kAuto);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;  // too late for MPI: the process is ending
  hierarchical_.reset();  // its window first: it lives on node_
  ring_.reset();
  for (MPI_Comm* c : {&across_, &node_, &comm_}) {
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
  }
}

void MpiCommunicator::set_algorithm(AllReduceAlgorithm requested) {
  const bool even = smallest_node_ == largest_node_;
  if (requested == AllReduceAlgorithm::kHierarchical && !even) {
    throw std::invalid_argument(
        "comm.algorithm=hierarchical: the nodes have " + std::to_string(smallest_node_) + " to " +
        std::to_string(largest_node_) +
        " ranks, and it needs the same number on every node; use ring or auto (auto takes the "
        "ring)");
  }
  const bool hierarchical =
      requested == AllReduceAlgorithm::kHierarchical ||
      (requested == AllReduceAlgorithm::kAuto && even && nodes_ > 1 && local_size_ > 1);
  algorithm_ = hierarchical ? AllReduceAlgorithm::kHierarchical : AllReduceAlgorithm::kRing;
  // Kept once made, with its window, should the ring be chosen again (a benchmark switches).
  if (hierarchical && !hierarchical_) {
    hierarchical_ = std::make_unique<HierarchicalAllReduce>(node_, across_, size_);
  }
}

std::string MpiCommunicator::algorithm_description() const {
  const std::string nodes = std::to_string(nodes_) + (nodes_ == 1 ? " node" : " nodes");
  if (algorithm_ == AllReduceAlgorithm::kHierarchical) {
    return "hierarchical (" + nodes + " x " + std::to_string(local_size_) + " ranks)";
  }
  if (smallest_node_ != largest_node_) {
    return "ring (" + std::to_string(size_) + " ranks on " + nodes + " of " +
           std::to_string(smallest_node_) + " to " + std::to_string(largest_node_) +
           " ranks; hierarchical needs the same number on every node)";
  }
  return "ring (" + std::to_string(size_) + " ranks: " + nodes + " x " +
         std::to_string(local_size_) + (local_size_ == 1 ? " rank)" : " ranks)");
}

void MpiCommunicator::reserve(size_t count, WireType wire) {
  if (size_ == 1) return;  // all_reduce has nothing to do
  if (algorithm_ == AllReduceAlgorithm::kHierarchical) {
    hierarchical_->reserve(count, wire);
  } else {
    ring_->reserve(count, wire);
  }
}

void MpiCommunicator::all_reduce(float* data, size_t count, ReduceOp op, WireType wire) {
  if (count == 0) return;
  if (size_ == 1) return;  // the sum and the average of one rank are its own values
  if (algorithm_ == AllReduceAlgorithm::kHierarchical) {
    hierarchical_->run(data, count, op, wire);
  } else {
    ring_->run(data, count, op == ReduceOp::kAverage ? 1.0f / static_cast<float>(size_) : 1.0f,
               wire);
  }
}

void MpiCommunicator::all_reduce(double* data, size_t count, ReduceOp op) {
  if (count == 0) return;
  ALEXNET_MPI_CHECK(
      MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(count), MPI_DOUBLE, MPI_SUM, comm_),
      "all-reducing " + std::to_string(count) + " doubles");
  if (op == ReduceOp::kAverage) {
    for (size_t i = 0; i < count; ++i) data[i] /= size_;
  }
}

int64_t MpiCommunicator::all_reduce_max(int64_t value) {
  int64_t out = value;
  ALEXNET_MPI_CHECK(MPI_Allreduce(&value, &out, 1, MPI_INT64_T, MPI_MAX, comm_),
                    "all-reducing a flag");
  return out;
}

void MpiCommunicator::broadcast(void* data, size_t bytes, int root) {
  auto* p = static_cast<uint8_t*>(data);
  // In pieces: MPI counts are ints.
  constexpr size_t kPiece = size_t{1} << 30;
  for (size_t done = 0; done < bytes; done += kPiece) {
    const size_t n = std::min(kPiece, bytes - done);
    ALEXNET_MPI_CHECK(
        MPI_Bcast(p + done, static_cast<int>(n), MPI_BYTE, root, comm_),
        "broadcasting " + std::to_string(bytes) + " bytes from rank " + std::to_string(root));
  }
}

void MpiCommunicator::all_gather(const void* mine, void* all, size_t bytes_each) {
  if (bytes_each > INT_MAX) throw std::invalid_argument("all_gather: more than 2 GiB a rank");
  ALEXNET_MPI_CHECK(MPI_Allgather(mine, static_cast<int>(bytes_each), MPI_BYTE, all,
                                  static_cast<int>(bytes_each), MPI_BYTE, comm_),
                    "gathering " + std::to_string(bytes_each) + " bytes from every rank");
}

void MpiCommunicator::barrier() { ALEXNET_MPI_CHECK(MPI_Barrier(comm_), "waiting at a barrier"); }

void MpiCommunicator::abort(int exit_code) {
  std::fflush(stdout);
  std::fflush(stderr);
  MPI_Abort(comm_ == MPI_COMM_NULL ? MPI_COMM_WORLD : comm_, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; if it ever does, end this rank anyway
}

}  // namespace alexnet::comm
