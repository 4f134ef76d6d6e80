// The int8 stem (kernels/conv_stem_int8.*): every variant's microkernel and epilogue bit-exact
// against the reference ones, the whole forward of every variant equal to the reference variant's,
// the input quantization exact on its grid (and on an 8-bit image's own levels), the border
// windows' padding fix, and the outputs close to the FP32 stem's (the only difference is rounding
// the image to 8 bits, unless it has 8-bit levels, and the weights to 15).
#include "kernels/conv_stem_int8.h"

#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <thread>
#include <vector>

#include "kernels/act_pack.h"
#include "kernels/bitpack.h"
#include "kernels/conv_stem.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

using namespace bfcn;

namespace {

using test::uniform_floats;

// in_h, in_w, in_c, out_c, kernel, stride, pad (dilation 1).
ConvStemShape shape(int h, int w, int c, int oc, int k, int s, int p) {
  return ConvStemShape{h, w, c, oc, k, s, p, 1};
}

struct UseInt8 {
  const ConvStemInt8Variant* prev;
  explicit UseInt8(const ConvStemInt8Variant& v) : prev(conv_stem_int8_use_variant(&v)) {}
  ~UseInt8() { conv_stem_int8_use_variant(prev); }
};

// The planar image normalized, (x - mean[c]) * inv[c], as NHWC: the FP32 stem's input.
std::vector<float> normalized_nhwc(const std::vector<float>& x, const float* mean, const float* inv,
                                   int c, int64_t pixels) {
  std::vector<float> y(x.size());
  for (int64_t p = 0; p < pixels; ++p)
    for (int ch = 0; ch < c; ++ch)
      y[size_t(p * c + ch)] = (x[size_t(ch * pixels + p)] - mean[ch]) * inv[ch];
  return y;
}

}  // namespace

TEST_CASE("int8 stem variant table: ref first, by ISA level, dispatch takes the best allowed",
          "[kernels][stem][int8]") {
  test::check_variant_table(conv_stem_int8_variants(), conv_stem_int8_active());
}

TEST_CASE("int8 stem microkernels of every variant equal the integer reference",
          "[kernels][stem][int8]") {
  // 6 pixels at lda 2 (stride 2), 21 rows (3 channels x 7 kernel rows) at scattered offsets, 2
  // groups of 4 bytes per row; the bytes and weights span their whole ranges (0..255, -128..127).
  // One pass (8-bit weights) and two (high bytes times 128 plus low bytes).
  constexpr int nrows = 21, groups = 2, ldc = 70;
  std::mt19937 gen(5);
  std::vector<uint8_t> a(4096);
  for (auto& v : a) v = uint8_t(gen());
  a[0] = 255;
  std::vector<int64_t> row_off(nrows);
  for (int r = 0; r < nrows; ++r) row_off[size_t(r)] = 37 + r * 181 % 3900;
  std::vector<int8_t> bp(size_t(4) * 2 * nrows * groups * 64);
  for (auto& v : bp) v = int8_t(gen());
  bp[0] = -128;
  bp[1] = 127;
  int simd = 0;
  for (int passes : {1, 2}) {
    const int64_t pass_bytes = int64_t(nrows) * groups * 64, ps = passes * pass_bytes;
    test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
      simd += v.isa != Isa::ref;
      for (int np = 1; np <= v.max_panels; ++np) {
        INFO(passes << " passes, " << np << " panels");
        std::vector<int32_t> c(6 * ldc, -7);
        v.by_panels[np - 1](a.data() + 3, 2, row_off.data(), nrows, groups, passes, bp.data(),
                            c.data(), ldc);
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < ldc; ++j) {
            if (j >= 16 * np) {
              CHECK(c[size_t(i * ldc + j)] == -7);
              continue;
            }
            int64_t r = 0;
            for (int pass = 0; pass < passes; ++pass) {
              int64_t part = 0;
              for (int row = 0; row < nrows; ++row)
                for (int g = 0; g < groups; ++g)
                  for (int b = 0; b < 4; ++b)
                    part += int64_t(a[size_t(3 + i * 2 + row_off[size_t(row)] + 4 * g + b)]) *
                            bp[size_t((j / 16) * ps + pass * pass_bytes +
                                      ((row * groups + g) * 16 + j % 16) * 4 + b)];
              r = r * 128 + part;
            }
            CHECK(c[size_t(i * ldc + j)] == r);
          }
      }
    });
  }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem epilogue of every variant is bit-exact", "[kernels][stem][int8]") {
  // 67 channels (a masked tail), ldc 80; sums around the correction, NaN-free (integers), scales
  // that put values on rounding ties and past the clip edges.
  const int oc = 67, m = 9, ldc = 80;
  std::mt19937 gen(9);
  std::vector<int32_t> acc(size_t(m) * ldc);
  for (auto& v : acc) v = int32_t(gen() % 200001) - 100000;
  // The zero points' share, corr + 0.25: not an integer. Odd channels have 15-bit-weight sizes
  // (~2^29, where a float's units are 64 apart), their sums near it.
  std::vector<int32_t> corr(oc);
  for (int o = 0; o < oc; ++o) {
    corr[size_t(o)] = int32_t(gen() % 20001) - 10000 + (o % 2 ? 500000000 : 0);
    for (int i = 0; i < m; ++i) acc[size_t(i * ldc + o)] += o % 2 ? 500000000 : 0;
  }
  const std::vector<float> corr_frac(oc, 0.25f);
  auto scale = uniform_floats(oc, 10, 1e-6f, 3e-5f);
  scale[2] = 0.5f;  // (acc - corr) * scale on a quarter: the rounding of the halves' sum
  acc[2] = corr[2] + 1;
  const auto bias = uniform_floats(oc, 12, -0.5f, 0.5f);
  const auto mul = uniform_floats(oc, 13, -1.5f, 1.5f);
  const auto add = uniform_floats(oc, 14, -0.5f, 1.0f);
  int simd = 0;
  for (int bits : {1, 2, 8})
    for (int variant = 0; variant < 8; ++variant) {
      const StemInt8Dequant d{corr.data(),
                              corr_frac.data(),
                              scale.data(),
                              bias.data(),
                              bool(variant & 4),
                              (variant & 2) ? mul.data() : nullptr,
                              (variant & 1) ? add.data() : nullptr,
                              bits};
      INFO("bits " << bits << " relu " << d.relu << " mul " << bool(d.mul) << " add "
                   << bool(d.add));
      std::vector<uint8_t> expect(size_t(m) * oc, 0xee);
      conv_stem_int8_epilogue__ref(acc.data(), m, oc, ldc, d, expect.data());
      // The reference itself, by hand: v = (float(acc - corr) - corr_frac) * scale + bias ...
      for (int o : {1, 2}) {
        float v = (float(acc[size_t(o)] - corr[size_t(o)]) - 0.25f) * scale[size_t(o)];
        v = v + bias[size_t(o)];
        if (d.relu) v = v > 0.0f ? v : 0.0f;
        if (d.mul) v = v * mul[size_t(o)];
        if (d.add) v = v + add[size_t(o)];
        CHECK(expect[size_t(o)] == quantize_level(v, float((1 << bits) - 1)));
      }
      test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
        simd += v.isa != Isa::ref;
        std::vector<uint8_t> q(expect.size(), 0xee);
        v.epilogue(acc.data(), m, oc, ldc, d, q.data());
        CHECK(q == expect);
      });
    }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem threshold epilogue gives the float epilogue's codes",
          "[kernels][stem][int8]") {
  // Sums at every threshold and one either side, plus random ones; 1 and 2 bits, relu on/off,
  // mul >= 0 (one channel with mul 0) or absent, add present or absent. A negative mul makes
  // the code non-monotone: no thresholds then. 64 channels: the RGB stem's register path.
  int simd = 0;
  for (const int oc : {35, 64}) {
    INFO(oc << " channels");
    std::mt19937 gen(17);
    std::vector<int32_t> corr(oc);
    for (auto& v : corr) v = int32_t(gen() % 20001) - 10000;
    const std::vector<float> corr_frac(oc, 0.75f);
    const auto scale = uniform_floats(oc, 18, 1e-5f, 1e-4f);
    const auto bias = uniform_floats(oc, 19, -0.5f, 0.5f);
    auto mul = uniform_floats(oc, 20, 0.0f, 2.0f);
    mul[2] = 0.0f;
    const auto add = uniform_floats(oc, 21, -0.3f, 0.3f);
    for (int bits : {1, 2})
      for (int variant = 0; variant < 8; ++variant) {
        StemInt8Dequant d{corr.data(),
                          corr_frac.data(),
                          scale.data(),
                          bias.data(),
                          bool(variant & 4),
                          (variant & 2) ? mul.data() : nullptr,
                          (variant & 1) ? add.data() : nullptr,
                          bits};
        INFO("bits " << bits << " relu " << d.relu << " mul " << bool(d.mul) << " add "
                     << bool(d.add));
        std::vector<int32_t> t;
        REQUIRE(stem_int8_thresholds(d, oc, t));
        const int levels = (1 << bits) - 1;
        REQUIRE(t.size() == size_t(levels) * oc);
        // Rows of oc sums: row r holds, per channel, threshold (r / 3) shifted by r % 3 - 1.
        std::vector<int32_t> acc;
        for (int r = 0; r < 3 * levels; ++r)
          for (int o = 0; o < oc; ++o) {
            const int32_t th = t[size_t((r / 3) * oc + o)];
            const int64_t a = int64_t(th) + r % 3 - 1;  // within the thresholds' exact range
            acc.push_back(int32_t(std::clamp<int64_t>(a, -(1 << 30), 1 << 30)));
          }
        for (int r = 0; r < 4; ++r)
          for (int o = 0; o < oc; ++o) acc.push_back(int32_t(gen() % 400001) - 200000);
        const int64_t m = int64_t(acc.size()) / oc;
        std::vector<uint8_t> expect(acc.size());
        for (int64_t i = 0; i < m; ++i)
          for (int o = 0; o < oc; ++o)
            expect[size_t(i * oc + o)] = stem_int8_code(acc[size_t(i * oc + o)], o, d);
        CHECK(std::count(expect.begin(), expect.end(), uint8_t(levels)) > 0);
        d.thresholds = t.data();
        test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
          simd += v.isa != Isa::ref;
          std::vector<uint8_t> q(expect.size(), 0xee);
          v.epilogue(acc.data(), m, oc, oc, d, q.data());
          CHECK(q == expect);
        });
      }
    std::vector<float> neg(oc, 1.0f);
    neg[7] = -0.5f;
    const StemInt8Dequant d{corr.data(), corr_frac.data(), scale.data(), bias.data(),
                            true,        neg.data(),       nullptr,      2};
    std::vector<int32_t> t;
    CHECK_FALSE(stem_int8_thresholds(d, oc, t));
  }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem input quantization: the range with 0, exact on its grid",
          "[kernels][stem][int8]") {
  // Channel 0 spans [-1, 3] after normalization; channel 1 is all positive (0 joins the range);
  // channel 2 is constant zero, an image of 8-bit levels (step 1/255, zero point 0). The first
  // two are not 8-bit levels (63.75 / 255; > 1): their range.
  const int64_t n = 5;
  const std::vector<float> x = {0.0f, 0.25f, 0.5f, 1.0f, 0.75f,  // (x - 0.25) * 4: -1..3
                                2.0f, 3.0f,  2.5f, 4.0f, 2.0f,   //
                                0.0f, 0.0f,  0.0f, 0.0f, 0.0f};
  const float mean[3] = {0.25f, 0.0f, 0.0f}, inv[3] = {4.0f, 1.0f, 1.0f};
  const StemInputQuant q = stem_input_quant(x.data(), 3, n, mean, inv);
  // One value through the reference quantize_row: x_n with mu 0, inv 1.
  auto stem_quantize_input = [](float x_n, float step, float zero) {
    uint8_t b = 0xee;
    stem_int8_quantize_row__ref(&x_n, 1, 0.0f, 1.0f, 1.0f / step, zero, &b);
    return int(b);
  };
  CHECK(q.step[0] == Approx(4.0f / 255.0f));
  CHECK(q.zero[0] == Approx(63.75f));  // -(-1) / (4/255), not rounded
  CHECK(q.step[1] == Approx(4.0f / 255.0f));
  CHECK(q.zero[1] == 0);
  CHECK(q.step[2] == 1.0f / 255.0f);
  CHECK(q.zero[2] == 0);
  // The ends of the range land on 0 and 255; 0 on the zero point; NaN on 0 (no UB).
  CHECK(stem_quantize_input(-1.0f, q.step[0], q.zero[0]) == 0);
  CHECK(stem_quantize_input(3.0f, q.step[0], q.zero[0]) == 255);
  CHECK(stem_quantize_input(0.0f, q.step[0], q.zero[0]) == 64);
  CHECK(stem_quantize_input(4.0f, q.step[1], q.zero[1]) == 255);
  CHECK(stem_quantize_input(1e9f, q.step[1], q.zero[1]) == 255);
  CHECK(stem_quantize_input(std::numeric_limits<float>::quiet_NaN(), 1.0f, 7) == 0);
  CHECK(stem_quantize_input(2.5f, 1.0f, 0) == 2);  // ties to even
  CHECK(stem_quantize_input(3.5f, 1.0f, 0) == 4);
  // An image of 8-bit levels spanning [0, 1], normalized: every level lands on its own byte (a
  // rounded zero point, 124 for 123.675, would move them all by a third of a level).
  std::vector<float> levels(256);
  for (int k = 0; k < 256; ++k) levels[size_t(k)] = float(k) / 255.0f;
  const float m1 = 0.485f, i1 = 1.0f / 0.229f;
  const StemInputQuant ql = stem_input_quant(levels.data(), 1, 256, &m1, &i1);
  CHECK(ql.zero[0] == Approx(123.675f));
  int on_level = 0;
  for (int k = 0; k < 256; ++k)
    on_level += stem_quantize_input((levels[size_t(k)] - m1) * i1, ql.step[0], ql.zero[0]) == k;
  // The same levels through quantize_row as the stem runs it (mean and 1/std applied there).
  std::vector<uint8_t> row(256);
  stem_int8_quantize_row__ref(levels.data(), 256, m1, i1, 1.0f / ql.step[0], ql.zero[0],
                              row.data());
  for (int k = 0; k < 256; ++k) on_level += row[size_t(k)] == k;
  CHECK(on_level == 512);
}

TEST_CASE("int8 stem input quantization: an image of 8-bit levels is taken on its own levels",
          "[kernels][stem][int8]") {
  // Levels 40..200 only: the range would give a step of 160/255 levels and round most of them.
  std::vector<float> x;
  for (int k = 40; k <= 200; ++k) x.push_back(float(k) / 255.0f);
  const int64_t n = int64_t(x.size());
  const float mean = 0.485f, inv = 1.0f / 0.229f;
  const StemInputQuant q = stem_input_quant(x.data(), 1, n, &mean, &inv);
  CHECK(q.step[0] == inv / 255.0f);
  CHECK(q.zero[0] == 255.0f * mean);
  std::vector<uint8_t> b(static_cast<size_t>(n));
  stem_int8_quantize_row__ref(x.data(), n, mean, inv, 1.0f / q.step[0], q.zero[0], b.data());
  int on_level = 0;
  for (int64_t i = 0; i < n; ++i) on_level += b[size_t(i)] == 40 + i;
  CHECK(on_level == n);
  // Not 8-bit levels: one value a hundredth of a level off, a value past 1, a mean past 1, or a
  // negative 1/std. Each falls back to the range.
  auto off = x;
  off[7] += 0.01f / 255.0f;
  CHECK(stem_input_quant(off.data(), 1, n, &mean, &inv).step[0] != q.step[0]);
  auto past = x;
  past[3] = 1.5f;
  CHECK(stem_input_quant(past.data(), 1, n, &mean, &inv).step[0] != q.step[0]);
  const float big_mean = 1.5f, neg_inv = -inv;
  CHECK(stem_input_quant(x.data(), 1, n, &big_mean, &inv).zero[0] != 255.0f * big_mean);
  CHECK(stem_input_quant(x.data(), 1, n, &mean, &neg_inv).step[0] > 0.0f);
  // The range here: [(40/255 - mean) * inv, (200/255 - mean) * inv] (it holds 0) in 255 steps.
  const StemInputQuant r = stem_input_quant(off.data(), 1, n, &mean, &inv);
  CHECK(r.step[0] == Approx((float(200) / 255.0f - 40.0f / 255.0f) * inv / 255.0f).epsilon(0.02));
}

TEST_CASE("int8 stem range of every variant equals the reference, NaN and inf included",
          "[kernels][stem][int8]") {
  // Lengths around the 16-lane step; 8-bit levels, off-level values, NaN, +-inf, huge values.
  int simd = 0;
  for (int64_t n : {1, 15, 16, 17, 100}) {
    for (int kind = 0; kind < 4; ++kind) {
      INFO("n " << n << " kind " << kind);
      std::mt19937 gen(uint32_t(n * 10 + kind));
      std::vector<float> x(static_cast<size_t>(n));
      for (auto& v : x) v = float(gen() % 256) / 255.0f;
      if (kind >= 1) x[size_t(n / 2)] += 0.3f / 255.0f;
      if (kind >= 2) x[size_t(n - 1)] = std::numeric_limits<float>::quiet_NaN();
      if (kind == 3) {
        x[0] = std::numeric_limits<float>::infinity();
        x[size_t(n / 3)] = -3e9f;
      }
      float mn, mx, grid;
      stem_int8_range__ref(x.data(), n, &mn, &mx, &grid);
      if (kind == 1 && n > 1) CHECK(grid == Approx(0.3f).margin(1e-3));
      test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
        simd += v.isa != Isa::ref;
        float a = 7, b = 7, g = 7;
        v.range(x.data(), n, &a, &b, &g);
        CHECK(a == mn);
        CHECK(b == mx);
        CHECK(g == grid);
      });
    }
  }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem: on 8-bit levels with weights on its grid it is the FP32 stem, borders too",
          "[kernels][stem][int8]") {
  // Every weight j / top (|j| <= top = 16319 for 15-bit weights, 127 for 8-bit, each channel
  // reaching it) and one 1/std for all channels: the integer weights are then exact, and so is
  // the image (8-bit levels, 30..220). The int8 stem's float output is the FP32 stem's up to
  // float rounding everywhere: the windows over the padding (zero points 255 mean, not integers)
  // included. The 7x7 stem cuts the right/bottom windows; the 3x3 with pad 3 has windows wholly
  // in the padding.
  std::mt19937 gen(81);
  int simd = 0;
  for (const ConvStemShape& s : {shape(37, 29, 3, 32, 7, 2, 3), shape(6, 5, 3, 16, 3, 1, 3)}) {
    INFO("in " << s.in_h << "x" << s.in_w << " k" << s.kernel << " s" << s.stride << " p" << s.pad);
    const int64_t pix = int64_t(s.in_h) * s.in_w;
    const int taps = s.kernel * s.kernel * 3;
    std::vector<float> x(size_t(pix) * 3);
    for (auto& v : x) v = float(30 + gen() % 191) / 255.0f;
    const auto b = uniform_floats(size_t(s.out_c), 82, -0.5f, 0.5f);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, inv[3] = {4.0f, 4.0f, 4.0f};
    const auto xn_nhwc = normalized_nhwc(x, mean, inv, 3, pix);
    const int64_t outs = int64_t(s.out_h()) * s.out_w() * s.out_c;
    auto over = [&](int out, int in) {  // the window reaches the padding
      return out * s.stride - s.pad < 0 || out * s.stride - s.pad + s.kernel > in;
    };
    for (const int bits : {15, 8}) {
      INFO(bits << "-bit weights");
      const int top = bits == 15 ? 16319 : 127;
      std::vector<float> w(size_t(s.out_c) * taps);
      for (size_t i = 0; i < w.size(); ++i) {
        const int j = i % size_t(taps) == 5 ? top : int(gen() % uint32_t(2 * top + 1)) - top;
        w[i] = float(j) / float(top);
      }
      std::vector<float> y8(static_cast<size_t>(outs)), y32(static_cast<size_t>(outs));
      ConvStemEpilogue e;
      e.bias = b.data();
      e.out_f32 = y32.data();
      conv_stem_forward(s, xn_nhwc.data(), w.data(), e);
      test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
        simd += v.isa != Isa::ref;
        UseInt8 use(v);
        e.out_f32 = y8.data();
        conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), e, bits);
        double worst = 0, worst_border = 0, big = 0;
        for (int oy = 0; oy < s.out_h(); ++oy)
          for (int ox = 0; ox < s.out_w(); ++ox)
            for (int o = 0; o < s.out_c; ++o) {
              const size_t i = (size_t(oy) * s.out_w() + ox) * s.out_c + o;
              const double err = std::abs(double(y8[i]) - y32[i]);
              const bool border = over(oy, s.in_h) || over(ox, s.in_w);
              (border ? worst_border : worst) = std::max(border ? worst_border : worst, err);
              big = std::max(big, std::abs(double(y32[i])));
            }
        INFO("worst error inside " << worst << ", at the border " << worst_border << ", |y| up to "
                                   << big);
        CHECK(big > 2.0);
        CHECK(worst < 1e-4);         // an off-level image would be ~1e-2 off
        CHECK(worst_border < 1e-4);  // so would the border windows without the pad fix
      });
    }
  }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem: every variant's forward equals the reference variant's codes",
          "[kernels][stem][int8]") {
  // The ResNet stem on odd sizes, an image smaller than the kernel, 1 and 4 channels, 17 and 70
  // output channels (panel tails), stride 1 with a 3x3 kernel.
  const std::vector<ConvStemShape> shapes = {
      shape(37, 29, 3, 64, 7, 2, 3), shape(4, 5, 3, 17, 7, 2, 3), shape(13, 9, 1, 70, 3, 1, 1),
      shape(10, 12, 4, 33, 5, 3, 0)};
  uint32_t seed = 40;
  int simd = 0;
  for (const ConvStemShape& s : shapes) {
    INFO("in " << s.in_h << "x" << s.in_w << "x" << s.in_c << " oc " << s.out_c << " k" << s.kernel
               << " s" << s.stride << " p" << s.pad);
    const int64_t pix = int64_t(s.in_h) * s.in_w;
    const auto x = uniform_floats(size_t(pix) * s.in_c, seed++, 0.0f, 1.0f);
    const auto w =
        uniform_floats(size_t(s.out_c) * s.kernel * s.kernel * s.in_c, seed++, -0.3f, 0.3f);
    const auto b = uniform_floats(size_t(s.out_c), seed++, -0.5f, 0.5f);
    const auto mul = uniform_floats(size_t(s.out_c), seed++, 0.5f, 2.0f);
    const float mean[4] = {0.4f, 0.5f, 0.45f, 0.3f}, inv[4] = {4.0f, 4.5f, 4.4f, 3.0f};
    const int64_t outs = int64_t(s.out_h()) * s.out_w() * s.out_c;
    for (const int bits : {15, 8}) {
      INFO(bits << "-bit weights");
      std::vector<uint8_t> ref(size_t(outs), 0xee);
      ConvStemEpilogue e;
      e.bias = b.data();
      e.relu = true;
      e.mul = mul.data();
      e.bits = 2;
      e.out_q = ref.data();
      {
        UseInt8 use(conv_stem_int8_variants()[0]);
        conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), e, bits);
      }
      CHECK(std::count(ref.begin(), ref.end(), uint8_t(0xee)) == 0);
      CHECK(std::count(ref.begin(), ref.end(), uint8_t(1)) > 0);  // not all one code
      // The float output (bias + ReLU), every variant equal to the reference one.
      std::vector<float> yref(size_t(outs), -1.0f);
      ConvStemEpilogue ef;
      ef.bias = b.data();
      ef.relu = true;
      ef.out_f32 = yref.data();
      {
        UseInt8 use(conv_stem_int8_variants()[0]);
        conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), ef, bits);
      }
      CHECK(std::count(yref.begin(), yref.end(), 0.0f) > 0);
      CHECK(std::count(yref.begin(), yref.end(), -1.0f) == 0);
      test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
        simd += v.isa != Isa::ref;
        UseInt8 use(v);
        std::vector<uint8_t> q(size_t(outs), 0xee);
        e.out_q = q.data();
        conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), e, bits);
        CHECK(q == ref);
        std::vector<float> y(size_t(outs), -1.0f);
        ef.out_f32 = y.data();
        conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), ef, bits);
        CHECK(y == yref);
      });
    }
  }
  if (simd == 0)
    BFCN_SKIP_ISA("no SIMD int8 stem runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("int8 stem is within its rounding of the FP32 stem", "[kernels][stem][int8]") {
  // 8-bit codes over a range that keeps every value inside the clip: each code is then a linear
  // function of the conv output, so the int8 and FP32 stems' codes differ by about the error the
  // 8-bit image and weights allow. 2-bit codes (the BFCN stem) then agree almost everywhere.
  const ConvStemShape s = shape(48, 40, 3, 64, 7, 2, 3);
  const int64_t pix = int64_t(s.in_h) * s.in_w;
  const auto x = uniform_floats(size_t(pix) * 3, 61, 0.0f, 1.0f);
  const auto w = uniform_floats(size_t(64) * 147, 62, -0.1f, 0.1f);
  const auto b = uniform_floats(64, 63, -0.2f, 0.2f);
  const float mean[3] = {0.485f, 0.456f, 0.406f}, inv[3] = {1 / 0.229f, 1 / 0.224f, 1 / 0.225f};
  const auto xn_nhwc = normalized_nhwc(x, mean, inv, 3, pix);
  const int64_t outs = int64_t(s.out_h()) * s.out_w() * 64;
  for (const int weight_bits : {15, 8}) {
    INFO(weight_bits << "-bit weights");
    const double top = weight_bits == 15 ? 16319 : 127;
    // Float outputs: within the bound the 8-bit image and the weights' rounding allow. |sum w x_n
    // - t sum wq (q - z)| <= sum |w| step/2 (input rounding) + sum (t/2) 255 (weight rounding,
    // |q - z| <= 255), per output channel, t its weight step (the largest |w step| / top).
    std::vector<float> y8(static_cast<size_t>(outs)), y32(static_cast<size_t>(outs));
    ConvStemEpilogue e;
    e.bias = b.data();
    e.out_f32 = y8.data();
    conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), e, weight_bits);
    e.out_f32 = y32.data();
    conv_stem_forward(s, xn_nhwc.data(), w.data(), e);
    const StemInputQuant iq = stem_input_quant(x.data(), 3, pix, mean, inv);
    double mean_err = 0, worst_ratio = 0;
    for (int o = 0; o < 64; ++o) {
      double sum_w = 0, wmax = 0;
      for (int t = 0; t < 147; ++t) {
        const double wv = std::abs(double(w[size_t(o * 147 + t)]));
        sum_w += wv * iq.step[t % 3] / 2;
        wmax = std::max(wmax, wv * iq.step[t % 3]);
      }
      const double bound = sum_w + 147 * (wmax / top / 2) * 255 + 1e-4;
      for (int64_t p = 0; p < outs / 64; ++p) {
        const double err = std::abs(double(y8[size_t(p * 64 + o)]) - y32[size_t(p * 64 + o)]);
        mean_err += err / double(outs);
        worst_ratio = std::max(worst_ratio, err / bound);
      }
    }
    CHECK(worst_ratio <= 1.0);
    CHECK(mean_err < 0.01);  // the errors cancel: far below the worst case
    INFO("mean error " << mean_err << ", worst / bound " << worst_ratio);
    CHECK(mean_err > 0);  // two different computations
  }
  for (int bits : {8, 2}) {
    INFO("bits " << bits);
    // 8 bits: the conv output (|v| < ~6) mapped into [0, 1]; 2 bits: a ReLU stem quantizer.
    const std::vector<float> mul(64, bits == 8 ? 1.0f / 16.0f : 1.0f);
    const std::vector<float> add(64, bits == 8 ? 0.5f : 0.0f);
    ConvStemEpilogue e;
    e.bias = b.data();
    e.relu = bits == 2;
    e.mul = mul.data();
    e.add = add.data();
    e.bits = bits;
    std::vector<uint8_t> q8(static_cast<size_t>(outs)), q32(static_cast<size_t>(outs));
    e.out_q = q8.data();
    conv_stem_int8_forward(s, x.data(), mean, inv, w.data(), e);
    e.out_q = q32.data();
    conv_stem_forward(s, xn_nhwc.data(), w.data(), e);
    int64_t same = 0, worst = 0, edge = 0;
    for (int64_t i = 0; i < outs; ++i) {
      const int64_t d = std::abs(int64_t(q8[size_t(i)]) - q32[size_t(i)]);
      same += d == 0;
      worst = std::max(worst, d);
      edge += q32[size_t(i)] == 0 || q32[size_t(i)] == (1 << bits) - 1;
    }
    CHECK(edge < outs * 3 / 4);  // the codes are not saturated (ReLU zeroes about half)
    if (bits == 8) {
      // One output step is 16/255 = 0.063; the 8-bit rounding moves v by ~0.01 here.
      CHECK(worst <= 1);
      CHECK(double(same) / double(outs) > 0.7);
    } else {
      CHECK(worst <= 1);
      CHECK(double(same) / double(outs) > 0.99);
    }
  }
}

TEST_CASE("int8 stem with a fused max pool equals its float map pooled", "[kernels][stem][int8]") {
  const ConvStemShape s = shape(29, 23, 3, 64, 7, 2, 3);
  const int oh = s.out_h(), ow = s.out_w();
  const int64_t pix = int64_t(s.in_h) * s.in_w;
  const auto x = uniform_floats(size_t(pix) * 3, 71, 0.0f, 1.0f);
  const auto w = uniform_floats(size_t(64) * 147, 72, -0.2f, 0.2f);
  const auto b = uniform_floats(64, 73, -0.5f, 0.5f);
  const StemMaxPool pool{3, 2, 1, (oh - 1) / 2 + 1, (ow - 1) / 2 + 1};
  std::vector<float> full(size_t(oh) * ow * 64);
  ConvStemEpilogue e;
  e.bias = b.data();
  e.relu = true;
  e.out_f32 = full.data();
  conv_stem_int8_forward(s, x.data(), nullptr, nullptr, w.data(), e);
  std::vector<float> expect(size_t(pool.out_h) * pool.out_w * 64,
                            -std::numeric_limits<float>::infinity());
  for (int py = 0; py < pool.out_h; ++py)
    for (int px = 0; px < pool.out_w; ++px)
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) {
          const int iy = py * 2 - 1 + ky, ix = px * 2 - 1 + kx;
          if (iy < 0 || iy >= oh || ix < 0 || ix >= ow) continue;
          for (int o = 0; o < 64; ++o) {
            float& d = expect[(size_t(py) * pool.out_w + px) * 64 + o];
            d = std::max(d, full[(size_t(iy) * ow + ix) * 64 + o]);
          }
        }
  std::vector<float> pooled(expect.size(), -1.0f);
  e.out_f32 = pooled.data();
  e.pool = pool;
  conv_stem_int8_forward(s, x.data(), nullptr, nullptr, w.data(), e);
  CHECK(pooled == expect);
}

TEST_CASE("int8 stem with pooled packed codes equals its codes pooled and packed",
          "[kernels][stem][int8]") {
  // out_packed pools a few code rows at a time (over two threads: bands of pooled rows, whose
  // shared conv rows are computed twice); every variant, 1- and 2-bit codes (the threshold
  // epilogue) and 3-bit ones (the float epilogue).
  const int prev_threads = omp_get_max_threads();
  omp_set_num_threads(2);
  const ConvStemShape s = shape(150, 61, 3, 40, 7, 2, 3);
  const int oh = s.out_h(), ow = s.out_w();
  const auto x = uniform_floats(size_t(s.in_h) * s.in_w * 3, 81, 0.0f, 1.0f);
  const auto w = uniform_floats(size_t(40) * 147, 82, -0.2f, 0.2f);
  const auto b = uniform_floats(40, 83, -0.5f, 0.5f);
  const auto mul = uniform_floats(40, 84, 0.5f, 2.0f);
  const StemMaxPool pool{3, 2, 1, (oh - 1) / 2 + 1, (ow - 1) / 2 + 1};
  for (int bits : {1, 2, 3})
    test::for_each_variant(conv_stem_int8_variants(), [&](const ConvStemInt8Variant& v) {
      INFO(bits << "-bit codes");
      UseInt8 use(v);
      std::vector<uint8_t> codes(size_t(oh) * ow * 40);
      ConvStemEpilogue e;
      e.bias = b.data();
      e.relu = true;
      e.mul = mul.data();
      e.bits = bits;
      e.out_q = codes.data();
      conv_stem_int8_forward(s, x.data(), nullptr, nullptr, w.data(), e);
      const size_t words = size_t(pool.out_h) * pool.out_w * bits;
      std::vector<uint64_t> expect(words), got(words, ~0ull);
      maxpool_pack_q(codes.data(), oh, ow, 40, 3, 2, 1, bits, expect.data(), pool.out_h,
                     pool.out_w);
      e.out_q = nullptr;
      e.out_packed = got.data();
      e.pool = pool;
      conv_stem_int8_forward(s, x.data(), nullptr, nullptr, w.data(), e);
      CHECK(got == expect);
      CHECK(std::count(codes.begin(), codes.end(), uint8_t((1 << bits) - 1)) > 0);
    });
  omp_set_num_threads(prev_threads);
}

TEST_CASE("int8 stem: what it cannot run is a clear error", "[kernels][stem][int8]") {
  const std::vector<float> x(size_t(5) * 9 * 9, 0.5f), w(size_t(8) * 9 * 5, 0.1f), b(8, 0.0f);
  std::vector<float> y(size_t(8) * 81);
  ConvStemEpilogue e;
  e.bias = b.data();
  e.out_f32 = y.data();
  ConvStemShape dilated = shape(9, 9, 3, 8, 3, 1, 2);
  dilated.dilation = 2;
  CHECK_THROWS_WITH(conv_stem_int8_forward(dilated, x.data(), nullptr, nullptr, w.data(), e),
                    Catch::Contains("dilation 1") && Catch::Contains("got dilation 2"));
  CHECK_THROWS_WITH(
      conv_stem_int8_forward(shape(9, 9, 5, 8, 3, 1, 1), x.data(), nullptr, nullptr, w.data(), e),
      Catch::Contains("5 channels"));
  CHECK_THROWS_WITH(conv_stem_int8_forward(shape(9, 9, 3, 8, 3, 1, 1), x.data(), nullptr, nullptr,
                                           w.data(), e, 12),
                    Catch::Contains("8 or 15 bits, got 12"));
  ConvStemEpilogue no_output;
  no_output.bias = b.data();
  CHECK_THROWS_WITH(conv_stem_int8_forward(shape(9, 9, 3, 8, 3, 1, 1), x.data(), nullptr, nullptr,
                                           w.data(), no_output),
                    Catch::Contains("float output or codes"));
}

TEST_CASE("int8 stem: the per-thread weight cache never serves other weights, steps or widths",
          "[kernels][stem][int8]") {
  // One thread runs a sequence that changes one thing at a time: a single weight, the image's
  // statistics (an 8-bit image, then one off the 8-bit levels: other steps and zero points), the
  // weight width, the shape. Each output must equal the same call on a fresh thread, whose cache
  // is empty.
  const ConvStemShape s = shape(23, 19, 3, 20, 7, 2, 3);
  const int64_t pixels = int64_t(s.in_h) * s.in_w;
  const int kk = 7 * 7 * 3;
  std::vector<float> img8(size_t(3 * pixels)), img_off(img8.size());
  std::mt19937 gen(29);
  for (size_t i = 0; i < img8.size(); ++i) {
    img8[i] = float(gen() % 256) / 255.0f;
    img_off[i] = img8[i] * 0.9f + 0.013f;  // off the 8-bit levels
  }
  const float mean[3] = {0.485f, 0.456f, 0.406f}, inv[3] = {1 / 0.229f, 1 / 0.224f, 1 / 0.225f};
  std::vector<float> w = uniform_floats(size_t(s.out_c) * kk, 30, -0.2f, 0.2f);
  std::vector<float> w2 = w;
  w2[5] += 0.05f;  // one weight of channel 0
  const std::vector<float> b = uniform_floats(size_t(s.out_c), 31);
  struct Call {
    ConvStemShape s;
    const std::vector<float>* x;
    const std::vector<float>* w;
    int bits;
  };
  const ConvStemShape small = shape(11, 13, 3, 20, 7, 2, 3);
  const Call calls[] = {{s, &img8, &w, 15},    {s, &img8, &w2, 15},    {s, &img8, &w, 15},
                        {s, &img_off, &w, 15}, {s, &img8, &w, 8},      {small, &img8, &w, 8},
                        {s, &img8, &w2, 8},    {s, &img_off, &w2, 15}, {s, &img8, &w, 15}};
  auto run = [&](const Call& c) {
    std::vector<float> y(size_t(c.s.out_h()) * c.s.out_w() * c.s.out_c);
    ConvStemEpilogue e;
    e.bias = b.data();
    e.out_f32 = y.data();
    conv_stem_int8_forward(c.s, c.x->data(), mean, inv, c.w->data(), e, c.bits);
    return y;
  };
  int i = 0;
  for (const Call& c : calls) {
    INFO("call " << i++);
    const std::vector<float> got = run(c);
    std::vector<float> fresh;
    std::thread([&] { fresh = run(c); }).join();
    CHECK(got == fresh);
  }
}
