// The stem convolution (kernels/conv_stem.*) against a double-precision reference: direct and
// im2col paths, odd sizes, borders, images smaller than the kernel, every variant's microkernel,
// and its fused quantizing epilogue (bit-exact for every variant, NaN/±0/rounding ties).
#include "kernels/conv_stem.h"

#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/act_pack.h"
#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

using namespace bfcn;

namespace {

using test::uniform_floats;

// Double-precision NHWC convolution + bias (+ relu).
std::vector<double> conv_ref(const ConvStemShape& s, const std::vector<float>& x,
                             const std::vector<float>& w, const std::vector<float>& b, bool relu) {
  const int oh = s.out_h(), ow = s.out_w(), k = s.kernel, c = s.in_c;
  std::vector<double> y(size_t(oh) * ow * s.out_c);
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox)
      for (int o = 0; o < s.out_c; ++o) {
        double acc = b[size_t(o)];
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx) {
            const int iy = oy * s.stride - s.pad + ky * s.dilation;
            const int ix = ox * s.stride - s.pad + kx * s.dilation;
            if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
            for (int ch = 0; ch < c; ++ch)
              acc += double(x[(size_t(iy) * s.in_w + ix) * c + ch]) *
                     w[((size_t(o) * k + ky) * k + kx) * c + ch];
          }
        y[(size_t(oy) * ow + ox) * s.out_c + o] = relu ? std::max(acc, 0.0) : acc;
      }
  return y;
}

ConvStemShape shape(int h, int w, int c, int oc, int k, int s, int p, int d) {
  ConvStemShape r;
  r.in_h = h;
  r.in_w = w;
  r.in_c = c;
  r.out_c = oc;
  r.kernel = k;
  r.stride = s;
  r.pad = p;
  r.dilation = d;
  return r;
}

}  // namespace

TEST_CASE("stem conv matches a double reference on odd shapes and borders", "[kernels][stem]") {
  const std::vector<ConvStemShape> shapes = {
      shape(37, 29, 3, 64, 7, 2, 3, 1),  // the ResNet stem, odd sizes
      shape(9, 13, 1, 20, 3, 1, 1, 1),   // OC not a multiple of 16, C = 1
      shape(4, 5, 3, 17, 7, 2, 3, 1),    // image smaller than the kernel
      shape(11, 10, 2, 33, 5, 3, 0, 1),  // no padding, stride 3
      shape(15, 12, 3, 16, 3, 2, 2, 2),  // dilation 2: the im2col path
      shape(1, 1, 3, 8, 1, 1, 0, 1),     // 1x1 on one pixel
  };
  uint32_t seed = 1;
  for (const ConvStemShape& s : shapes)
    for (bool relu : {false, true}) {
      INFO("in " << s.in_h << "x" << s.in_w << "x" << s.in_c << " oc " << s.out_c << " k"
                 << s.kernel << " s" << s.stride << " p" << s.pad << " d" << s.dilation << " relu "
                 << relu);
      const int kk = s.kernel * s.kernel * s.in_c;
      const auto x = uniform_floats(size_t(s.in_h) * s.in_w * s.in_c, seed++);
      const auto w = uniform_floats(size_t(s.out_c) * kk, seed++, -0.3f, 0.3f);
      const auto b = uniform_floats(size_t(s.out_c), seed++);
      const auto ref = conv_ref(s, x, w, b, relu);
      test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
        struct Use {
          const ConvStemVariant* prev;
          ~Use() { conv_stem_use_variant(prev); }
        } use{conv_stem_use_variant(&v)};
        std::vector<float> y(ref.size(), std::numeric_limits<float>::quiet_NaN());
        ConvStemEpilogue e;
        e.bias = b.data();
        e.relu = relu;
        e.out_f32 = y.data();
        conv_stem_forward(s, x.data(), w.data(), e);
        double worst = 0;
        for (size_t i = 0; i < y.size(); ++i)
          worst = std::max(worst, std::abs(double(y[i]) - ref[i]) / (1.0 + std::abs(ref[i])));
        CHECK(worst < 1e-5);
      });
    }
}

TEST_CASE("stem variant table: ref first, by ISA level, dispatch takes the best allowed",
          "[kernels][stem]") {
  test::check_variant_table(conv_stem_variants(), conv_stem_active());
}

TEST_CASE("stem conv microkernels of every variant agree with a double reference",
          "[kernels][stem]") {
  // A: 6 pixels, 7 kernel rows of 21 floats (the RGB 7x7 stem), lda 6, row stride 200; B: four
  // consecutive 147 x 16 panels; each variant's 1..max_panels-panel kernels, and columns past the
  // panels untouched.
  constexpr int rows = 7, run = 21, kk = rows * run;
  const auto a = uniform_floats(6 * 6 + 6 * 200 + run, 7);
  const auto b = uniform_floats(size_t(4) * kk * 16, 8);
  alignas(64) static float bp[4 * kk * 16];  // panels are 64-byte aligned as sgemm_pack_b's
  std::copy(b.begin(), b.end(), bp);
  test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
    for (int np = 1; np <= v.max_panels; ++np) {
      INFO(np << " panels");
      std::vector<float> c(6 * 70, -1.0f);
      v.by_panels[np - 1](a.data(), 6, 200, rows, run, bp, c.data(), 70);
      for (int i = 0; i < 6; ++i)
        for (int j = 0; j < 70; ++j) {
          if (j < 16 * np) {
            double r = 0;
            for (int row = 0; row < rows; ++row)
              for (int p = 0; p < run; ++p)
                r += double(a[size_t(i * 6 + row * 200 + p)]) *
                     bp[(j / 16) * kk * 16 + (row * run + p) * 16 + j % 16];
            CHECK(c[size_t(i * 70 + j)] == Approx(r).margin(1e-5));
          } else {
            CHECK(c[size_t(i * 70 + j)] == -1.0f);
          }
        }
    }
  });
}

TEST_CASE("stem quantizing epilogue of every variant is bit-exact (quantize_level)",
          "[kernels][stem]") {
  // Values on rounding ties, at the clip edges, +-0, NaN, inf and huge; 67 channels (tail).
  const int oc = 67, m = 9;
  std::vector<float> acc = uniform_floats(size_t(m) * oc, 11, -2.0f, 3.0f);
  const float specials[] = {0.0f,
                            -0.0f,
                            std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            1e30f,
                            -1e30f,
                            1.0f,
                            1.0f / 6.0f,
                            0.5f,
                            1.5f / 3.0f,
                            2.5f / 3.0f};
  for (size_t i = 0; i < std::size(specials); ++i) acc[i * 5] = specials[i];
  const auto bias = uniform_floats(oc, 12, -0.1f, 0.1f);
  const std::vector<float> zero_bias(oc, 0.0f);
  auto mul = uniform_floats(oc, 13, -1.5f, 1.5f);
  const auto add = uniform_floats(oc, 14, -0.5f, 1.0f);
  for (int bits : {1, 2, 4, 8})
    for (int variant = 0; variant < 8; ++variant) {
      const bool relu = variant & 4;
      const float* mp = (variant & 2) ? mul.data() : nullptr;
      const float* ap = (variant & 1) ? add.data() : nullptr;
      // With zero bias the values above reach the epilogue unchanged (ties, NaN, +-0).
      for (const auto* bs : {&bias, &zero_bias}) {
        INFO("bits " << bits << " relu " << relu << " mul " << bool(mp) << " add " << bool(ap));
        std::vector<uint8_t> expect(acc.size());
        const float levels = float((1 << bits) - 1);
        for (int i = 0; i < m; ++i)
          for (int o = 0; o < oc; ++o) {
            float v = acc[size_t(i * oc + o)] + (*bs)[size_t(o)];
            if (relu) v = v > 0.0f ? v : 0.0f;
            if (mp) v = v * mp[o];
            if (ap) v = v + ap[o];
            expect[size_t(i * oc + o)] = quantize_level(v, levels);
          }
        test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
          std::vector<uint8_t> q(acc.size(), 0xee);
          v.quantize(acc.data(), m, oc, bs->data(), relu, mp, ap, bits, q.data());
          CHECK(q == expect);
        });
      }
    }
}

TEST_CASE("stem conv with quantized output equals quantizing its float output", "[kernels][stem]") {
  // Every variant (the AVX-512 one quantizes in the microkernel's registers), with and without
  // ReLU, multipliers of both signs, an add or none; shapes with a channel tail (40 = 2.5 panels,
  // 17), a last 6-pixel group of 4, 5 or 1 pixels, and more than 4 panels (80 channels).
  const ConvStemShape shapes[] = {shape(21, 19, 3, 40, 7, 2, 3, 1), shape(9, 13, 3, 17, 3, 1, 1, 1),
                                  shape(13, 11, 3, 80, 7, 2, 3, 1)};
  uint32_t seed = 21;
  for (const ConvStemShape& s : shapes) {
    const int kk = s.kernel * s.kernel * s.in_c;
    const auto x = uniform_floats(size_t(s.in_h) * s.in_w * s.in_c, seed++);
    const auto w = uniform_floats(size_t(s.out_c) * kk, seed++, -0.2f, 0.2f);
    const auto b = uniform_floats(size_t(s.out_c), seed++);
    auto mul = uniform_floats(size_t(s.out_c), seed++, 0.1f, 0.6f);
    for (size_t o = 0; o < mul.size(); o += 3) mul[o] = -mul[o];
    const auto add = uniform_floats(size_t(s.out_c), seed++, 0.2f, 0.8f);
    const size_t n = size_t(s.out_h()) * s.out_w() * s.out_c;
    for (bool relu : {false, true})
      for (bool with_add : {false, true}) {
        INFO("oc " << s.out_c << " k" << s.kernel << " relu " << relu << " add " << with_add);
        test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
          struct Use {
            const ConvStemVariant* prev;
            ~Use() { conv_stem_use_variant(prev); }
          } use{conv_stem_use_variant(&v)};
          std::vector<float> y(n);
          std::vector<uint8_t> q(n, 0xee);
          ConvStemEpilogue e;
          e.bias = b.data();
          e.relu = relu;
          e.out_f32 = y.data();
          conv_stem_forward(s, x.data(), w.data(), e);
          e.out_f32 = nullptr;
          e.out_q = q.data();
          e.mul = mul.data();
          e.add = with_add ? add.data() : nullptr;
          e.bits = 2;
          conv_stem_forward(s, x.data(), w.data(), e);
          std::vector<int> seen(4, 0);
          for (size_t i = 0; i < n; ++i) {
            const size_t o = i % size_t(s.out_c);
            float vq = y[i] * mul[o];
            if (with_add) vq = vq + add[o];
            REQUIRE(int(q[i]) == int(quantize_level(vq, 3.0f)));
            ++seen[q[i]];
          }
          if (with_add)
            for (int l = 0; l < 4; ++l) CHECK(seen[size_t(l)] > 0);  // every level is exercised
        });
      }
  }
}

namespace {

// Max pool of y [oh][ow][oc] with -inf padding, directly from its definition.
std::vector<float> maxpool_ref(const std::vector<float>& y, int oh, int ow, int oc,
                               const StemMaxPool& p) {
  std::vector<float> out(size_t(p.out_h) * p.out_w * oc, -std::numeric_limits<float>::infinity());
  for (int py = 0; py < p.out_h; ++py)
    for (int px = 0; px < p.out_w; ++px)
      for (int ky = 0; ky < p.kernel; ++ky)
        for (int kx = 0; kx < p.kernel; ++kx) {
          const int iy = py * p.stride - p.pad + ky, ix = px * p.stride - p.pad + kx;
          if (iy < 0 || iy >= oh || ix < 0 || ix >= ow) continue;
          for (int o = 0; o < oc; ++o) {
            float& d = out[(size_t(py) * p.out_w + px) * oc + o];
            d = std::max(d, y[(size_t(iy) * ow + ix) * oc + o]);
          }
        }
  return out;
}

}  // namespace

TEST_CASE("stem pool rows of every variant equal the pool's definition", "[kernels][stem]") {
  // Channel counts below, at and past one 64-channel block; windows cut by the borders; no bias,
  // a bias, a bias and the ReLU after the max; NaN taps (skipped) in one column.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  for (int oc : {8, 64, 67, 130})
    for (int nrows : {1, 2, 3})
      for (int after : {0, 1, 2}) {
        const int ow = 13, pw = 7;  // 3x3/2 pad 1 over 13 columns
        INFO("oc " << oc << " rows " << nrows << " bias " << (after > 0) << " relu "
                   << (after == 2));
        std::vector<std::vector<float>> rows;
        std::vector<const float*> ptrs;
        for (int r = 0; r < nrows; ++r)
          rows.push_back(uniform_floats(size_t(ow) * oc, uint32_t(100 * oc + r), -2.0f, 2.0f));
        for (int o = 0; o < oc; o += 3) rows[0][size_t(4 * oc + o)] = nan;  // column 4
        for (const auto& r : rows) ptrs.push_back(r.data());
        const auto bias = uniform_floats(size_t(oc), uint32_t(7 * oc), -1.0f, 1.0f);
        std::vector<float> expect(size_t(pw) * oc, -std::numeric_limits<float>::infinity());
        for (int px = 0; px < pw; ++px)
          for (int kx = 0; kx < 3; ++kx) {
            const int ix = px * 2 - 1 + kx;
            if (ix < 0 || ix >= ow) continue;
            for (int r = 0; r < nrows; ++r)
              for (int o = 0; o < oc; ++o) {
                const float t = rows[size_t(r)][size_t(ix * oc + o)];
                float& d = expect[size_t(px * oc + o)];
                if (!std::isnan(t)) d = std::max(d, t);
              }
          }
        if (after > 0)
          for (size_t i = 0; i < expect.size(); ++i) {
            expect[i] += bias[i % size_t(oc)];
            if (after == 2) expect[i] = std::max(expect[i], 0.0f);
          }
        test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
          std::vector<float> out(size_t(pw) * oc + 5, 7.0f);  // + a guard past the row
          v.pool_row(ptrs.data(), nrows, ow, oc, 3, 2, 1, pw, after > 0 ? bias.data() : nullptr,
                     after == 2, out.data());
          CHECK(std::vector<float>(out.begin(), out.begin() + pw * oc) == expect);
          CHECK(out.back() == 7.0f);
        });
      }
}

namespace {

// Two OpenMP threads while alive: the fused pools then split the pooled rows into bands, whose
// shared conv rows each band computes for itself.
struct TwoThreads {
  int prev = omp_get_max_threads();
  TwoThreads() { omp_set_num_threads(2); }
  ~TwoThreads() { omp_set_num_threads(prev); }
};

// The pools of the fused tests: 3x3/2 pad 1 and 2x2/2 pad 0 over an oh x ow map.
std::vector<StemMaxPool> test_pools(int oh, int ow) {
  return {StemMaxPool{3, 2, 1, (oh - 1) / 2 + 1, (ow - 1) / 2 + 1},
          StemMaxPool{2, 2, 0, oh / 2, ow / 2}};
}

}  // namespace

TEST_CASE("stem conv with a fused max pool equals the conv then the pool", "[kernels][stem]") {
  // Odd sizes (the last window cut by the border); a map small enough for one band of pooled
  // rows and one split into bands over two threads; every variant.
  const TwoThreads two;
  for (const ConvStemShape s :
       {ConvStemShape{27, 35, 3, 40, 7, 2, 3, 1}, ConvStemShape{150, 61, 3, 40, 7, 2, 3, 1}}) {
    const int oh = s.out_h(), ow = s.out_w();
    const auto x = uniform_floats(size_t(s.in_h) * s.in_w * 3, 31);
    const auto w = uniform_floats(size_t(s.out_c) * 147, 32, -0.2f, 0.2f);
    const auto b = uniform_floats(size_t(s.out_c), 33);
    for (const StemMaxPool& pool : test_pools(oh, ow)) {
      INFO(s.in_h << "x" << s.in_w << " pool " << pool.kernel << " pad " << pool.pad);
      test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
        struct Use {
          const ConvStemVariant* prev;
          ~Use() { conv_stem_use_variant(prev); }
        } use{conv_stem_use_variant(&v)};
        std::vector<float> full(size_t(oh) * ow * s.out_c);
        ConvStemEpilogue e;
        e.bias = b.data();
        e.relu = true;
        e.out_f32 = full.data();
        conv_stem_forward(s, x.data(), w.data(), e);
        std::vector<float> pooled(size_t(pool.out_h) * pool.out_w * s.out_c, -1.0f);
        e.out_f32 = pooled.data();
        e.pool = pool;
        conv_stem_forward(s, x.data(), w.data(), e);
        CHECK(pooled == maxpool_ref(full, oh, ow, s.out_c, pool));
      });
    }
  }
}

TEST_CASE("stem conv with pooled packed codes equals its codes pooled and packed",
          "[kernels][stem]") {
  // The stem head's codes (out_q) then maxpool_pack_q, against out_packed, which pools a few code
  // rows at a time: one band and several, channel tails (40, 70 = 64 + 6), 1, 2 and 4 bits.
  const TwoThreads two;
  uint32_t seed = 41;
  for (const ConvStemShape s :
       {ConvStemShape{27, 35, 3, 70, 7, 2, 3, 1}, ConvStemShape{150, 61, 3, 40, 7, 2, 3, 1}}) {
    const int oh = s.out_h(), ow = s.out_w(), oc = s.out_c;
    const auto x = uniform_floats(size_t(s.in_h) * s.in_w * 3, seed++);
    const auto w = uniform_floats(size_t(oc) * 147, seed++, -0.2f, 0.2f);
    const auto b = uniform_floats(size_t(oc), seed++);
    const auto mul = uniform_floats(size_t(oc), seed++, 0.1f, 0.6f);
    const auto add = uniform_floats(size_t(oc), seed++, 0.2f, 0.8f);
    for (const StemMaxPool& pool : test_pools(oh, ow))
      for (int bits : {1, 2, 4}) {
        INFO(s.in_h << "x" << s.in_w << " oc " << oc << " pool " << pool.kernel << " bits "
                    << bits);
        test::for_each_variant(conv_stem_variants(), [&](const ConvStemVariant& v) {
          struct Use {
            const ConvStemVariant* prev;
            ~Use() { conv_stem_use_variant(prev); }
          } use{conv_stem_use_variant(&v)};
          std::vector<uint8_t> codes(size_t(oh) * ow * oc);
          ConvStemEpilogue e;
          e.bias = b.data();
          e.relu = true;
          e.mul = mul.data();
          e.add = add.data();
          e.bits = bits;
          e.out_q = codes.data();
          conv_stem_forward(s, x.data(), w.data(), e);
          const size_t words = size_t(pool.out_h) * pool.out_w * bits * bit_words(oc);
          std::vector<uint64_t> expect(words), got(words + 1, ~0ull);  // + a guard word
          maxpool_pack_q(codes.data(), oh, ow, oc, pool.kernel, pool.stride, pool.pad, bits,
                         expect.data(), pool.out_h, pool.out_w);
          e.out_q = nullptr;
          e.out_packed = got.data();
          e.pool = pool;
          conv_stem_forward(s, x.data(), w.data(), e);
          CHECK(std::vector<uint64_t>(got.begin(), got.end() - 1) == expect);
          CHECK(got.back() == ~0ull);
          CHECK(std::count(codes.begin(), codes.end(), uint8_t((1 << bits) - 1)) > 0);
        });
      }
  }
}

TEST_CASE("stem conv: the fused pool with a dilation is a clear error", "[kernels][stem]") {
  const ConvStemShape s{20, 20, 3, 16, 3, 2, 2, 2};
  const auto x = uniform_floats(size_t(20) * 20 * 3, 51);
  const auto w = uniform_floats(size_t(16) * 27, 52);
  const std::vector<float> b(16, 0.0f);
  std::vector<uint64_t> packed(size_t(5) * 5 * 2);
  ConvStemEpilogue e;
  e.bias = b.data();
  e.bits = 2;
  e.pool = {3, 2, 1, 5, 5};
  e.out_packed = packed.data();
  CHECK_THROWS_WITH(conv_stem_forward(s, x.data(), w.data(), e),
                    Catch::Contains("fused max pool needs dilation 1, got 2"));
}
