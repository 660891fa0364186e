// oneDNN op benchmark: forward, backward data and backward weights of each convolution and fully
// connected layer of torchvision's AlexNet through the oneDNN backend, in ms per call and
// GFLOP/s (2 flops per multiply-add, each of the three passes counted in full).
#include <boost/program_options.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include "io/cli.h"
#include "trainer/backend.h"

namespace po = boost::program_options;
using namespace alexnet::trainer;
using Clock = std::chrono::steady_clock;

namespace {

// Backend memory of uniform [-1, 1) values: data like training's, as zeros or denormals could
// change the speed of some kernels.
Backend::Memory random_memory(Backend& backend, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> host(n);
  for (float& v : host) v = dist(rng);
  Backend::Memory m = backend.allocate(n * sizeof(float));
  backend.copy_to_device(m.get(), host.data(), n * sizeof(float));
  return m;
}

float* f(const Backend::Memory& m) { return static_cast<float*>(m.get()); }

// The fastest of `repeats` timed calls after one warm-up call, in ms: the minimum is the least
// disturbed by other work on a shared machine.
double best_ms(Backend& backend, int repeats, const std::function<void()>& call) {
  call();
  backend.synchronize();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = Clock::now();
    call();
    backend.synchronize();
    best = std::min(best, std::chrono::duration<double, std::milli>(Clock::now() - start).count());
  }
  return best;
}

void print_row(const std::string& name, double macs, double fwd, double bwd_data,
               double bwd_weights) {
  const double total = fwd + bwd_data + bwd_weights;
  std::printf("| %-34s | %8.2f | %8.2f | %8.2f | %8.2f | %7.1f |\n", name.c_str(), fwd, bwd_data,
              bwd_weights, total, 3 * 2 * macs / (total * 1e6));
}

struct ConvLayer {
  const char* name;
  Conv2dShape shape;  // batch filled in from the options
};

}  // namespace

int run(int argc, char** argv) {
  int64_t batch = 32;
  int repeats = 5;
  po::options_description options("Options");
  options.add_options()("help", "print this help")("batch", po::value(&batch)->default_value(batch),
                                                   "batch size")(
      "repeats", po::value(&repeats)->default_value(repeats),
      "timed calls per pass (the fastest is reported)");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, options), vm);
  po::notify(vm);
  if (vm.count("help") != 0) {
    std::cout << "Times AlexNet's conv and FC layers on the oneDNN backend.\n" << options;
    return 0;
  }

  auto backend = make_onednn_backend();
  // torchvision's AlexNet on 224x224 inputs: (batch, in, out, height, width, kernel h/w,
  // stride h/w, pad h/w, groups).
  const ConvLayer convs[] = {
      {"conv1 3->64 11x11/4 pad 2, 224", {0, 3, 64, 224, 224, 11, 11, 4, 4, 2, 2, 1}},
      {"conv2 64->192 5x5 pad 2, 27", {0, 64, 192, 27, 27, 5, 5, 1, 1, 2, 2, 1}},
      {"conv3 192->384 3x3 pad 1, 13", {0, 192, 384, 13, 13, 3, 3, 1, 1, 1, 1, 1}},
      {"conv4 384->256 3x3 pad 1, 13", {0, 384, 256, 13, 13, 3, 3, 1, 1, 1, 1, 1}},
      {"conv5 256->256 3x3 pad 1, 13", {0, 256, 256, 13, 13, 3, 3, 1, 1, 1, 1, 1}},
  };
  std::printf("batch %lld, fastest of %d calls per pass\n\n", static_cast<long long>(batch),
              repeats);
  std::printf("| %-34s | %8s | %8s | %8s | %8s | %7s |\n", "layer", "fwd ms", "bwd-d ms",
              "bwd-w ms", "total ms", "GFLOP/s");
  std::printf("|%s|%s|%s|%s|%s|%s|\n", std::string(36, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(10, '-').c_str(),
              std::string(10, '-').c_str(), std::string(9, '-').c_str());
  double all_total = 0;
  for (ConvLayer layer : convs) {
    Conv2dShape& s = layer.shape;
    s.batch = batch;
    const int64_t oh = s.out_height(), ow = s.out_width();
    const size_t x_n = static_cast<size_t>(s.batch * s.in_channels * s.height * s.width);
    const size_t y_n = static_cast<size_t>(s.batch * s.out_channels * oh * ow);
    const size_t w_n =
        static_cast<size_t>(s.out_channels * (s.in_channels / s.groups) * s.kernel_h * s.kernel_w);
    auto op = backend->make_conv2d(s, true);
    auto x = random_memory(*backend, x_n, 1), w = random_memory(*backend, w_n, 2);
    auto b = random_memory(*backend, static_cast<size_t>(s.out_channels), 3);
    auto dy = random_memory(*backend, y_n, 4), y = backend->allocate(y_n * sizeof(float));
    auto dx = backend->allocate(x_n * sizeof(float)), dw = backend->allocate(w_n * sizeof(float));
    auto db = backend->allocate(static_cast<size_t>(s.out_channels) * sizeof(float));
    const double fwd = best_ms(*backend, repeats, [&] { op->forward(f(x), f(w), f(b), f(y)); });
    const double bwd_data =
        best_ms(*backend, repeats, [&] { op->backward_data(f(dy), f(w), f(dx)); });
    const double bwd_weights =
        best_ms(*backend, repeats, [&] { op->backward_weights(f(x), f(dy), f(dw), f(db)); });
    const double macs = static_cast<double>(y_n) * static_cast<double>(w_n / s.out_channels);
    print_row(layer.name, macs, fwd, bwd_data, bwd_weights);
    all_total += fwd + bwd_data + bwd_weights;
  }
  struct FcLayer {
    const char* name;
    int64_t in, out;
  };
  const FcLayer fcs[] = {{"fc6 9216->4096", 9216, 4096},
                         {"fc7 4096->4096", 4096, 4096},
                         {"fc8 4096->1000", 4096, 1000}};
  for (const FcLayer& layer : fcs) {
    auto op = backend->make_linear(batch, layer.in, layer.out, true);
    const size_t x_n = static_cast<size_t>(batch * layer.in);
    const size_t y_n = static_cast<size_t>(batch * layer.out);
    const size_t w_n = static_cast<size_t>(layer.in * layer.out);
    auto x = random_memory(*backend, x_n, 1), w = random_memory(*backend, w_n, 2);
    auto b = random_memory(*backend, static_cast<size_t>(layer.out), 3);
    auto dy = random_memory(*backend, y_n, 4), y = backend->allocate(y_n * sizeof(float));
    auto dx = backend->allocate(x_n * sizeof(float)), dw = backend->allocate(w_n * sizeof(float));
    auto db = backend->allocate(static_cast<size_t>(layer.out) * sizeof(float));
    const double fwd = best_ms(*backend, repeats, [&] { op->forward(f(x), f(w), f(b), f(y)); });
    const double bwd_data =
        best_ms(*backend, repeats, [&] { op->backward_data(f(dy), f(w), f(dx)); });
    const double bwd_weights =
        best_ms(*backend, repeats, [&] { op->backward_weights(f(x), f(dy), f(dw), f(db)); });
    print_row(layer.name, static_cast<double>(batch) * static_cast<double>(w_n), fwd, bwd_data,
              bwd_weights);
    all_total += fwd + bwd_data + bwd_weights;
  }
  std::printf("\nall layers: %.1f ms per step (forward + backward)\n", all_total);
  return 0;
}

int main(int argc, char** argv) {
  return alexnet::io::run_cli("bench-onednn-ops", [&] { return run(argc, argv); });
}
