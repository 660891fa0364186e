// Reader benchmark: the loader's read throughput over a generated dataset of 227x227x3 samples,
// next to a plain sequential read() of the same files in the same run, cold (pages dropped with
// posix_fadvise) and warm (page cache); then the loader with augmentation, per worker count.
#include <fcntl.h>
#include <unistd.h>

#include <boost/program_options.hpp>

#include <algorithm>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "io/cli.h"
#include "io/dataset.h"
#include "io/error.h"
#include "io/loader.h"
#include "io/random.h"
#include "io/shard_writer.h"

namespace po = boost::program_options;
using namespace alexnet::io;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// Evicts the files' pages from the page cache, so the next read comes from the disk.
void drop_cache(const std::vector<std::string>& files) {
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// The peer: read() of every file front to back in 8 MiB pieces.
double plain_read_bytes_per_second(const std::vector<std::string>& files) {
  std::vector<char> buffer(size_t{8} << 20);
  size_t total = 0;
  auto start = Clock::now();
  for (const auto& f : files) {
    int fd = ::open(f.c_str(), O_RDONLY);
    if (fd < 0) throw DataError("'" + f + "': cannot open");
    for (;;) {
      ssize_t got = ::read(fd, buffer.data(), buffer.size());
      if (got <= 0) break;
      total += static_cast<size_t>(got);
    }
    ::close(fd);
  }
  return static_cast<double>(total) / seconds_since(start);
}

double run_loader(const Dataset& ds, const LoaderConfig& config) {
  Loader loader(ds, config);
  int64_t samples = 0;
  auto start = Clock::now();
  while (const Batch* b = loader.next()) samples += b->size;
  double elapsed = seconds_since(start);
  return static_cast<double>(samples) / elapsed;
}

std::vector<std::string> generate(const std::string& prefix, int64_t n, int64_t side) {
  ShardWriterConfig c;
  c.prefix = prefix;
  c.height = c.width = side;
  c.channels = 3;
  c.num_classes = 1000;
  c.source = "bench-reader random pixels";
  ShardWriter writer(c);
  std::vector<uint8_t> image(static_cast<size_t>(side * side * 3));
  CounterRng rng(1, RngPurpose::kImport, 0);
  for (int64_t i = 0; i < n; ++i) {
    // Random bytes (incompressible, like decoded photos are to a byte-oriented reader).
    for (size_t k = 0; k + 4 <= image.size(); k += 4) {
      uint32_t r = rng.next_u32();
      std::memcpy(image.data() + k, &r, 4);
    }
    writer.add(image.data(), static_cast<int32_t>(i % 1000));
  }
  return writer.finish();
}

}  // namespace

int run(int argc, char** argv) {
  std::string dir;
  double gigabytes = 2.0;
  int64_t side = 227, crop = 224, batch = 128;
  bool keep = false;
  double block_mb = 1.0;
  int64_t window_blocks = 8;
  po::options_description desc("bench-reader options");
  // clang-format off
  desc.add_options()
    ("dir", po::value(&dir)->default_value("build/bench-data"), "folder for the generated dataset")
    ("gb", po::value(&gigabytes)->default_value(2.0), "dataset size in GB (1e9 bytes)")
    ("side", po::value(&side)->default_value(227), "stored image side")
    ("crop", po::value(&crop)->default_value(224), "augmentation crop")
    ("batch", po::value(&batch)->default_value(128), "batch size")
    ("block-mb", po::value(&block_mb)->default_value(1.0), "loader read size (MiB)")
    ("window-blocks", po::value(&window_blocks)->default_value(8), "loader shuffle window (blocks)")
    ("keep", po::bool_switch(&keep), "keep the generated dataset for the next run")
    ("help,h", "this help");
  // clang-format on
  {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc;
      return 0;
    }
    po::notify(vm);
    std::filesystem::create_directories(dir);
    const int64_t sample_bytes = side * side * 3;
    const auto n = static_cast<int64_t>(gigabytes * 1e9 / static_cast<double>(sample_bytes)) + 1;
    std::vector<std::string> files;
    try {
      Dataset existing = Dataset::open({dir + "/bench-*.h5"});
      if (existing.size() == n && existing.meta().height == side) {
        for (const auto& s : existing.shards()) files.push_back(s.path);
      }
    } catch (const DataError&) {
    }
    if (files.empty()) {
      std::fprintf(stderr, "generating %lld samples of %lldx%lldx3 ...\n",
                   static_cast<long long>(n), static_cast<long long>(side),
                   static_cast<long long>(side));
      auto t = Clock::now();
      files = generate(dir + "/bench", n, side);
      std::fprintf(stderr, "generated in %.1f s\n", seconds_since(t));
    }
    Dataset ds = Dataset::open(files);
    const double mb = 1e6;
    const double bytes = static_cast<double>(n * sample_bytes);
    const unsigned cores = std::thread::hardware_concurrency();
    std::printf(
        "reader benchmark: %lld samples of %lldx%lldx3 uint8, %.2f GB in %zu shard(s), "
        "batch %lld, %u cores\n\n",
        static_cast<long long>(n), static_cast<long long>(side), static_cast<long long>(side),
        bytes / 1e9, files.size(), static_cast<long long>(batch), cores);
    std::printf("| %-52s | %-5s | %10s | %9s | %-9s |\n", "pipeline", "cache", "samples/s", "MB/s",
                "vs plain");
    std::printf("|%s|%s|%s|%s|%s|\n", std::string(54, '-').c_str(), std::string(7, '-').c_str(),
                std::string(12, '-').c_str(), std::string(11, '-').c_str(),
                std::string(11, '-').c_str());
    auto row = [&](const char* what, const char* cache, double samples_per_s, double plain_bps) {
      double bps = samples_per_s * static_cast<double>(sample_bytes);
      std::printf("| %-52s | %-5s | %10.0f | %9.0f | %8.2fx |\n", what, cache, samples_per_s,
                  bps / mb, bps / plain_bps);
      std::fflush(stdout);
    };

    LoaderConfig raw;
    raw.batch_size = batch;
    raw.sampler = {.seed = 1, .shuffle = true, .window_blocks = window_blocks};
    raw.block_bytes = static_cast<size_t>(block_mb * (1 << 20));
    raw.augment = {.crop_height = crop, .crop_width = crop, .random_crop = true, .flip = true};
    raw.augment_on_host = false;
    raw.workers = 1;

    // Cold: the guest's page cache is dropped before each run, but a VM's host may still cache
    // the disk, which favours whatever runs second: the plain read runs both before and after
    // the loader, and the loader is compared with the faster of the two.
    drop_cache(files);
    double plain_first = plain_read_bytes_per_second(files);
    drop_cache(files);
    double loader_cold = run_loader(ds, raw);
    drop_cache(files);
    double plain_second = plain_read_bytes_per_second(files);
    double plain_cold = std::max(plain_first, plain_second);
    row("plain sequential read(), before the loader", "cold",
        plain_first / static_cast<double>(sample_bytes), plain_cold);
    row("plain sequential read(), after the loader", "cold",
        plain_second / static_cast<double>(sample_bytes), plain_cold);
    row("loader: shuffled blocks, raw uint8 batches", "cold", loader_cold, plain_cold);
    // Warm: both from the page cache, alternated three times (this VM's memory bandwidth
    // varies from run to run); medians.
    std::vector<double> plain_runs, loader_runs;
    for (int i = 0; i < 3; ++i) {
      plain_runs.push_back(plain_read_bytes_per_second(files));
      loader_runs.push_back(run_loader(ds, raw));
    }
    auto median = [](std::vector<double> v) {
      std::sort(v.begin(), v.end());
      return v[v.size() / 2];
    };
    double plain_warm = median(plain_runs);
    row("plain sequential read() of the files (the peer)", "warm",
        plain_warm / static_cast<double>(sample_bytes), plain_warm);
    row("loader: shuffled blocks, raw uint8 batches", "warm", median(loader_runs), plain_warm);
    const double warm_plain = plain_warm;
    LoaderConfig augmented = raw;
    augmented.augment_on_host = true;
    augmented.augment.lighting_std = 0.1f;
    augmented.augment.mean = {124, 116, 104};
    augmented.augment.std = {58, 57, 57};
    for (int workers = 1; workers <= static_cast<int>(std::max(1u, cores)); ++workers) {
      augmented.workers = workers;
      double r = run_loader(ds, augmented);
      std::string what = "loader + crop/flip/lighting/normalize, " + std::to_string(workers) +
                         " worker" + (workers > 1 ? "s" : "");
      row(what.c_str(), "warm", r, warm_plain);
    }
    std::printf(
        "\n(augmentation writes %lldx%lldx3 float32 NCHW per sample; per-core rate = "
        "1-worker row)\n",
        static_cast<long long>(crop), static_cast<long long>(crop));
    if (!keep) {
      for (const auto& f : files) std::filesystem::remove(f);
    }
  }
  return 0;
}

int main(int argc, char** argv) {
  return alexnet::io::run_cli("bench-reader", [&] { return run(argc, argv); });
}
