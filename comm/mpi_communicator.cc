// MpiCommunicator: MPI set-up, the ring all-reduce, and the small collectives.
#include "comm/mpi_communicator.h"

#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "comm/mpi_check.h"
#include "io/numeric/precision.h"

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

MpiCommunicator::MpiCommunicator(MPI_Comm comm) {
  ALEXNET_MPI_CHECK(MPI_Comm_dup(comm, &comm_), "duplicating the communicator");
  ALEXNET_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN), "setting MPI_ERRORS_RETURN");
  ALEXNET_MPI_CHECK(MPI_Comm_rank(comm_, &rank_), "asking the rank");
  ALEXNET_MPI_CHECK(MPI_Comm_size(comm_, &size_), "asking the size");
  // The node-local rank from MPI itself (works under mpirun, srun and any launcher).
  MPI_Comm node = MPI_COMM_NULL;
  ALEXNET_MPI_CHECK(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node),
                    "splitting the ranks by node");
  ALEXNET_MPI_CHECK(MPI_Comm_rank(node, &local_rank_), "asking the node-local rank");
  ALEXNET_MPI_CHECK(MPI_Comm_size(node, &local_size_), "asking the ranks on this node");
  MPI_Comm_free(&node);
}

MpiCommunicator::~MpiCommunicator() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

namespace {

size_t wire_bytes(WireType wire) { return wire == WireType::kFloat32 ? 4 : 2; }

// The reduce-scatter's unit of exchange: small enough to stay in L2 between its arrival and
// its sum, large enough that MPI's per-message cost does not show.
constexpr size_t kSegmentBytes = size_t{1} << 20;

// Chunk k of a ring over p ranks: [begin(k), begin(k + 1)).
size_t chunk_begin(size_t count, int p, int k) {
  return count * static_cast<size_t>(k) / static_cast<size_t>(p);
}

void encode(const float* in, size_t n, WireType wire, uint8_t* out) {
  auto* h = reinterpret_cast<uint16_t*>(out);
  if (wire == WireType::kBFloat16) {
    for (size_t i = 0; i < n; ++i) h[i] = numeric::float_to_bf16(in[i]);
  } else {
    for (size_t i = 0; i < n; ++i) h[i] = numeric::float_to_fp16(in[i]);
  }
}

// out[i] += decoded in[i] (reduce) or out[i] = decoded in[i] (gather).
template <bool kAccumulate>
void decode(const uint8_t* in, size_t n, WireType wire, float* out) {
  if (wire == WireType::kFloat32) {
    const auto* f = reinterpret_cast<const float*>(in);
    for (size_t i = 0; i < n; ++i) out[i] = kAccumulate ? out[i] + f[i] : f[i];
    return;
  }
  const auto* h = reinterpret_cast<const uint16_t*>(in);
  if (wire == WireType::kBFloat16) {
    for (size_t i = 0; i < n; ++i) {
      out[i] = kAccumulate ? out[i] + numeric::bf16_to_float(h[i]) : numeric::bf16_to_float(h[i]);
    }
  } else {
    for (size_t i = 0; i < n; ++i) {
      out[i] = kAccumulate ? out[i] + numeric::fp16_to_float(h[i]) : numeric::fp16_to_float(h[i]);
    }
  }
}

}  // namespace

void MpiCommunicator::reserve(size_t count, WireType wire) {
  const size_t largest_chunk = count / static_cast<size_t>(size_) + 1;
  const size_t bytes = largest_chunk * wire_bytes(wire);
  if (recv_stage_.size() < bytes) {
    recv_stage_.assign(bytes, 0);  // assign touches every page now, not inside a step
    send_stage_.assign(bytes, 0);
  }
}

void MpiCommunicator::all_reduce(float* data, size_t count, ReduceOp op, WireType wire) {
  if (count == 0) return;
  if (size_ == 1) return;  // the sum and the average of one rank are its own values
  ring_all_reduce(data, count, op, wire);
}

void MpiCommunicator::ring_all_reduce(float* data, size_t count, ReduceOp op, WireType wire) {
  reserve(count, wire);
  const int p = size_;
  const int right = (rank_ + 1) % p, left = (rank_ + p - 1) % p;
  const size_t wb = wire_bytes(wire);
  const bool fp32 = wire == WireType::kFloat32;
  auto chunk = [&](int k, size_t* begin, size_t* n) {
    k = ((k % p) + p) % p;
    *begin = chunk_begin(count, p, k);
    *n = chunk_begin(count, p, k + 1) - *begin;
  };
  auto exchange = [&](const void* send, size_t send_n, void* recv, size_t recv_n, int step,
                      const char* phase) {
    if (send_n * wb > INT_MAX || recv_n * wb > INT_MAX) {
      throw std::invalid_argument("all-reduce of " + std::to_string(count) +
                                  " floats: a ring chunk exceeds 2 GiB; use smaller buckets");
    }
    ALEXNET_MPI_CHECK(
        MPI_Sendrecv(send, static_cast<int>(send_n * wb), MPI_BYTE, right, step, recv,
                     static_cast<int>(recv_n * wb), MPI_BYTE, left, step, comm_, MPI_STATUS_IGNORE),
        std::string(phase) + " " + std::to_string(count) + " floats (ring step " +
            std::to_string(step + 1) + " of " + std::to_string(p - 1) + ", rank " +
            std::to_string(rank_) + " with neighbours " + std::to_string(left) + " and " +
            std::to_string(right) + ")");
  };

  // Reduce-scatter: after p - 1 steps this rank holds the full sum of chunk rank + 1.
  for (int s = 0; s < p - 1; ++s) {
    size_t sb, sn, rb, rn;
    chunk(rank_ - s, &sb, &sn);
    chunk(rank_ - s - 1, &rb, &rn);
    // In segments of kSegmentBytes: each received piece is summed while it is still in the
    // cache, rather than a whole chunk (122 MB of AlexNet's gradient on 2 ranks) being written
    // to memory and read back.
    // Every rank makes the same number of exchanges per step (from the largest chunk, some of
    // them empty), so that each send has its receive on the neighbour.
    const size_t segment = std::max<size_t>(1, kSegmentBytes / wb);
    const size_t largest = chunk_begin(count, p, 1) + 1;
    const size_t exchanges = (largest + segment - 1) / segment;
    for (size_t e = 0, done_s = 0, done_r = 0; e < exchanges; ++e) {
      const size_t ns = std::min(segment, sn - done_s), nr = std::min(segment, rn - done_r);
      const void* send = data + sb + done_s;
      if (!fp32) {
        encode(data + sb + done_s, ns, wire, send_stage_.data());
        send = send_stage_.data();
      }
      exchange(send, ns, recv_stage_.data(), nr, s, "all-reducing (reduce-scatter)");
      decode<true>(recv_stage_.data(), nr, wire, data + rb + done_r);
      done_s += ns;
      done_r += nr;
    }
  }
  // The owned chunk: averaged, and rounded through the wire type here as on every receiver.
  size_t ob, on;
  chunk(rank_ + 1, &ob, &on);
  if (op == ReduceOp::kAverage) {
    const float inv = 1.0f / static_cast<float>(p);
    for (size_t i = 0; i < on; ++i) data[ob + i] *= inv;
  }
  if (!fp32) {
    encode(data + ob, on, wire, send_stage_.data());
    decode<false>(send_stage_.data(), on, wire, data + ob);
  }
  // All-gather: pass the finished chunks around the ring.
  for (int s = 0; s < p - 1; ++s) {
    size_t sb, sn, rb, rn;
    chunk(rank_ + 1 - s, &sb, &sn);
    chunk(rank_ - s, &rb, &rn);
    if (fp32) {
      exchange(data + sb, sn, data + rb, rn, p + s, "all-reducing (all-gather)");
    } else {
      encode(data + sb, sn, wire, send_stage_.data());
      exchange(send_stage_.data(), sn, recv_stage_.data(), rn, p + s, "all-reducing (all-gather)");
      decode<false>(recv_stage_.data(), rn, wire, data + rb);
    }
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
