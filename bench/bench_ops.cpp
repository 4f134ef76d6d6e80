// `bfcn bench ops`: conv2d forward / backward-data / backward-weight GMAC/s (kernels/conv.h) on the
// ResNet-18 shapes at 512x512, batch 1, beside oneDNN fp32 forward (format_tag::any, inference) on
// the same shape in the same run. Inputs are reordered outside the timed region; every figure is
// the best of R runs after one warm-up, the four kinds of run interleaved rep by rep. Backward
// passes are compared with oneDNN's forward (same MAC count), as issue 2 asks. Also prints the max
// difference of our forward vs oneDNN's output.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <dnnl.hpp>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "kernels/cpu_features.h"
#include "kernels/variant.h"

namespace bfcn::bench {
namespace {

struct Layer {
  const char* name;
  ConvGeom g;
};

ConvGeom make_geom(int64_t c, int64_t hw, int64_t k, int64_t ks, int64_t stride, int64_t pad) {
  ConvGeom g;
  g.c = c;
  g.h = g.w = hw;
  g.k = k;
  g.kh = g.kw = ks;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  return g;
}

std::vector<Layer> resnet18_layers() {
  return {{"stem 3->64 7x7/2 @512", make_geom(3, 512, 64, 7, 2, 3)},
          {"64->64 3x3 @128", make_geom(64, 128, 64, 3, 1, 1)},
          {"128->128 3x3 @64", make_geom(128, 64, 128, 3, 1, 1)},
          {"256->256 3x3 @32", make_geom(256, 32, 256, 3, 1, 1)},
          {"512->512 3x3 @16", make_geom(512, 16, 512, 3, 1, 1)}};
}

std::vector<float> random_vec(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

// oneDNN fp32 forward inference on g, set up once (primitive creation and reorders of the NCHW
// inputs happen here, outside any timing); run() executes one convolution.
class OnednnConv {
 public:
  OnednnConv(const ConvGeom& g, const std::vector<float>& x, const std::vector<float>& w,
             const std::vector<float>& b)
      : eng_(dnnl::engine::kind::cpu, 0), s_(eng_) {
    using namespace dnnl;
    using tag = memory::format_tag;
    using dt = memory::data_type;
    const memory::dims src{g.n, g.c, g.h, g.w}, wei{g.k, g.c, g.kh, g.kw}, bia{g.k},
        strides{g.stride_h, g.stride_w}, dil{g.dilation_h - 1, g.dilation_w - 1},
        pad{g.pad_h, g.pad_w};
    dst_dims_ = {g.n, g.k, g.out_h(), g.out_w()};
    convolution_forward::desc desc(
        prop_kind::forward_inference, algorithm::convolution_direct,
        memory::desc(src, dt::f32, tag::any), memory::desc(wei, dt::f32, tag::any),
        memory::desc(bia, dt::f32, tag::any), memory::desc(dst_dims_, dt::f32, tag::any), strides,
        dil, pad, pad);
    convolution_forward::primitive_desc pd(desc, eng_);
    memory user_src({src, dt::f32, tag::nchw}, eng_, const_cast<float*>(x.data()));
    memory user_wei({wei, dt::f32, tag::oihw}, eng_, const_cast<float*>(w.data()));
    memory user_bia({bia, dt::f32, tag::x}, eng_, const_cast<float*>(b.data()));
    src_ = memory(pd.src_desc(), eng_);
    wei_ = memory(pd.weights_desc(), eng_);
    bia_ = memory(pd.bias_desc(), eng_);
    dst_ = memory(pd.dst_desc(), eng_);
    reorder(user_src, src_).execute(s_, user_src, src_);
    reorder(user_wei, wei_).execute(s_, user_wei, wei_);
    reorder(user_bia, bia_).execute(s_, user_bia, bia_);
    s_.wait();
    conv_ = convolution_forward(pd);
  }
  void run() {
    conv_.execute(s_, {{DNNL_ARG_SRC, src_},
                       {DNNL_ARG_WEIGHTS, wei_},
                       {DNNL_ARG_BIAS, bia_},
                       {DNNL_ARG_DST, dst_}});
    s_.wait();
  }
  // The last output, reordered to NCHW.
  void output(std::vector<float>& y) {
    using dnnl::memory;
    memory user_dst({dst_dims_, memory::data_type::f32, memory::format_tag::nchw}, eng_, y.data());
    dnnl::reorder(dst_, user_dst).execute(s_, dst_, user_dst);
    s_.wait();
  }

 private:
  dnnl::engine eng_;
  dnnl::stream s_;
  dnnl::memory::dims dst_dims_;
  dnnl::memory src_, wei_, bia_, dst_;
  dnnl::convolution_forward conv_;
};

// Wall-clock seconds of fn, or with cpu_clock the calling thread's CPU seconds (robust on a
// shared, loaded machine, and exact for one thread since all work then runs on this thread).
double seconds_of(const std::function<void()>& fn, bool cpu_clock) {
  if (cpu_clock) {
    timespec a{}, b{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &a);
    fn();
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &b);
    return double(b.tv_sec - a.tv_sec) + 1e-9 * double(b.tv_nsec - a.tv_nsec);
  }
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

double max_rel_diff(const std::vector<float>& a, const std::vector<float>& b) {
  double worst = 0.0, scale = 1e-30;
  for (size_t i = 0; i < b.size(); ++i) scale = std::max(scale, std::fabs(double(b[i])));
  for (size_t i = 0; i < b.size(); ++i) worst = std::max(worst, std::fabs(double(a[i]) - b[i]));
  return worst / scale;
}

int run(const cli::Args& a) {
  std::vector<int> thread_counts{1, 2};
  if (a.has("threads")) thread_counts = {a.get_int("threads")};
  const std::string json_path = a.get("json");
  const int reps = a.get_int("reps");
  const bool cpu_clock = a.get("clock") == "cpu";

  BFCN_CHECK(!cpu_clock || (thread_counts.size() == 1 && thread_counts[0] == 1),
             "bench ops: --clock cpu measures one thread only; add --threads 1");
  std::printf(
      "conv2d f32, batch 1, best of %d (%s clock); isa %s; GMAC/s (ratio = ours / oneDNN fp32 "
      "fwd)\nkernels: %s\n",
      reps, cpu_clock ? "thread-cpu" : "wall", isa_name(active_isa()),
      dispatched_variants_string().c_str());
  std::printf("%-24s %3s %6s | %8s %8s %8s | %8s | %6s %6s %6s | %8s\n", "layer", "thr", "GMAC",
              "fwd", "bwd-data", "bwd-wgt", "oneDNN", "fwd", "bwd-d", "bwd-w", "max diff");
  nlohmann::json out;
  out["threads"] = thread_counts;
  out["reps"] = reps;
  out["clock"] = cpu_clock ? "thread_cpu" : "wall";
  out["isa"] = isa_name(active_isa());
  out["kernels"] = dispatched_variants_string();
  out["layers"] = nlohmann::json::array();
  Rng rng(1);
  for (const Layer& layer : resnet18_layers()) {
    const ConvGeom& g = layer.g;
    const auto x = random_vec(g.n * g.c * g.h * g.w, rng);
    const auto w = random_vec(g.k * g.c * g.kh * g.kw, rng);
    const auto b = random_vec(g.k, rng);
    const int64_t ny = g.n * g.k * g.out_h() * g.out_w();
    const auto dy = random_vec(ny, rng);
    std::vector<float> y(static_cast<size_t>(ny)), y_dnnl(y.size()), dx(x.size()), dw(w.size());
    const double gmac = static_cast<double>(g.macs()) * 1e-9;
    for (int t : thread_counts) {
      omp_set_num_threads(t);
      OnednnConv peer_conv(g, x, w, b);
      // The four runs are interleaved rep by rep, so a busy machine slows them alike; each keeps
      // its best time after one warm-up.
      const std::function<void()> runs[4] = {
          [&] { peer_conv.run(); },
          [&] { conv2d_forward(g, x.data(), w.data(), b.data(), y.data()); },
          [&] { conv2d_backward_input(g, dy.data(), w.data(), dx.data()); },
          [&] { conv2d_backward_weight(g, x.data(), dy.data(), dw.data()); }};
      double best[4] = {1e30, 1e30, 1e30, 1e30};
      for (const auto& fn : runs) fn();
      for (int rep = 0; rep < reps; ++rep)
        for (int i = 0; i < 4; ++i) best[i] = std::min(best[i], seconds_of(runs[i], cpu_clock));
      peer_conv.output(y_dnnl);
      const double peer = gmac / best[0], fwd = gmac / best[1], bwd_d = gmac / best[2],
                   bwd_w = gmac / best[3];
      const double diff = max_rel_diff(y, y_dnnl);
      std::printf("%-24s %3d %6.3f | %8.2f %8.2f %8.2f | %8.2f | %6.2f %6.2f %6.2f | %8.1e\n",
                  layer.name, t, gmac, fwd, bwd_d, bwd_w, peer, fwd / peer, bwd_d / peer,
                  bwd_w / peer, diff);
      std::fflush(stdout);
      out["layers"].push_back({{"name", layer.name},
                               {"threads", t},
                               {"gmac", gmac},
                               {"fwd_gmacs", fwd},
                               {"bwd_data_gmacs", bwd_d},
                               {"bwd_weight_gmacs", bwd_w},
                               {"peer_onednn_fp32_gmacs", peer},
                               {"fwd_ratio", fwd / peer},
                               {"bwd_data_ratio", bwd_d / peer},
                               {"bwd_weight_ratio", bwd_w / peer},
                               {"max_rel_diff_vs_onednn", diff}});
    }
  }
  if (!json_path.empty()) write_json("ops", json_path, out);
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    cli::Command("ops", "conv2d fwd/bwd GMAC/s vs oneDNN fp32 (ResNet-18 shapes, 512x512)")
        .describe("conv2d fwd / bwd-data / bwd-weight GMAC/s on ResNet-18 shapes at 512x512, batch "
                  "1, beside oneDNN fp32 forward. --clock cpu times the calling thread's CPU time "
                  "(for a loaded machine; needs --threads 1).")
        .usage("bfcn bench ops [--threads N] [--reps R] [--clock wall|cpu] [--json FILE]")
        .with_flags(
            {cli::integer("threads", "N", "OpenMP threads (default: 1 and 2)").at_least(1),
             cli::integer("reps", "R", "timed repetitions (best of)").at_least(1).defaults("5"),
             cli::choice("clock", {"wall", "cpu"}, "what is timed").defaults("wall"),
             cli::text("json", "FILE", "write the results as JSON")})
        .example("bfcn bench ops --threads 1 --clock cpu --reps 5")
        .runs(run));

}  // namespace bfcn::bench
