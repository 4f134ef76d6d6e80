// `bfcn bench bitconv`: every bit-conv kernel variant this CPU runs (bgemm_variants(), the scalar
// reference excepted: ~100x slower) on the ResNet-18 FCN-8s 3x3 shapes at a 512x512 input, in the
// same process: integer-only and fused (requantize + pack) times, GMAC/s, the epilogue share and
// the speed-up over the previous default bgemm__avx2_nib. Wall clock, best of --reps.
#include <omp.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/bench.h"
#include "core/error.h"
#include "kernels/bitconv.h"
#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"

namespace bfcn::bench {
namespace {

int bench_bitconv(const cli::Args& a) {
  const int wbits = a.get_int("wbits"), abits = a.get_int("abits"), threads = a.get_int("threads"),
            reps = a.get_int("reps");
  const std::string json_path = a.get("json");
  omp_set_num_threads(threads);
  std::printf("bench bitconv: W%dA%d, %d thread(s), isa %s, default kernel %s\n", wbits, abits,
              threads, isa_name(active_isa()), bgemm_active().name);
  struct Layer {
    const char* name;
    int c, oc, hw, stride;
  };
  const Layer layers[] = {{"layer1 64->64 @128", 64, 64, 128, 1},
                          {"layer2 128->128 @64", 128, 128, 64, 1},
                          {"layer3 256->256 @32", 256, 256, 32, 1},
                          {"layer4 512->512 @16", 512, 512, 16, 1},
                          {"layer3.0.conv1 128->256 s2", 128, 256, 64, 2}};
  nlohmann::json rows = nlohmann::json::array();
  std::mt19937 gen(5);
  for (const Layer& L : layers) {
    BitConvShape s;
    s.in_h = s.in_w = L.hw;
    s.in_c = L.c;
    s.out_c = L.oc;
    s.stride = L.stride;
    s.w_bits = wbits;
    s.a_bits = abits;
    const int64_t pix = int64_t(L.hw) * L.hw, opix = int64_t(s.out_h()) * s.out_w();
    std::vector<uint8_t> q(size_t(pix) * L.c), p(size_t(L.oc) * 9 * L.c);
    for (uint8_t& x : q) x = uint8_t(gen() % (1u << abits));
    for (uint8_t& x : p) x = uint8_t(gen() % (1u << wbits));
    std::vector<uint64_t> in(size_t(pix) * abits * bit_words(L.c));
    std::vector<uint64_t> w(size_t(L.oc) * wbits * s.row_words());
    std::vector<uint64_t> out(size_t(opix) * abits * bit_words(L.oc));
    pack_act_q(q.data(), pix, L.c, abits, in.data());
    pack_weights_q(p.data(), L.oc, 9, L.c, wbits, w.data());
    std::vector<int32_t> acc(size_t(opix) * L.oc);
    std::vector<float> mul(size_t(L.oc), 0.02f / float(L.c)), add(size_t(L.oc), 0.5f);
    BitConvEpilogue e;
    e.mul = mul.data();
    e.add = add.data();
    e.out_packed = out.data();
    e.out_bits = abits;
    std::printf("\n%-28s %-20s %9s %9s %8s %9s %8s\n", L.name, "variant", "int32 ms", "fused ms",
                "GMAC/s", "epilogue", "x nib");
    double nib_ms = 0;
    for (const BgemmVariant& v : bgemm_variants()) {
      if (v.isa == Isa::ref || !isa_supported(v.isa)) continue;
      const double t_int =
          1e3 * best_seconds([&] { bitconv_int32(s, in.data(), w.data(), acc.data(), v); }, reps);
      const double t_full =
          1e3 * best_seconds([&] { bitconv_forward(s, in.data(), w.data(), e, v); }, reps);
      if (std::string(v.name) == "bgemm__avx2_nib") nib_ms = t_full;
      const double epi = std::max(0.0, t_full - t_int) / t_full;
      const double gmacs = double(s.macs()) / (t_full * 1e6);
      const std::string vs_nib = nib_ms > 0 ? std::to_string(nib_ms / t_full).substr(0, 4) : "-";
      std::printf("%-28s %-20s %9.2f %9.2f %8.1f %8.1f%% %8s\n", "", v.name, t_int, t_full, gmacs,
                  100 * epi, vs_nib.c_str());
      rows.push_back({{"layer", L.name},
                      {"variant", v.name},
                      {"wbits", wbits},
                      {"abits", abits},
                      {"threads", threads},
                      {"int32_ms", t_int},
                      {"fused_ms", t_full},
                      {"gmac_per_s", gmacs},
                      {"epilogue_share", epi},
                      {"speedup_vs_nib", nib_ms > 0 ? nib_ms / t_full : 0.0}});
    }
  }
  if (!json_path.empty()) write_json("bitconv", json_path, {{"rows", rows}});
  return 0;
}

}  // namespace

BFCN_REGISTER_BENCH(
    cli::Command("bitconv", "bit-conv kernel variants side by side on the FCN-8s 3x3 shapes")
        .describe("Every bit-conv kernel variant this CPU runs on the ResNet-18 FCN-8s 3x3 shapes "
                  "at a 512x512 input, in one process: integer-only and fused times, GMAC/s, the "
                  "epilogue share and the speed-up over bgemm__avx2_nib. Wall clock, best of "
                  "--reps.")
        .with_flags(
            {cli::integer("wbits", "W", "weight bits").range(1, 8).defaults("1"),
             cli::integer("abits", "A", "activation bits").range(1, 8).defaults("2"),
             cli::integer("threads", "N", "OpenMP threads").at_least(1).defaults("1"),
             cli::integer("reps", "N", "timed repetitions (best of)").at_least(1).defaults("5"),
             cli::text("json", "FILE", "write the rows as JSON")})
        .example("bfcn bench bitconv --wbits 1 --abits 2 --threads 1 --reps 5")
        .runs(bench_bitconv));

}  // namespace bfcn::bench
