// The CPU backend's replacements for oneDNN primitives, timed against the primitives they
// replace in the same run (trainer/cpu/onednn_lrn.cc, onednn_linear.cc): LRN (our loops against
// oneDNN's lrn with its workspace, on the paper's two LRN shapes) and the fully connected
// backward (brgemm matmuls against inner product backward, on AlexNet's FC shapes), in ms per
// call, best of --repeats after one warm-up call. The replacements exist for correctness (a
// crash; allocations inside every call), and this shows what they cost.
#include <boost/program_options.hpp>

#include <dnnl.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <iostream>
#include <random>
#include <vector>

#include "io/cli.h"
#include "trainer/backend.h"

namespace po = boost::program_options;
using namespace alexnet::trainer;
using dnnl::memory;

namespace {

double best_ms(int repeats, const std::function<void()>& call) {
  call();
  double best = 1e300;
  for (int i = 0; i < repeats; ++i) {
    const auto start = std::chrono::steady_clock::now();
    call();
    best = std::min(
        best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
                  .count());
  }
  return best;
}

std::vector<float> random_floats(size_t n, float scale, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-scale, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// The ISA oneDNN dispatches on this CPU (ONEDNN_MAX_CPU_ISA caps it).
const char* isa_name(dnnl_cpu_isa_t isa) {
  switch (isa) {
    case dnnl_cpu_isa_avx2:
      return "avx2";
    case dnnl_cpu_isa_avx2_vnni:
      return "avx2_vnni";
    case dnnl_cpu_isa_avx512_core:
      return "avx512_core";
    case dnnl_cpu_isa_avx512_core_vnni:
      return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core_bf16:
      return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_amx:
      return "avx512_core_amx";
    default:
      return "other";
  }
}

}  // namespace

int run(int argc, char** argv) {
  int repeats = 5, batch = 32;
  po::options_description desc(
      "bench-replaced-primitives: our LRN and FC backward against oneDNN's");
  desc.add_options()("help", "print this help")("repeats", po::value(&repeats)->default_value(5),
                                                "timed calls per measure (best is kept)")(
      "batch", po::value(&batch)->default_value(32), "batch size");
  po::variables_map vm;
  po::store(po::parse_command_line(argc, argv, desc), vm);
  po::notify(vm);
  if (vm.count("help")) {
    std::cout << desc;
    return 0;
  }
  dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  dnnl::stream stream(eng);
  const auto f32 = memory::data_type::f32;
  auto backend = make_backend("onednn");
  std::mt19937 rng(1);
  std::printf("oneDNN dispatches %s; batch %d, best of %d calls\n\n",
              isa_name(dnnl_get_effective_cpu_isa()), batch, repeats);

  std::printf("| LRN (size 5), N x H x W x C | oneDNN fwd | oneDNN bwd | ours fwd | ours bwd |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const auto& [h, c] : {std::pair<int64_t, int64_t>{55, 96}, {27, 256}}) {
    const size_t n = static_cast<size_t>(batch) * h * h * c;
    auto x = random_floats(n, 10, rng), dy = random_floats(n, 1, rng);
    std::vector<float> y(n), dx(n);
    const memory::desc md({batch, c, h, h}, f32, memory::format_tag::nhwc);
    const auto alg = dnnl::algorithm::lrn_across_channels;
    // oneDNN divides alpha by the size: 1e-4 * 5 for the paper's alpha.
    const dnnl::lrn_forward::primitive_desc fwd_pd(
        {dnnl::prop_kind::forward_training, alg, md, 5, 5e-4f, 0.75f, 2.0f}, eng);
    const dnnl::lrn_backward::primitive_desc bwd_pd({alg, md, md, 5, 5e-4f, 0.75f, 2.0f}, eng,
                                                    fwd_pd);
    memory xm(md, eng, x.data()), ym(md, eng, y.data()), dym(md, eng, dy.data()),
        dxm(md, eng, dx.data()), ws(fwd_pd.workspace_desc(), eng);
    dnnl::lrn_forward fwd(fwd_pd);
    dnnl::lrn_backward bwd(bwd_pd);
    const double dnnl_fwd = best_ms(repeats, [&] {
      fwd.execute(stream, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DST, ym}, {DNNL_ARG_WORKSPACE, ws}});
      stream.wait();
    });
    const double dnnl_bwd = best_ms(repeats, [&] {
      bwd.execute(stream, {{DNNL_ARG_SRC, xm},
                           {DNNL_ARG_DIFF_DST, dym},
                           {DNNL_ARG_DIFF_SRC, dxm},
                           {DNNL_ARG_WORKSPACE, ws}});
      stream.wait();
    });
    LrnShape s;
    s.batch = batch;
    s.channels = c;
    s.height = s.width = h;
    auto ours = backend->make_lrn(s);
    const double ours_fwd = best_ms(repeats, [&] { ours->forward(x.data(), y.data(), true); });
    const double ours_bwd =
        best_ms(repeats, [&] { ours->backward(x.data(), dy.data(), dx.data()); });
    std::printf("| %d x %lld x %lld x %lld | %.2f | %.2f | %.2f | %.2f |\n", batch,
                static_cast<long long>(h), static_cast<long long>(h), static_cast<long long>(c),
                dnnl_fwd, dnnl_bwd, ours_fwd, ours_bwd);
  }

  std::printf(
      "\n| FC backward, N x in -> out | inner product data | inner product weights | "
      "matmul data (ours) | matmul weights + bias loop (ours) |\n");
  std::printf("|---|---|---|---|---|\n");
  for (const auto& [in, out] :
       {std::pair<int64_t, int64_t>{9216, 4096}, {4096, 4096}, {4096, 1000}}) {
    auto x = random_floats(static_cast<size_t>(batch) * in, 1, rng);
    auto w = random_floats(static_cast<size_t>(out) * in, 1, rng);
    auto dy = random_floats(static_cast<size_t>(batch) * out, 1, rng);
    std::vector<float> b(static_cast<size_t>(out));
    const memory::desc x_md({batch, in}, f32, memory::format_tag::nc),
        w_md({out, in}, f32, memory::format_tag::oi),
        y_md({batch, out}, f32, memory::format_tag::nc), b_md({out}, f32, memory::format_tag::x);
    using Fwd = dnnl::inner_product_forward;
    const Fwd::primitive_desc fwd_pd({dnnl::prop_kind::forward_training, x_md, w_md, b_md, y_md},
                                     eng);
    const dnnl::inner_product_backward_data::primitive_desc data_pd({x_md, w_md, y_md}, eng,
                                                                    fwd_pd);
    const dnnl::inner_product_backward_weights::primitive_desc weights_pd({x_md, w_md, b_md, y_md},
                                                                          eng, fwd_pd);
    memory xm(x_md, eng, x.data()), wm(w_md, eng, w.data()), dym(y_md, eng, dy.data()),
        bm(b_md, eng, b.data());
    dnnl::inner_product_backward_data data(data_pd);
    dnnl::inner_product_backward_weights weights(weights_pd);
    const double ip_data = best_ms(repeats, [&] {
      data.execute(stream,
                   {{DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_DIFF_SRC, xm}});
      stream.wait();
    });
    const double ip_weights = best_ms(repeats, [&] {
      weights.execute(stream, {{DNNL_ARG_SRC, xm},
                               {DNNL_ARG_DIFF_DST, dym},
                               {DNNL_ARG_DIFF_WEIGHTS, wm},
                               {DNNL_ARG_DIFF_BIAS, bm}});
      stream.wait();
    });
    auto ours = backend->make_linear(batch, in, out, true);
    const double ours_data =
        best_ms(repeats, [&] { ours->backward_data(dy.data(), w.data(), x.data()); });
    const double ours_weights =
        best_ms(repeats, [&] { ours->backward_weights(x.data(), dy.data(), w.data(), b.data()); });
    std::printf("| %d x %lld -> %lld | %.2f | %.2f | %.2f | %.2f |\n", batch,
                static_cast<long long>(in), static_cast<long long>(out), ip_data, ip_weights,
                ours_data, ours_weights);
  }
  return 0;
}

int main(int argc, char** argv) {
  return alexnet::io::run_cli("bench-replaced-primitives", [&] { return run(argc, argv); });
}
