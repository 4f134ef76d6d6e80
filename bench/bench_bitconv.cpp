// `bfcn bench bitconv`: every bit-conv kernel variant this CPU runs (bgemm_variants(), the scalar
// reference excepted: ~100x slower) on the ResNet-18 FCN-8s 3x3 shapes at a 512x512 input, in the
// same process: integer-only and fused (requantize + pack) times, GMAC/s, the epilogue share, the
// speed-up over the previous default bgemm__avx2_nib, and (1 thread, implicit-im2col variants) the
// kernel alone without the driver's re-layout and counts. Wall clock, best of --reps.
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

// The kernel alone (BgemmVariant::direct with the fused threshold epilogue) over every output row
// of s, on an input already in its zero-bordered re-layout and with per-pixel corrections given:
// what the driver adds around it (the re-layout, the activation counts, the row sums of counts)
// is left out. Best of reps, ms.
double direct_kernel_ms(const BitConvShape& s, const uint64_t* in, const uint64_t* w,
                        const BitConvEpilogue& e, const BgemmVariant& v, uint64_t* out, int reps) {
  const int cw = bit_words(s.in_c), kb = s.a_bits, hp = s.in_h + 2 * s.pad, wp = s.in_w + 2 * s.pad,
            oh = s.out_h(), ow = s.out_w(), taps = s.taps();
  const int64_t plane = int64_t(hp) * wp;
  std::vector<uint64_t> padded(size_t(cw) * plane * kb, 0);
  for (int y = 0; y < s.in_h; ++y)
    for (int x = 0; x < s.in_w; ++x)
      for (int i = 0; i < cw; ++i)
        for (int k = 0; k < kb; ++k)
          padded[size_t((i * plane + int64_t(y + s.pad) * wp + x + s.pad) * kb + k)] =
              in[size_t(((int64_t(y) * s.in_w + x) * kb + k) * cw + i)];
  std::vector<int64_t> loff(size_t(taps) * cw);
  for (int t = 0; t < taps; ++t)
    for (int i = 0; i < cw; ++i)
      loff[size_t(t * cw + i)] = (i * plane + int64_t(t / s.kw) * wp + t % s.kw) * kb;
  const PreparedBitWeights pw = prepare_bitconv_weights(s, w, v);
  const RequantThresholds rt = make_requant_thresholds(s, e);
  const std::vector<int32_t> corr(size_t(ow), ((1 << s.w_bits) - 1) * taps * s.in_c);
  std::vector<int32_t> acc(size_t(ow) * s.out_c);
  return 1e3 * best_seconds(
                   [&] {
                     for (int oy = 0; oy < oh; ++oy) {
                       ThresholdEpilogue te;
                       te.corr = corr.data();
                       te.thr = rt.thr.data();
                       te.neg = rt.neg.data();
                       te.ldt = rt.ldt;
                       te.bits = rt.bits;
                       te.out = out + int64_t(oy) * ow * rt.bits * bit_words(s.out_c);
                       v.direct(padded.data() + int64_t(oy) * s.stride * wp * kb, loff.data(), ow,
                                s.stride, pw.w.data(), s.out_c, kb, s.w_bits, taps * cw, acc.data(),
                                s.out_c, &te);
                     }
                   },
                   reps);
}

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
    std::printf("\n%-28s %-20s %9s %9s %8s %9s %8s %10s %8s\n", L.name, "variant", "int32 ms",
                "fused ms", "GMAC/s", "epilogue", "x nib", "kernel ms", "GMAC/s");
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
      // the kernel alone, for variants with an implicit-im2col form (omp_set_num_threads(1): one
      // thread runs every row)
      const double t_kernel = v.direct && threads == 1
                                  ? direct_kernel_ms(s, in.data(), w.data(), e, v, out.data(), reps)
                                  : 0.0;
      std::printf("%-28s %-20s %9.2f %9.2f %8.1f %8.1f%% %8s", "", v.name, t_int, t_full, gmacs,
                  100 * epi, vs_nib.c_str());
      if (t_kernel > 0)
        std::printf(" %10.2f %8.1f\n", t_kernel, double(s.macs()) / (t_kernel * 1e6));
      else
        std::printf(" %10s %8s\n", "-", "-");
      rows.push_back({{"layer", L.name},
                      {"variant", v.name},
                      {"wbits", wbits},
                      {"abits", abits},
                      {"threads", threads},
                      {"int32_ms", t_int},
                      {"fused_ms", t_full},
                      {"gmac_per_s", gmacs},
                      {"epilogue_share", epi},
                      {"kernel_ms", t_kernel},
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
                  "epilogue share, the speed-up over bgemm__avx2_nib and, on 1 thread, the "
                  "implicit-im2col kernel alone (no re-layout, no activation counts). Wall clock, "
                  "best of --reps.")
        .with_flags(
            {cli::integer("wbits", "W", "weight bits").range(1, 8).defaults("1"),
             cli::integer("abits", "A", "activation bits").range(1, 8).defaults("2"),
             cli::integer("threads", "N", "OpenMP threads").at_least(1).defaults("1"),
             cli::integer("reps", "N", "timed repetitions (best of)").at_least(1).defaults("5"),
             cli::text("json", "FILE", "write the rows as JSON")})
        .example("bfcn bench bitconv --wbits 1 --abits 2 --threads 1 --reps 5")
        .runs(bench_bitconv));

}  // namespace bfcn::bench
