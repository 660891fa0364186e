// All-reduce benchmark: ours (MpiCommunicator::all_reduce, fp32 and bf16 on the wire; the flat
// ring, the hierarchical all-reduce or both, --algorithm) against plain MPI_Allreduce(MPI_IN_PLACE,
// ..., MPI_SUM) on the same buffer, measured in the same process, under the same glibc allocator
// settings. Run under mpirun, e.g.
//   mpirun -np 2 build/bin/bench-allreduce --allocator default
//   mpirun --host node1:2,node2:2 -np 4 ... build/bin/bench-allreduce --algorithm ring,hierarchical
//
// Each repeat runs every method once (the order reversed on odd repeats, so that drift and
// position in the repeat affect all of them alike). Before each call the buffer is refilled
// (untimed) and the ranks meet at a barrier; a call's time is the largest over the ranks. A few
// sampled values are checked after every call, so a method that does nothing cannot look fast.
//
// Bus bandwidth follows NCCL's busbw convention (nccl-tests doc/PERFORMANCE.md): fp32 bytes *
// 2 * (P - 1) / P / time, the traffic each rank's link carries in a ring; it does not depend on
// P for an ideal ring. The bf16 row uses the same fp32 bytes: it is the gradient's effective
// bandwidth, not what crossed the wire (half of it). The hierarchical rows use the same formula
// (P ranks), so that its busbw compares with the ring's as a time does.
#include <malloc.h>
#include <mpi.h>

#include <boost/program_options.hpp>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/mpi_communicator.h"
#include "io/cli.h"

namespace po = boost::program_options;
using namespace alexnet::comm;

namespace {

struct Options {
  int64_t floats = 61100840;  // torchvision AlexNet's gradient
  int repeats = 5;
  int warmup = 1;
  std::string allocator = "tuned";
  std::vector<AllReduceAlgorithm> algorithms = {AllReduceAlgorithm::kRing};
};

struct Method {
  std::string name;
  std::string algorithm;               // the table's last column
  WireType wire = WireType::kFloat32;  // the tolerance of the check
  std::function<void(float*, size_t)> run;
  std::vector<double> seconds;
};

// Exactly representable in fp32, and so is their sum over a few ranks.
float fill_value(size_t i, int rank) {
  return static_cast<float>(i % 1024) * 0.25f + static_cast<float>(rank);
}

void fill(std::vector<float>& data, int rank) {
  for (size_t i = 0; i < data.size(); ++i) data[i] = fill_value(i, rank);
}

// The sum over ranks at a spread of indices; throws naming the method on a mismatch.
void check(const std::vector<float>& data, int ranks, const Method& m) {
  const size_t n = data.size();
  const size_t samples = std::min<size_t>(n, 4096);
  const double tolerance = m.wire == WireType::kFloat32 ? 0.0 : 1.0 / 64;  // bf16: 8 bits
  for (size_t s = 0; s < samples; ++s) {
    const size_t i = samples > 1 ? s * (n - 1) / (samples - 1) : 0;
    double expected = 0;
    for (int r = 0; r < ranks; ++r) expected += fill_value(i, r);
    const double got = data[i];
    if (std::abs(got - expected) > tolerance * std::abs(expected)) {
      std::ostringstream text;
      text << m.name << " gave " << got << " at index " << i << ", expected " << expected;
      throw std::runtime_error(text.str());
    }
  }
}

void plain_mpi_allreduce(float* data, size_t count) {
  constexpr size_t kPiece = INT_MAX;  // MPI counts are ints
  for (size_t done = 0; done < count; done += kPiece) {
    const size_t n = std::min(kPiece, count - done);
    if (MPI_Allreduce(MPI_IN_PLACE, data + done, static_cast<int>(n), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD) != MPI_SUCCESS) {
      throw std::runtime_error("MPI_Allreduce failed");
    }
  }
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t h = v.size() / 2;
  return v.size() % 2 == 1 ? v[h] : (v[h - 1] + v[h]) / 2;
}

double best(const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); }

// "ring,hierarchical" -> both, in that order; throws naming the accepted values.
std::vector<AllReduceAlgorithm> parse_algorithms(const std::string& list) {
  std::vector<AllReduceAlgorithm> out;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    try {
      out.push_back(parse_all_reduce_algorithm(name));
    } catch (const std::invalid_argument&) {
      throw std::invalid_argument("--algorithm '" + list +
                                  "': expected ring, hierarchical or auto, or a comma list");
    }
  }
  if (out.empty()) throw std::invalid_argument("--algorithm: empty");
  return out;
}

// The options, or an error message. Only small allocations (never mmap-sized), so it may run
// before the allocator is set.
std::string parse_options(int argc, char** argv, Options& o, bool& help,
                          po::options_description& options) {
  std::string algorithms = "ring";
  options.add_options()("help", "print this help")(
      "floats", po::value(&o.floats)->default_value(o.floats),
      "floats per all-reduce (default: torchvision AlexNet's gradient, 244 MB)")(
      "repeats", po::value(&o.repeats)->default_value(o.repeats), "timed calls of each method")(
      "warmup", po::value(&o.warmup)->default_value(o.warmup),
      "untimed calls of each method first")(
      "allocator", po::value(&o.allocator)->default_value(o.allocator),
      "glibc malloc: 'tuned' keeps freed memory (mallopt M_MMAP_MAX 0, M_TRIM_THRESHOLD 1 GiB), "
      "'default' leaves glibc's settings")(
      "algorithm", po::value(&algorithms)->default_value(algorithms),
      "ours as comm.algorithm: ring | hierarchical | auto, or a comma list measured side by side "
      "(ring,hierarchical)");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, options), vm);
    po::notify(vm);
    help = vm.count("help") > 0;
    o.algorithms = parse_algorithms(algorithms);
    if (o.allocator != "tuned" && o.allocator != "default") {
      throw std::invalid_argument("--allocator must be 'tuned' or 'default'");
    }
    if (o.floats < 1 || o.repeats < 1 || o.warmup < 0) {
      throw std::invalid_argument("--floats and --repeats must be positive, --warmup not negative");
    }
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

int run(int argc, char** argv) {
  Options o;
  bool help = false;
  po::options_description options("Options");
  const std::string error = parse_options(argc, argv, o, help, options);
  // Before MPI_Init and before any large allocation: MPI's own buffers follow the same settings.
  if (error.empty() && o.allocator == "tuned") {
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }

  const auto session = std::make_unique<MpiSession>(&argc, &argv);
  int rank = 0, ranks = 1;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ranks);
  if (!error.empty()) {
    // Every rank stops with the same status; rank 0 alone says why (run_cli's one line).
    if (rank == 0) throw alexnet::io::OptionError(error);
    return alexnet::io::kExitBadInput;
  }
  if (help) {
    if (rank == 0) {
      std::cout << "bench-allreduce: our all-reduce against MPI_Allreduce (under mpirun)\n"
                << options;
    }
    return 0;
  }

  try {
    MpiCommunicator comm;
    const auto n = static_cast<size_t>(o.floats);
    std::vector<float> data(n);
    fill(data, rank);  // touched before any timing

    std::vector<Method> methods;
    methods.push_back({"MPI_Allreduce (peer)", "mpi", WireType::kFloat32, plain_mpi_allreduce, {}});
    std::vector<std::string> described;
    for (AllReduceAlgorithm requested : o.algorithms) {
      try {
        comm.set_algorithm(requested);
      } catch (const std::invalid_argument& e) {  // uneven nodes: every rank alike, rank 0 says it
        if (rank == 0) std::fprintf(stderr, "bench-allreduce: error: %s\n", e.what());
        return alexnet::io::kExitBadInput;
      }
      const AllReduceAlgorithm chosen = comm.algorithm();
      comm.reserve(n, WireType::kFloat32);  // the larger staging of the two wire types
      described.push_back(std::string(all_reduce_algorithm_name(requested)) + ": " +
                          comm.algorithm_description());
      for (WireType wire : {WireType::kFloat32, WireType::kBFloat16}) {
        methods.push_back({std::string("ours, ") + wire_type_name(wire) + " wire",
                           all_reduce_algorithm_name(chosen),
                           wire,
                           [&comm, chosen, wire](float* d, size_t c) {
                             comm.set_algorithm(chosen);
                             comm.all_reduce(d, c, ReduceOp::kSum, wire);
                           },
                           {}});
      }
    }

    if (rank == 0) {
      std::printf(
          "bench-allreduce: %d rank(s), %lld floats (%.1f MB fp32), %s allocator, %d warm-up + "
          "%d timed calls of each method\n\n",
          ranks, static_cast<long long>(o.floats), 4e-6 * static_cast<double>(n),
          o.allocator.c_str(), o.warmup, o.repeats);
      for (const std::string& d : described) std::printf("all-reduce %s\n", d.c_str());
      std::printf("\n");
      if (ranks == 1) std::printf("(one rank: nothing to exchange; run under mpirun -np 2)\n\n");
      std::fflush(stdout);
    }

    for (int r = 0; r < o.warmup + o.repeats; ++r) {
      for (size_t k = 0; k < methods.size(); ++k) {
        Method& m = methods[r % 2 == 0 ? k : methods.size() - 1 - k];
        fill(data, rank);
        MPI_Barrier(MPI_COMM_WORLD);
        const double start = MPI_Wtime();
        m.run(data.data(), n);
        double seconds = MPI_Wtime() - start;
        MPI_Allreduce(MPI_IN_PLACE, &seconds, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        check(data, ranks, m);
        if (r >= o.warmup) m.seconds.push_back(seconds);
      }
    }

    if (rank == 0) {
      // NCCL's busbw: what each rank's link carries in a ring, per second.
      const double bus_bytes = 4.0 * static_cast<double>(n) * 2.0 * (ranks - 1) / ranks;
      const double peer_best = best(methods[0].seconds), peer_median = median(methods[0].seconds);
      std::printf("| %-20s | %8s | %10s | %10s | %12s | %8s | %10s | %-12s |\n", "all-reduce",
                  "best ms", "median ms", "busbw GB/s", "busbw median", "vs MPI", "vs MPI med",
                  "algorithm");
      std::printf(
          "|%s|%s|%s|%s|%s|%s|%s|%s|\n", std::string(22, '-').c_str(), std::string(10, '-').c_str(),
          std::string(12, '-').c_str(), std::string(12, '-').c_str(), std::string(14, '-').c_str(),
          std::string(10, '-').c_str(), std::string(12, '-').c_str(), std::string(14, '-').c_str());
      for (const Method& m : methods) {
        const double b = best(m.seconds), med = median(m.seconds);
        std::printf("| %-20s | %8.1f | %10.1f | %10.2f | %12.2f | %7.2fx | %9.2fx | %-12s |\n",
                    m.name.c_str(), 1e3 * b, 1e3 * med, bus_bytes / b * 1e-9,
                    bus_bytes / med * 1e-9, peer_best / b, peer_median / med, m.algorithm.c_str());
      }
      std::printf(
          "\nbusbw = fp32 bytes * 2 * (P - 1) / P / time (NCCL's bus bandwidth; the bf16 row "
          "counts fp32 bytes too); vs MPI = MPI_Allreduce's time / ours (higher is better), "
          "best against best and median against median\n");
    }
  } catch (const std::exception& e) {
    // Not left to run_cli: the peers wait in a collective, so this rank must abort them all.
    std::cerr << "bench-allreduce: rank " << rank << ": internal error: " << e.what() << "\n";
    MPI_Abort(MPI_COMM_WORLD, alexnet::io::kExitFailure);
  }
  return 0;
}

int main(int argc, char** argv) {
  return alexnet::io::run_cli("bench-allreduce", [&] { return run(argc, argv); });
}
