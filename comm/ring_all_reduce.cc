// RingAllReduce: reduce-scatter and all-gather around a ring of MPI_Sendrecv, in segments, in the
// wire type, with fp32 sums.
#include "comm/ring_all_reduce.h"

#include <algorithm>
#include <climits>
#include <stdexcept>
#include <utility>

#include "comm/mpi_check.h"
#include "io/numeric/precision.h"

namespace alexnet::comm {

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

RingAllReduce::RingAllReduce(MPI_Comm comm, std::string label)
    : comm_(comm), label_(std::move(label)) {
  ALEXNET_MPI_CHECK(MPI_Comm_rank(comm_, &rank_), "asking the rank in the " + label_);
  ALEXNET_MPI_CHECK(MPI_Comm_size(comm_, &size_), "asking the size of the " + label_);
}

void RingAllReduce::reserve(size_t count, WireType wire) {
  const size_t largest_chunk = count / static_cast<size_t>(size_) + 1;
  const size_t bytes = largest_chunk * wire_bytes(wire);
  if (recv_stage_.size() < bytes) {
    recv_stage_.assign(bytes, 0);  // assign touches every page now, not inside a step
    send_stage_.assign(bytes, 0);
  }
}

void RingAllReduce::run(float* data, size_t count, float scale, WireType wire) {
  if (count == 0) return;
  const int p = size_;
  if (p == 1) {
    if (scale != 1.0f) {
      for (size_t i = 0; i < count; ++i) data[i] *= scale;
    }
    return;
  }
  reserve(count, wire);
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
        std::string(phase) + " " + std::to_string(count) + " floats (" + label_ + " step " +
            std::to_string(step % p + 1) + " of " + std::to_string(p - 1) + ", rank " +
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
  // The owned chunk: scaled, and rounded through the wire type here as on every receiver.
  size_t ob, on;
  chunk(rank_ + 1, &ob, &on);
  if (scale != 1.0f) {
    for (size_t i = 0; i < on; ++i) data[ob + i] *= scale;
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

}  // namespace alexnet::comm
