// `bfcn bench runtime`: the bit-convolution runtime on the ResNet-18 FCN-8s trunk (random weights
// unless --model), per layer beside oneDNN fp32 and u8s8 int8 on the same shape in the same
// process, the whole network beside our own FP32 path, for W1A2 / W2A2 / W1A1 and 1 / 2 threads.
// Ceilings are per core cycle; the clock is estimated with a dependent add chain.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <dnnl.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "kernels/bitconv.h"
#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "kernels/variant.h"
#include "runtime/engine.h"
#include "runtime/synthetic.h"

namespace bfcn::bench {
namespace {

struct Flags {
  std::string model, arch = "fcn8s_r18", json, peer = "torch", stem = "fp32";
  int h = 512, w = 512, threads = 0, reps = 3, rounds = 3, wbits = 0, abits = 0;
};

Flags read_flags(const cli::Args& a) {
  Flags f;
  f.model = a.get("model");
  f.arch = a.get("arch");
  f.json = a.get("json");
  f.peer = a.get("peer");
  f.stem = a.get("stem");
  std::tie(f.h, f.w) = a.get_hw("input");
  f.threads = a.get_int("threads");
  f.reps = a.get_int("reps");
  f.rounds = a.get_int("rounds");
  f.wbits = a.get_int("wbits", 0);
  f.abits = a.get_int("abits", 0);
  return f;
}

// The issue rate of a kernel's inner step on THIS core, measured: 8 independent chains of the
// step's instructions, in step groups per nanosecond (divide by the clock for per cycle). Short
// loops, best of 15, so a shared machine's preemptions drop out.
constexpr int kRateIters = 200000;

// Core cycles per nanosecond from short chains of dependent adds (1 cycle each), best of 15.
double short_chain_ghz() {
  auto chain = [] {
    uint64_t x = 0;
    for (int i = 0; i < kRateIters; ++i)
      asm volatile(
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\t"
          "add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0"
          : "+r"(x));
    return x;
  };
  return 8.0 * kRateIters / best_seconds(chain, 15, 1) / 1e9;
}

// avx512 ocv: VPANDD + VPOPCNTD + VPADDD on zmm (512 plane-bit MACs per group).
__attribute__((target("avx512f,avx512vpopcntdq"))) double avx512_popcnt_groups_per_ns() {
  auto loop = [] {
    for (int i = 0; i < kRateIters; ++i)
      asm volatile(
          "vpandd %%zmm16, %%zmm17, %%zmm0\n\tvpandd %%zmm16, %%zmm18, %%zmm1\n\t"
          "vpandd %%zmm16, %%zmm19, %%zmm2\n\tvpandd %%zmm16, %%zmm20, %%zmm3\n\t"
          "vpandd %%zmm21, %%zmm17, %%zmm4\n\tvpandd %%zmm21, %%zmm18, %%zmm5\n\t"
          "vpandd %%zmm21, %%zmm19, %%zmm6\n\tvpandd %%zmm21, %%zmm20, %%zmm7\n\t"
          "vpopcntd %%zmm0, %%zmm0\n\tvpopcntd %%zmm1, %%zmm1\n\t"
          "vpopcntd %%zmm2, %%zmm2\n\tvpopcntd %%zmm3, %%zmm3\n\t"
          "vpopcntd %%zmm4, %%zmm4\n\tvpopcntd %%zmm5, %%zmm5\n\t"
          "vpopcntd %%zmm6, %%zmm6\n\tvpopcntd %%zmm7, %%zmm7\n\t"
          "vpaddd %%zmm0, %%zmm8, %%zmm8\n\tvpaddd %%zmm1, %%zmm9, %%zmm9\n\t"
          "vpaddd %%zmm2, %%zmm10, %%zmm10\n\tvpaddd %%zmm3, %%zmm11, %%zmm11\n\t"
          "vpaddd %%zmm4, %%zmm12, %%zmm12\n\tvpaddd %%zmm5, %%zmm13, %%zmm13\n\t"
          "vpaddd %%zmm6, %%zmm14, %%zmm14\n\tvpaddd %%zmm7, %%zmm15, %%zmm15" ::
              : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9",
                "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
  };
  return 8.0 * kRateIters / best_seconds(loop, 15, 1) / 1e9;
}

// avx2 LUT kernels (nibble-split ocv/nib): VPAND + VPSHUFB + VPADDB on ymm per 128 plane-bit MACs
// (a nibble-split word carries 32 data bits).
__attribute__((target("avx2"))) double avx2_lut_groups_per_ns() {
  auto loop = [] {
    for (int i = 0; i < kRateIters; ++i)
      asm volatile(
          "vpand %%ymm12, %%ymm13, %%ymm0\n\tvpand %%ymm12, %%ymm14, %%ymm1\n\t"
          "vpand %%ymm15, %%ymm13, %%ymm2\n\tvpand %%ymm15, %%ymm14, %%ymm3\n\t"
          "vpshufb %%ymm0, %%ymm11, %%ymm0\n\tvpshufb %%ymm1, %%ymm11, %%ymm1\n\t"
          "vpshufb %%ymm2, %%ymm11, %%ymm2\n\tvpshufb %%ymm3, %%ymm11, %%ymm3\n\t"
          "vpaddb %%ymm0, %%ymm4, %%ymm4\n\tvpaddb %%ymm1, %%ymm5, %%ymm5\n\t"
          "vpaddb %%ymm2, %%ymm6, %%ymm6\n\tvpaddb %%ymm3, %%ymm7, %%ymm7" ::
              : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7");
  };
  return 4.0 * kRateIters / best_seconds(loop, 15, 1) / 1e9;
}

// Bit-MACs per core cycle at 100% of a kernel's measured issue rate, per (Wm x Ak) plane pair
// count. See docs/runtime.md "Ceilings".
struct Ceilings {
  double avx512_per_pair = 0;  // MAC/cycle for one plane pair, VPOPCNTD kernels
  double avx2_per_pair = 0;    // nibble-LUT kernels
  double mac_per_cycle(const std::string& kernel, int m, int k) const {
    const double pairs = double(m * k);
    if (kernel.find("avx512") != std::string::npos) return avx512_per_pair / pairs;
    if (kernel.find("avx2_popcnt") != std::string::npos || kernel.find("ref") != std::string::npos)
      return 85.3 / pairs;  // scalar POPCNT: AND + POPCNT + ADD per 64 bits at 4 ALU ops/cycle
    return avx2_per_pair / pairs;
  }
};

Ceilings measure_ceilings() {
  Ceilings c;
  const double ghz = short_chain_ghz();
  if (isa_supported(Isa::avx512)) c.avx512_per_pair = 512.0 * avx512_popcnt_groups_per_ns() / ghz;
  if (isa_supported(Isa::avx2)) c.avx2_per_pair = 128.0 * avx2_lut_groups_per_ns() / ghz;
  return c;
}

struct ConvKey {
  int c, oc, h, w, k, s, p, d;
  bool operator<(const ConvKey& o) const { return std::memcmp(this, &o, sizeof(ConvKey)) < 0; }
};

double onednn_conv_ms(const ConvKey& key, bool int8, int reps) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  static engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  const int oh = (key.h + 2 * key.p - key.d * (key.k - 1) - 1) / key.s + 1;
  const int ow = (key.w + 2 * key.p - key.d * (key.k - 1) - 1) / key.s + 1;
  memory::desc src(memory::dims{1, key.c, key.h, key.w}, int8 ? dt::u8 : dt::f32, tag::any);
  memory::desc wei(memory::dims{key.oc, key.c, key.k, key.k}, int8 ? dt::s8 : dt::f32, tag::any);
  memory::desc dst(memory::dims{1, key.oc, oh, ow}, int8 ? dt::u8 : dt::f32, tag::any);
  convolution_forward::desc d(prop_kind::forward_inference, algorithm::convolution_direct, src, wei,
                              dst, memory::dims{key.s, key.s}, memory::dims{key.d - 1, key.d - 1},
                              memory::dims{key.p, key.p}, memory::dims{key.p, key.p});
  primitive_attr attr;
  if (int8) attr.set_output_scales(0, {1.0f / 256.0f});
  convolution_forward::primitive_desc pd(d, attr, eng);
  memory ms(pd.src_desc(), eng), mw(pd.weights_desc(), eng), md(pd.dst_desc(), eng);
  std::mt19937 gen(1);
  for (memory* m : {&ms, &mw}) {
    uint8_t* p = static_cast<uint8_t*>(m->get_data_handle());
    const size_t n = m->get_desc().get_size();
    if (int8)
      for (size_t i = 0; i < n; ++i) p[i] = uint8_t(gen() & 3);
    else
      for (size_t i = 0; i + 4 <= n; i += 4) {
        const float v = float(gen() % 7) * 0.1f - 0.3f;
        std::memcpy(p + i, &v, 4);
      }
  }
  convolution_forward prim(pd);
  return 1e3 *
         best_seconds(
             [&] {
               prim.execute(strm, {{DNNL_ARG_SRC, ms}, {DNNL_ARG_WEIGHTS, mw}, {DNNL_ARG_DST, md}});
               strm.wait();
             },
             reps + 2, 1);
}

// The oneDNN peer shape of each layer of the header (none for layers that are not convs), from a
// replay of the graph's spatial sizes for an h x w input.
std::vector<std::optional<ConvKey>> conv_keys(const nlohmann::json& hl, int h, int w) {
  std::map<std::string, std::pair<int, int>> hw = {{"image", {h, w}}};
  std::vector<std::optional<ConvKey>> keys;
  for (const auto& L : hl) {
    const auto in_hw = hw[L["inputs"][0].get<std::string>()];
    std::pair<int, int> o = in_hw;
    keys.emplace_back();
    if (L["type"] == "conv_f32" || L["type"] == "bitconv") {
      const int k = L["kernel"], s = L["stride"], p = L["pad"], d = L["dilation"];
      o = {(in_hw.first + 2 * p - d * (k - 1) - 1) / s + 1,
           (in_hw.second + 2 * p - d * (k - 1) - 1) / s + 1};
      keys.back() = ConvKey{L["in_c"], L["out_c"], in_hw.first, in_hw.second, k, s, p, d};
    } else if (L["type"] == "maxpool") {
      const int k = L["kernel"], s = L["stride"], p = L["pad"];
      o = {(in_hw.first + 2 * p - k) / s + 1, (in_hw.second + 2 * p - k) / s + 1};
    } else if (L["type"] == "upsample") {
      o = hw[L["size_of"].get<std::string>()];
    }
    hw[L["output"].get<std::string>()] = o;
  }
  return keys;
}

// Best-of-reps whole-network time; per-layer best-of-reps times in best_profile.
double run_net(const rt::Model& m, const std::vector<float>& img, int h, int w, int reps,
               std::vector<rt::LayerTiming>* best_profile) {
  double best = 1e30;
  std::vector<uint8_t> labels;
  m.set_profile(nullptr);
  m.run(img.data(), h, w, nullptr, &labels);  // warm-up
  for (int r = 0; r < reps; ++r) {
    std::vector<rt::LayerTiming> prof;
    m.set_profile(&prof);
    const auto t0 = std::chrono::steady_clock::now();
    m.run(img.data(), h, w, nullptr, &labels);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, ms);
    // Per layer: the best of the reps (the machine may be shared; one slow layer in the best
    // whole run should not define that layer's time).
    if (best_profile) {
      if (best_profile->size() != prof.size()) {
        *best_profile = prof;
      } else {
        for (size_t i = 0; i < prof.size(); ++i)
          (*best_profile)[i].ms = std::min((*best_profile)[i].ms, prof[i].ms);
      }
    }
  }
  m.set_profile(nullptr);
  return best;
}

// Share of packing + epilogue in one W?A? 3x3 layer (L1: 64->64 @ 128^2 by default).
nlohmann::json pack_epilogue_share(int wb, int ab, int h, int w, int c, int reps) {
  BitConvShape s;
  s.in_h = h;
  s.in_w = w;
  s.in_c = c;
  s.out_c = c;
  s.w_bits = wb;
  s.a_bits = ab;
  const int64_t pix = int64_t(h) * w;
  std::mt19937 gen(3);
  std::vector<float> x(size_t(pix) * c);
  for (float& v : x) v = float(gen() % 1000) / 1000.0f;
  std::vector<uint64_t> in(size_t(pix) * ab * bit_words(c)), out(in.size());
  std::vector<uint8_t> q(size_t(c) * 9 * c);
  for (uint8_t& v : q) v = uint8_t(gen() % (1u << wb));
  std::vector<uint64_t> wp(size_t(c) * wb * s.row_words());
  pack_weights_q(q.data(), c, 9, c, wb, wp.data());
  std::vector<float> mul(size_t(c), 0.01f), add(size_t(c), 0.5f);
  std::vector<int32_t> acc(size_t(pix) * c);
  const BgemmVariant& v = bgemm_active();
  const double t_pack =
      1e3 *
      best_seconds([&] { quantize_pack_act(x.data(), pix, c, ab, nullptr, nullptr, in.data()); },
                   reps + 2);
  const double t_core =
      1e3 * best_seconds([&] { bitconv_int32(s, in.data(), wp.data(), acc.data(), v); }, reps + 2);
  BitConvEpilogue e;
  e.mul = mul.data();
  e.add = add.data();
  e.out_packed = out.data();
  e.out_bits = ab;
  const double t_full =
      1e3 * best_seconds([&] { bitconv_forward(s, in.data(), wp.data(), e, v); }, reps + 2);
  const double epi = std::max(0.0, t_full - t_core);
  return {{"layer", "64->64 3x3 @" + std::to_string(h) + "x" + std::to_string(w)},
          {"wbits", wb},
          {"abits", ab},
          {"pack_ms", t_pack},
          {"conv_int32_ms", t_core},
          {"conv_fused_ms", t_full},
          {"epilogue_share", epi / t_full},
          {"pack_plus_epilogue_share_unfused_input", (t_pack + epi) / (t_pack + t_full)}};
}

int bench_runtime(const cli::Args& args) {
  const Flags f = read_flags(args);
  const Isa isa = active_isa();
  const BgemmVariant& variant = bgemm_active();
  const double ghz = short_chain_ghz();
  const Ceilings ceil = measure_ceilings();
  std::printf(
      "bench runtime: isa %s, default kernel %s (bit layers: bgemm_for_shape), cpu [%s], "
      "~%.2f GHz core clock, input %dx%d\nkernels: %s\n",
      isa_name(isa), variant.name, cpu_features_string().c_str(), ghz, f.h, f.w,
      dispatched_variants_string().c_str());
  std::printf(
      "ceilings measured on this core, MAC/cycle per plane pair (W1A1; W1A2 = half): "
      "zmm AND+VPOPCNTD+ADD %.1f, ymm nibble-LUT AND+VPSHUFB+ADD %.1f\n",
      ceil.avx512_per_pair, ceil.avx2_per_pair);

  std::vector<std::pair<int, int>> configs;
  if (f.wbits > 0 || f.abits > 0)
    configs.push_back({f.wbits > 0 ? f.wbits : 1, f.abits > 0 ? f.abits : 2});
  else if (f.model.empty())
    configs = {{1, 2}, {2, 2}, {1, 1}};
  else
    configs = {{0, 0}};
  std::vector<int> thread_counts;
  if (f.threads > 0)
    thread_counts = {f.threads};
  else
    thread_counts = {1, 2};

  std::vector<float> img(size_t(3) * f.h * f.w);
  std::mt19937 gen(7);
  for (float& v : img) v = float(gen() % 256) / 255.0f;

  nlohmann::json out = {{"isa", isa_name(isa)},
                        {"kernel", variant.name},
                        {"kernels", dispatched_variants_string()},
                        {"ghz_estimate", ghz},
                        {"input", {f.h, f.w}},
                        {"reps", f.reps},
                        {"rounds", f.rounds},
                        {"stem", f.stem},
                        {"arch", f.model.empty() ? f.arch : f.model},
                        {"runs", nlohmann::json::array()}};
  std::map<std::pair<ConvKey, int>, std::pair<double, double>> peer_cache;  // (shape, threads)
  // PyTorch FP32 eager inference of the same FCN-8s trunk (bench/torch_infer_ref.py), per threads.
  std::map<int, nlohmann::json> torch_cache;
  auto torch_ms = [&](int threads) -> nlohmann::json& {
    auto it = torch_cache.find(threads);
    if (it == torch_cache.end())
      it = torch_cache
               .emplace(threads,
                        run_python_peer("torch_infer_ref.py",
                                        "--arch " + f.arch + " --height " + std::to_string(f.h) +
                                            " --width " + std::to_string(f.w) + " --threads " +
                                            std::to_string(threads) + " --reps " +
                                            std::to_string(std::max(3, f.reps))))
               .first;
    return it->second;
  };

  for (const auto& [wb, ab] : configs) {
    nlohmann::json header;
    std::vector<rt::BlobData> blobs;
    std::vector<uint8_t> bytes;
    if (f.model.empty()) {
      rt::SyntheticOptions so;
      so.w_bits = wb;
      so.a_bits = ab;
      if (f.arch == "fcn8s_r34") so.blocks = {3, 4, 6, 3};
      rt::make_synthetic_fcn8s(so, header, blobs);
      bytes = rt::serialize_model(header, blobs);
    } else {
      std::ifstream in(f.model, std::ios::binary);
      BFCN_CHECK_IO(in.good(), f.model, ": cannot open");
      bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    rt::Model model =
        rt::Model::from_file(rt::parse_model(f.model.empty() ? "synthetic" : f.model, bytes));
    rt::Model fp32 = model.to_fp32();
    model.set_stem_int8(f.stem != "fp32", f.stem == "int8w8" ? 8 : 15);
    // FP32 checkpoint size: 4 bytes per conv weight and per BN parameter (4 per channel).
    int64_t fp32_bytes = 0;
    for (const auto& L : model.header()["layers"])
      if (L["type"] == "conv_f32" || L["type"] == "bitconv")
        fp32_bytes += 4 * (int64_t(L["out_c"]) * int64_t(L["in_c"]) * int64_t(L["kernel"]) *
                               int64_t(L["kernel"]) +
                           4 * int64_t(L["out_c"]));

    for (int threads : thread_counts) {
      omp_set_num_threads(threads);
      const auto& hl = model.header()["layers"];
      const std::vector<std::optional<ConvKey>> keys = conv_keys(hl, f.h, f.w);
      // Rounds of (our network, then every peer shape): the best of each over all rounds, so a
      // slow phase of a shared host that falls on one side's timing does not set the ratio. A
      // peer's figure is the best over every round of this thread count (configs share shapes).
      std::vector<rt::LayerTiming> prof;
      double total = 1e30;
      for (int round = 0; round < f.rounds; ++round) {
        total = std::min(total, run_net(model, img, f.h, f.w, f.reps, &prof));  // per layer: min
        std::set<ConvKey> timed;  // once per shape per round
        for (const auto& key : keys) {
          if (!key || !timed.insert(*key).second) continue;
          auto& peer = peer_cache[{*key, threads}];
          const double f32 = onednn_conv_ms(*key, false, f.reps);
          const double i8 = onednn_conv_ms(*key, true, f.reps);
          peer.first = peer.first == 0 ? f32 : std::min(peer.first, f32);
          peer.second = peer.second == 0 ? i8 : std::min(peer.second, i8);
        }
      }
      const double total_fp32 = run_net(fp32, img, f.h, f.w, std::max(1, f.reps - 1), nullptr);
      nlohmann::json layers = nlohmann::json::array();
      double bit_ms = 0, bit_fp32_ms = 0, bit_int8_ms = 0;
      // A --model file has no single width: name it by its file (was printed as "W0A0").
      const std::string label =
          wb > 0 ? "W" + std::to_string(wb) + "A" + std::to_string(ab) : "model " + f.model;
      printf("\n%s, %d thread(s): whole network %.2f ms, our FP32 path %.2f ms (%.2fx)\n",
             label.c_str(), threads, total, total_fp32, total_fp32 / total);
      printf("%-24s %-9s %8s %7s %8s %6s %9s %9s %6s %6s %s\n", "layer", "type", "ms", "GMAC",
             "GMAC/s", "ceil%", "dnnl_f32", "dnnl_i8", "x_f32", "x_i8", "kernel");
      for (size_t i = 0; i < hl.size() && i < prof.size(); ++i) {
        const auto& L = hl[i];
        nlohmann::json row = {{"name", prof[i].name}, {"type", prof[i].type}, {"ms", prof[i].ms}};
        if (keys[i]) {
          const auto& peer = peer_cache[{*keys[i], threads}];
          const double gmac = double(prof[i].macs) / 1e9;
          row["gmacs"] = gmac;
          row["gmac_per_s"] = gmac / (prof[i].ms / 1e3);
          row["peer_onednn_fp32_ms"] = peer.first;
          row["peer_onednn_int8_ms"] = peer.second;
          row["speedup_vs_onednn_fp32"] = peer.first / prof[i].ms;
          row["speedup_vs_onednn_int8"] = peer.second / prof[i].ms;
          double ceil_frac = 0;
          if (L["type"] == "bitconv") {
            const double ceiling =
                ceil.mac_per_cycle(prof[i].kernel, L["w_bits"], L["a_bits"]) * ghz * 1e9 * threads;
            row["kernel"] = prof[i].kernel;
            ceil_frac = double(prof[i].macs) / (prof[i].ms / 1e3) / ceiling;
            row["ceiling_fraction"] = ceil_frac;
            bit_ms += prof[i].ms;
            bit_fp32_ms += peer.first;
            bit_int8_ms += peer.second;
          }
          const std::string kname =
              prof[i].kernel.rfind("bgemm__", 0) == 0 ? prof[i].kernel.substr(7) : prof[i].kernel;
          printf("%-24s %-9s %8.2f %7.3f %8.1f %6.1f %9.2f %9.2f %6.2f %6.2f %s\n",
                 prof[i].name.c_str(), prof[i].type.c_str(), prof[i].ms, gmac,
                 gmac / (prof[i].ms / 1e3), 100 * ceil_frac, peer.first, peer.second,
                 peer.first / prof[i].ms, peer.second / prof[i].ms, kname.c_str());
        } else {
          printf("%-24s %-9s %8.2f\n", prof[i].name.c_str(), prof[i].type.c_str(), prof[i].ms);
        }
        layers.push_back(row);
      }
      // Work outside the graph's layers (input normalisation) and the rest of the network.
      double input_ms = 0, layers_ms = 0;
      for (size_t i = 0; i < prof.size(); ++i) {
        if (i >= hl.size()) {
          input_ms += prof[i].ms;
          printf("%-24s %-9s %8.2f\n", prof[i].name.c_str(), prof[i].type.c_str(), prof[i].ms);
        }
        layers_ms += prof[i].ms;
      }
      printf("non-bit-conv work: %.2f ms (%.1f%% of the per-layer sum %.2f ms)\n",
             layers_ms - bit_ms, 100 * (layers_ms - bit_ms) / layers_ms, layers_ms);
      printf("bit-conv layers: %.2f ms vs oneDNN fp32 %.2f ms (%.2fx), int8 %.2f ms (%.2fx)\n",
             bit_ms, bit_fp32_ms, bit_fp32_ms / bit_ms, bit_int8_ms, bit_int8_ms / bit_ms);
      nlohmann::json torch_peer;
      if (f.peer == "torch") {
        const nlohmann::json& t = torch_ms(threads);
        if (t.contains("ms")) {
          const double tms = t["ms"].get<double>();
          torch_peer = {{"peer_torch_fp32_ms", tms},
                        {"speedup_vs_torch_fp32", tms / total},
                        {"torch_version", t.value("torch", "")}};
          printf(
              "whole network vs PyTorch %s FP32 eager (%s, %d thread(s)): %.2f ms vs %.2f ms "
              "(%.2fx)\n",
              t.value("torch", "").c_str(), f.arch.c_str(), threads, total, tms, tms / total);
        } else {
          torch_peer = {{"peer_torch_error", t.value("error", "")}};
          printf("PyTorch peer unavailable: %s\n", t.value("error", "").c_str());
        }
      }
      nlohmann::json run = {{"wbits", wb},
                            {"abits", ab},
                            {"threads", threads},
                            {"layers", layers},
                            {"total_ms", total},
                            {"fp32_path_ms", total_fp32},
                            {"speedup_vs_fp32_path", total_fp32 / total},
                            {"bitconv_ms", bit_ms},
                            {"non_bitconv_ms", layers_ms - bit_ms},
                            {"input_ms", input_ms},
                            {"bitconv_peer_onednn_fp32_ms", bit_fp32_ms},
                            {"bitconv_peer_onednn_int8_ms", bit_int8_ms},
                            {"model_bytes", bytes.size()},
                            {"fp32_checkpoint_bytes", fp32_bytes}};
      if (!torch_peer.is_null()) run.update(torch_peer);  // --peer none leaves it null
      out["runs"].push_back(run);
    }
    printf("model file %zu bytes vs FP32 weights %lld bytes (1/%.1f)\n", bytes.size(),
           (long long)fp32_bytes, double(fp32_bytes) / double(bytes.size()));
  }
  // Thread scaling of the whole network, per config.
  nlohmann::json scaling = nlohmann::json::array();
  for (const auto& r1 : out["runs"])
    for (const auto& r2 : out["runs"])
      if (r1["wbits"] == r2["wbits"] && r1["abits"] == r2["abits"] && r1["threads"] == 1 &&
          r2["threads"] == 2) {
        const double sp = r1["total_ms"].get<double>() / r2["total_ms"].get<double>();
        scaling.push_back({{"wbits", r1["wbits"]}, {"abits", r1["abits"]}, {"speedup_1_to_2", sp}});
        printf("W%dA%d thread scaling 1->2: %.2fx\n", r1["wbits"].get<int>(),
               r1["abits"].get<int>(), sp);
      }
  out["thread_scaling"] = scaling;
  omp_set_num_threads(1);
  nlohmann::json shares = nlohmann::json::array();
  for (const auto& [wb, ab] : configs)
    if (wb > 0) {
      shares.push_back(pack_epilogue_share(wb, ab, f.h / 4, f.w / 4, 64, f.reps));
      printf("W%dA%d L1 layer: epilogue share %.1f%%, pack+epilogue (unfused input) %.1f%%\n", wb,
             ab, 100 * shares.back()["epilogue_share"].get<double>(),
             100 * shares.back()["pack_plus_epilogue_share_unfused_input"].get<double>());
    }
  out["pack_epilogue"] = shares;
  if (!out["runs"].empty()) {  // the flat keys of docs/cli.md: the first run
    out["layers"] = out["runs"][0]["layers"];
    out["total_ms"] = out["runs"][0]["total_ms"];
  }
  if (!f.json.empty()) {
    std::ofstream js(f.json);
    BFCN_CHECK_IO(js.good(), f.json, ": cannot write");
    js << out.dump(2) << "\n";
  }
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    cli::Command("runtime", "bit-conv runtime vs oneDNN fp32/int8 and our FP32 path")
        .describe("The whole bit-conv runtime (a synthetic --arch model unless --model), per "
                  "layer, beside oneDNN fp32 and u8s8 int8 on the same shape in the same process, "
                  "and our FP32 path.")
        .usage("bfcn bench runtime [--model MODEL.bfcn | --arch fcn8s_r18] [--input HxW] "
               "[--threads N] [--json FILE]")
        .with_flags(
            {cli::text("model", "FILE", ".bfcn model to time (default: a synthetic --arch model)"),
             cli::choice("arch", {"fcn8s_r18", "fcn8s_r34"}, "synthetic model")
                 .defaults("fcn8s_r18"),
             cli::size("input", "input size").at_least(32).defaults("512x512"),
             cli::integer("threads", "N", "OpenMP threads; 0 = 1 and 2").at_least(0).defaults("0"),
             cli::integer("reps", "N", "timed repetitions (best of)").at_least(1).defaults("3"),
             cli::integer("rounds", "N",
                          "interleaved rounds of our network and the oneDNN peers, each figure "
                          "the best over all rounds (slow phases of a shared host then hit both "
                          "sides alike)")
                 .at_least(1)
                 .defaults("3"),
             cli::integer("wbits", "W", "only this weight width (synthetic model)").range(1, 8),
             cli::integer("abits", "A", "only this activation width (synthetic model)").range(1, 8),
             cli::choice("peer", {"torch", "none"},
                         "also time PyTorch FP32 inference of the same network "
                         "(bench/torch_infer_ref.py)")
                 .defaults("torch"),
             cli::choice("stem", {"fp32", "int8", "int8w8"},
                         "the RGB stem in FP32 or in integers: 8-bit image, 15-bit (int8) or "
                         "8-bit (int8w8) weights (rt::Model::set_stem_int8)")
                 .defaults("fp32"),
             cli::text("json", "FILE", "write per-layer results as JSON")})
        .example("bfcn bench runtime --input 512x512 --threads 1 --wbits 1 --abits 2 --reps 3")
        .example("bfcn bench runtime --input 512x512 --threads 1 --wbits 1 --abits 2 --stem int8")
        .example("bfcn bench runtime --model w1a2.bfcn --input 128x128 --threads 2 --json r.json")
        .runs(bench_runtime));

}  // namespace bfcn::bench
