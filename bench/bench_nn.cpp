// `bfcn bench nn`: the non-conv NN kernels behind autograd ops (max/avg pool, batch norm in
// training mode, bilinear upsample, softmax cross-entropy, relu) on FCN-ResNet18 shapes at
// 256x256, batch 8, beside oneDNN fp32 forward_training on the same NCHW buffers (tag::nchw, no
// reorders: our layout). Reports ms for our forward and backward and oneDNN's forward; ratio =
// oneDNN fwd time / ours (>1: ours faster). Cross-entropy's peer is oneDNN softmax (which does
// less: no log, no gather, no reduction). Forward outputs are compared with oneDNN's (max diff).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <dnnl.hpp>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "core/rng.h"
#include "kernels/cpu_features.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/norm.h"
#include "kernels/pool.h"
#include "kernels/upsample.h"

namespace bfcn::bench {
namespace {

using dnnl::memory;
using Dims = memory::dims;
using nlohmann::json;

std::vector<float> random_vec(int64_t n, Rng& rng, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(lo, hi);
  return v;
}

// A oneDNN primitive with its arguments bound to plain NCHW buffers.
struct Peer {
  dnnl::engine eng{dnnl::engine::kind::cpu, 0};
  dnnl::stream s{eng};
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  void run() {
    prim.execute(s, args);
    s.wait();
  }
  memory bind(const Dims& d, float* p, memory::format_tag tag = memory::format_tag::nchw) {
    return memory({d, memory::data_type::f32, tag}, eng, p);
  }
};

struct Case {
  std::string name;
  std::function<void()> fwd, bwd;
  std::unique_ptr<Peer> peer;                    // null: no oneDNN peer (printed as nan)
  const std::vector<float>* ours_out = nullptr;  // compared with peer_out after the runs
  const std::vector<float>* peer_out = nullptr;
};

double seconds_of(const std::function<void()>& fn) {
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

// Buffers live here for the whole run (cases hold pointers into them).
struct Store {
  std::vector<std::unique_ptr<std::vector<float>>> f;
  std::vector<std::unique_ptr<std::vector<uint8_t>>> u8;
  std::vector<float>& make(int64_t n, Rng* rng = nullptr, float lo = -1.0f, float hi = 1.0f) {
    f.push_back(std::make_unique<std::vector<float>>(
        rng ? random_vec(n, *rng, lo, hi) : std::vector<float>(static_cast<size_t>(n))));
    return *f.back();
  }
};

std::vector<Case> make_cases(Store& st, Rng& rng) {
  using dnnl::algorithm;
  using dnnl::prop_kind;
  std::vector<Case> cs;
  const int64_t n = 8;

  auto pool_case = [&](std::string name, bool is_max, int64_t c, int64_t hw, int k, int s, int p) {
    PoolGeom g;
    g.planes = n * c;
    g.h = g.w = hw;
    g.kh = g.kw = k;
    g.sh = g.sw = s;
    g.ph = g.pw = p;
    g.out_h = g.out_w = pooling_output_size(hw, k, s, p, false);
    auto& x = st.make(n * c * hw * hw, &rng);
    auto& y = st.make(g.planes * g.out_h * g.out_w);
    auto& y2 = st.make(static_cast<int64_t>(y.size()));
    auto& dy = st.make(static_cast<int64_t>(y.size()), &rng);
    auto& dx = st.make(static_cast<int64_t>(x.size()));
    auto idx = std::make_shared<std::vector<int32_t>>(y.size());
    Case cs1;
    cs1.name = std::move(name);
    if (is_max) {
      cs1.fwd = [&x, &y, idx, g] { max_pool2d_forward(x.data(), y.data(), idx->data(), g); };
      cs1.bwd = [&dy, &dx, idx, g] { max_pool2d_backward(dy.data(), idx->data(), dx.data(), g); };
    } else {
      cs1.fwd = [&x, &y, g] { avg_pool2d_forward(x.data(), y.data(), g); };
      cs1.bwd = [&dy, &dx, g] { avg_pool2d_backward(dy.data(), dx.data(), g); };
    }
    auto peer = std::make_unique<Peer>();
    const Dims src{n, c, hw, hw}, dst{n, c, g.out_h, g.out_w};
    const memory::desc smd(src, memory::data_type::f32, memory::format_tag::nchw);
    const memory::desc dmd(dst, memory::data_type::f32, memory::format_tag::nchw);
    dnnl::pooling_forward::desc d(
        prop_kind::forward_training,
        is_max ? algorithm::pooling_max : algorithm::pooling_avg_include_padding, smd, dmd, {s, s},
        {k, k}, {p, p}, {p, p});
    dnnl::pooling_forward::primitive_desc pd(d, peer->eng);
    peer->prim = dnnl::pooling_forward(pd);
    peer->args[DNNL_ARG_SRC] = peer->bind(src, x.data());
    peer->args[DNNL_ARG_DST] = peer->bind(dst, y2.data());
    if (is_max) peer->args[DNNL_ARG_WORKSPACE] = memory(pd.workspace_desc(), peer->eng);
    cs1.peer = std::move(peer);
    cs1.ours_out = &y;
    cs1.peer_out = &y2;
    cs.push_back(std::move(cs1));
  };
  pool_case("maxpool 3x3/2 64@128", true, 64, 128, 3, 2, 1);
  pool_case("avgpool 2x2/2 64@64", false, 64, 64, 2, 2, 0);

  auto bn_case = [&](std::string name, int64_t c, int64_t hw) {
    const int64_t hw2 = hw * hw;
    auto& x = st.make(n * c * hw2, &rng);
    auto& y = st.make(static_cast<int64_t>(x.size()));
    auto& y2 = st.make(static_cast<int64_t>(x.size()));
    auto& dy = st.make(static_cast<int64_t>(x.size()), &rng);
    auto& dx = st.make(static_cast<int64_t>(x.size()));
    auto& gamma = st.make(c, &rng, 0.5f, 1.5f);
    auto& beta = st.make(c, &rng);
    auto& mean_f = st.make(c);
    auto& invstd = st.make(c);
    auto& scale = st.make(c);
    auto& shift = st.make(c);
    auto sums = std::make_shared<std::vector<double>>(4 * c);
    Case k;
    k.name = std::move(name);
    // Forward as batch_norm2d does it: stats, fold into scale/shift, apply.
    k.fwd = [&, sums, c, hw2] {
      double* mu = sums->data();
      double* var = mu + c;
      bn_channel_stats(x.data(), n, c, hw2, mu, var);
      for (int64_t ch = 0; ch < c; ++ch) {
        mean_f[ch] = static_cast<float>(mu[ch]);
        invstd[ch] = static_cast<float>(1.0 / std::sqrt(var[ch] + 1e-5));
        scale[ch] = gamma[ch] * invstd[ch];
        shift[ch] = beta[ch] - mean_f[ch] * scale[ch];
      }
      bn_apply(x.data(), scale.data(), shift.data(), y.data(), n, c, hw2);
    };
    k.bwd = [&, sums, c, hw2] {
      double* sdy = sums->data() + 2 * c;
      double* sdyx = sdy + c;
      bn_grad_sums(dy.data(), x.data(), mean_f.data(), invstd.data(), n, c, hw2, sdy, sdyx);
      bn_backward_input_train(dy.data(), x.data(), mean_f.data(), invstd.data(), gamma.data(), sdy,
                              sdyx, n, c, hw2, dx.data());
    };
    auto peer = std::make_unique<Peer>();
    const Dims src{n, c, hw, hw};
    const memory::desc md(src, memory::data_type::f32, memory::format_tag::nchw);
    dnnl::batch_normalization_forward::desc d(
        prop_kind::forward_training, md, 1e-5f,
        dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift);
    dnnl::batch_normalization_forward::primitive_desc pd(d, peer->eng);
    peer->prim = dnnl::batch_normalization_forward(pd);
    peer->args[DNNL_ARG_SRC] = peer->bind(src, x.data());
    peer->args[DNNL_ARG_DST] = peer->bind(src, y2.data());
    peer->args[DNNL_ARG_SCALE] = peer->bind({c}, gamma.data(), memory::format_tag::x);
    peer->args[DNNL_ARG_SHIFT] = peer->bind({c}, beta.data(), memory::format_tag::x);
    peer->args[DNNL_ARG_MEAN] = memory(pd.mean_desc(), peer->eng);
    peer->args[DNNL_ARG_VARIANCE] = memory(pd.variance_desc(), peer->eng);
    if (pd.workspace_desc().get_size() > 0)
      peer->args[DNNL_ARG_WORKSPACE] = memory(pd.workspace_desc(), peer->eng);
    k.peer = std::move(peer);
    k.ours_out = &y;
    k.peer_out = &y2;
    cs.push_back(std::move(k));
  };
  bn_case("bn train 64@128", 64, 128);
  bn_case("bn train 256@16", 256, 16);

  auto up_case = [&](std::string name, int64_t c, int64_t hin, int64_t hout) {
    auto& x = st.make(n * c * hin * hin, &rng);
    auto& y = st.make(n * c * hout * hout);
    auto& y2 = st.make(static_cast<int64_t>(y.size()));
    auto& dy = st.make(static_cast<int64_t>(y.size()), &rng);
    auto& dx = st.make(static_cast<int64_t>(x.size()));
    Case k;
    k.name = std::move(name);
    k.fwd = [&, c, hin, hout] {
      upsample_bilinear_forward(x.data(), y.data(), n * c, hin, hin, hout, hout, false);
    };
    k.bwd = [&, c, hin, hout] {
      upsample_bilinear_backward(dy.data(), dx.data(), n * c, hin, hin, hout, hout, false);
    };
    // No peer: oneDNN 2.6's resampling_linear crashes (SIGSEGV in JIT code) on these NCHW shapes.
    (void)y2;
    cs.push_back(std::move(k));
  };
  up_case("upsample 21@8 -> 256", 21, 8, 256);
  up_case("upsample 21@16 -> 32", 21, 16, 32);

  {  // softmax cross-entropy, 21 classes at 256x256
    const int64_t c = 21, hw = 256 * 256;
    auto& x = st.make(n * c * hw, &rng, -3.0f, 3.0f);
    auto& lse = st.make(n * hw);
    auto& dx = st.make(static_cast<int64_t>(x.size()));
    auto& y2 = st.make(static_cast<int64_t>(x.size()));
    st.u8.push_back(std::make_unique<std::vector<uint8_t>>(static_cast<size_t>(n * hw)));
    auto& lab = *st.u8.back();
    for (uint8_t& v : lab) v = rng.uniform() < 0.1f ? 255 : static_cast<uint8_t>(rng.randint(0, c));
    Case k;
    k.name = "xent 21@256 (peer: softmax)";
    k.fwd = [&, c, hw] {
      softmax_xent_forward(x.data(), lab.data(), nullptr, n, c, hw, 255, lse.data());
    };
    k.bwd = [&, c, hw] {
      softmax_xent_backward(x.data(), lab.data(), nullptr, lse.data(), n, c, hw, 255, 1e-6f,
                            dx.data());
    };
    auto peer = std::make_unique<Peer>();
    const Dims src{n, c, 256, 256};
    const memory::desc md(src, memory::data_type::f32, memory::format_tag::nchw);
    dnnl::softmax_forward::desc d(prop_kind::forward_training, md, 1);
    dnnl::softmax_forward::primitive_desc pd(d, peer->eng);
    peer->prim = dnnl::softmax_forward(pd);
    peer->args[DNNL_ARG_SRC] = peer->bind(src, x.data());
    peer->args[DNNL_ARG_DST] = peer->bind(src, y2.data());
    k.peer = std::move(peer);
    cs.push_back(std::move(k));
  }
  {  // relu on the stem activation
    const int64_t numel = n * 64 * 128 * 128;
    auto& x = st.make(numel, &rng);
    auto& y = st.make(numel);
    auto& y2 = st.make(numel);
    auto& dy = st.make(numel, &rng);
    auto& dx = st.make(numel);
    Case k;
    k.name = "relu 64@128";
    k.fwd = [&, numel] { relu_f32(x.data(), y.data(), numel); };
    k.bwd = [&, numel] { relu_backward_f32(dy.data(), y.data(), dx.data(), numel); };
    auto peer = std::make_unique<Peer>();
    const Dims src{n, 64, 128, 128};
    const memory::desc md(src, memory::data_type::f32, memory::format_tag::nchw);
    dnnl::eltwise_forward::desc d(prop_kind::forward_training, algorithm::eltwise_relu, md, 0.0f);
    dnnl::eltwise_forward::primitive_desc pd(d, peer->eng);
    peer->prim = dnnl::eltwise_forward(pd);
    peer->args[DNNL_ARG_SRC] = peer->bind(src, x.data());
    peer->args[DNNL_ARG_DST] = peer->bind(src, y2.data());
    k.peer = std::move(peer);
    k.ours_out = &y;
    k.peer_out = &y2;
    cs.push_back(std::move(k));
  }
  return cs;
}

int run(const cli::Args& a) {
  std::vector<int> thread_counts{1, 2};
  if (a.has("threads")) thread_counts = {a.get_int("threads")};
  const std::string json_path = a.get("json");
  const int reps = a.get_int("reps");
  Store store;
  Rng rng(1);
  std::vector<Case> cases = make_cases(store, rng);
  std::printf(
      "NN kernels f32, batch 8, best of %d (wall clock); isa %s; ms (ratio = oneDNN fwd / "
      "ours)\n",
      reps, isa_name(active_isa()));
  std::printf("%-28s %3s | %8s %8s | %8s | %6s %6s | %8s\n", "op", "thr", "fwd", "bwd", "oneDNN",
              "fwd x", "bwd x", "max diff");
  nlohmann::json out;
  out["threads"] = thread_counts;
  out["reps"] = reps;
  out["isa"] = isa_name(active_isa());
  out["ops"] = nlohmann::json::array();
  for (Case& c : cases) {
    for (int t : thread_counts) {
      omp_set_num_threads(t);
      const std::function<void()> peer_run = [&c] {
        if (c.peer) c.peer->run();
      };
      const std::function<void()> runs[3] = {peer_run, c.fwd, c.bwd};
      double best[3] = {1e30, 1e30, 1e30};
      for (const auto& fn : runs) fn();
      for (int rep = 0; rep < reps; ++rep)
        for (int i = 0; i < 3; ++i) best[i] = std::min(best[i], seconds_of(runs[i]));
      const double diff = c.ours_out ? max_rel_diff(*c.ours_out, *c.peer_out) : 0.0;
      if (!c.peer) best[0] = std::nan("");
      std::printf("%-28s %3d | %8.3f %8.3f | %8.3f | %6.2f %6.2f | %8.1e\n", c.name.c_str(), t,
                  best[1] * 1e3, best[2] * 1e3, best[0] * 1e3, best[0] / best[1], best[0] / best[2],
                  diff);
      std::fflush(stdout);
      out["ops"].push_back(
          {{"name", c.name},
           {"threads", t},
           {"fwd_ms", best[1] * 1e3},
           {"bwd_ms", best[2] * 1e3},
           {"peer_onednn_fwd_ms", c.peer ? nlohmann::json(best[0] * 1e3) : nlohmann::json()},
           {"fwd_ratio", c.peer ? nlohmann::json(best[0] / best[1]) : nlohmann::json()},
           {"bwd_ratio", c.peer ? nlohmann::json(best[0] / best[2]) : nlohmann::json()},
           {"max_rel_diff_vs_onednn", diff}});
    }
  }
  if (!json_path.empty()) write_json("nn", json_path, out);
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    cli::Command("nn", "pool/BN/upsample/xent/relu kernels vs oneDNN (FCN-ResNet18, 256x256)")
        .describe("pool / batch-norm / upsample / cross-entropy / relu kernels (fwd and bwd ms) on "
                  "FCN-ResNet18 shapes at 256x256, batch 8, beside oneDNN fp32 forward_training. "
                  "Wall clock, best of --reps after one warm-up.")
        .with_flags(
            {cli::integer("threads", "N", "OpenMP threads (default: 1 and 2)").at_least(1),
             cli::integer("reps", "R", "timed repetitions (best of)").at_least(1).defaults("5"),
             cli::text("json", "FILE", "write the results as JSON")})
        .example("bfcn bench nn --threads 2 --reps 3 --json nn.json")
        .runs(run));

}  // namespace bfcn::bench
