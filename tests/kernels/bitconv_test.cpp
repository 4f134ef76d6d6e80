// Bit packing and bit-serial convolution: bit order pinned by one-hot inputs, packing round trips,
// the reference equals a float conv of the dequantized values, and every ISA variant equals the
// reference exactly on odd shapes (C not a multiple of 64, borders, strides, dilations, 1x1/3x3).
#include "kernels/bitconv.h"

#include <omp.h>

#include <algorithm>
#include <bit>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/act_pack.h"
#include "kernels/bitpack.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

using namespace bfcn;

namespace {

std::vector<uint8_t> random_levels(Rng& rng, size_t n, int bits) {
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = uint8_t(rng.next_u64() % (uint64_t(1) << bits));
  return v;
}

// Integer dot I = sum (2p - (2^M-1)) * q over the window (zero padding), q [H][W][C], p
// [OC][taps][C].
std::vector<int32_t> direct_int_conv(const BitConvShape& s, const std::vector<uint8_t>& q,
                                     const std::vector<uint8_t>& p) {
  const int oh = s.out_h(), ow = s.out_w(), wmax = (1 << s.w_bits) - 1;
  std::vector<int32_t> out(size_t(oh) * ow * s.out_c, 0);
  for (int oy = 0; oy < oh; ++oy)
    for (int ox = 0; ox < ow; ++ox)
      for (int o = 0; o < s.out_c; ++o) {
        int32_t sum = 0;
        for (int ky = 0; ky < s.kh; ++ky)
          for (int kx = 0; kx < s.kw; ++kx) {
            const int iy = oy * s.stride - s.pad + ky * s.dilation;
            const int ix = ox * s.stride - s.pad + kx * s.dilation;
            if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
            for (int c = 0; c < s.in_c; ++c) {
              const int wv = 2 * p[(size_t(o) * s.taps() + ky * s.kw + kx) * s.in_c + c] - wmax;
              sum += wv * q[(size_t(iy) * s.in_w + ix) * s.in_c + c];
            }
          }
        out[(size_t(oy) * ow + ox) * s.out_c + o] = sum;
      }
  return out;
}

struct Packed {
  std::vector<uint8_t> q, p;
  std::vector<uint64_t> in, w;
};

Packed make_case(const BitConvShape& s, Rng& rng) {
  Packed c;
  c.q = random_levels(rng, size_t(s.in_h) * s.in_w * s.in_c, s.a_bits);
  c.p = random_levels(rng, size_t(s.out_c) * s.taps() * s.in_c, s.w_bits);
  c.in.resize(size_t(s.in_h) * s.in_w * s.a_bits * bit_words(s.in_c));
  pack_act_q(c.q.data(), int64_t(s.in_h) * s.in_w, s.in_c, s.a_bits, c.in.data());
  c.w.resize(size_t(s.out_c) * s.w_bits * s.row_words());
  pack_weights_q(c.p.data(), s.out_c, s.taps(), s.in_c, s.w_bits, c.w.data());
  return c;
}

std::vector<int32_t> run_int(const BitConvShape& s, const Packed& c, const BgemmVariant& v) {
  std::vector<int32_t> out(size_t(s.out_h()) * s.out_w() * s.out_c, -1);
  bitconv_int32(s, c.in.data(), c.w.data(), out.data(), v);
  return out;
}

std::vector<BitConvShape> sweep_shapes() {
  std::vector<BitConvShape> shapes;
  const int channels[] = {1, 3, 63, 64, 65, 130};
  const int wa[][2] = {{1, 1}, {1, 2}, {1, 3}, {1, 4}, {2, 2}, {2, 1}, {3, 2}};
  int i = 0;
  for (int c : channels)
    for (int k : {1, 3})
      for (int stride : {1, 2})
        for (int dil : {1, 2}) {
          if (k == 1 && dil == 2) continue;
          BitConvShape s;
          s.in_h = 5 + (i % 4);
          s.in_w = 7 - (i % 3);
          s.in_c = c;
          s.out_c = 1 + (i * 7) % 11;
          s.kh = s.kw = k;
          s.stride = stride;
          s.dilation = dil;
          s.pad = k == 3 ? dil : 0;
          s.w_bits = wa[i % 7][0];
          s.a_bits = wa[i % 7][1];
          shapes.push_back(s);
          ++i;
        }
  return shapes;
}

std::string describe(const BitConvShape& s) {
  return "HxWxC " + std::to_string(s.in_h) + "x" + std::to_string(s.in_w) + "x" +
         std::to_string(s.in_c) + " oc " + std::to_string(s.out_c) + " k" + std::to_string(s.kh) +
         " s" + std::to_string(s.stride) + " d" + std::to_string(s.dilation) + " W" +
         std::to_string(s.w_bits) + "A" + std::to_string(s.a_bits);
}

}  // namespace

TEST_CASE("activation bit order is pinned by one-hot inputs", "[runtime][bitpack]") {
  const int c = 130, bits = 2;
  for (int ch : {0, 1, 63, 64, 65, 129})
    for (int level : {1, 2, 3}) {
      std::vector<uint8_t> q(c, 0);
      q[size_t(ch)] = uint8_t(level);
      std::vector<uint64_t> packed(size_t(bits) * bit_words(c), 0xdeadbeef);
      pack_act_q(q.data(), 1, c, bits, packed.data());
      for (int k = 0; k < bits; ++k)
        for (int wi = 0; wi < bit_words(c); ++wi) {
          const uint64_t expect =
              (((level >> k) & 1) && wi == ch / 64) ? uint64_t{1} << (ch % 64) : 0;
          CHECK(packed[size_t(k) * bit_words(c) + wi] == expect);
        }
    }
}

TEST_CASE("1-bit weights: a set bit is +1", "[runtime][bitpack]") {
  // One input channel at level 3 (a=1 for K=2) against a one-hot weight: only the set bit is +1.
  BitConvShape s;
  s.in_h = s.in_w = 1;
  s.in_c = 70;
  s.out_c = 1;
  s.kh = s.kw = 1;
  s.pad = 0;
  s.w_bits = 1;
  s.a_bits = 2;
  std::vector<uint8_t> q(70, 0), p(70, 0);
  q[66] = 3;
  p[66] = 1;
  std::vector<uint64_t> in(2 * 2), w(size_t(s.row_words()));
  pack_act_q(q.data(), 1, 70, 2, in.data());
  pack_weights_q(p.data(), 1, 1, 70, 1, w.data());
  CHECK(w[1] == uint64_t{1} << 2);
  CHECK(w[0] == 0);
  int32_t out = 0;
  bitconv_int32(s, in.data(), w.data(), &out, bgemm_variants()[0]);
  CHECK(out == 3);  // +1 * 3
  p[66] = 0;
  pack_weights_q(p.data(), 1, 1, 70, 1, w.data());
  bitconv_int32(s, in.data(), w.data(), &out, bgemm_variants()[0]);
  CHECK(out == -3);  // -1 * 3
}

TEST_CASE("activation packing round trips and quantize_pack matches", "[runtime][bitpack]") {
  Rng rng(11);
  for (int bits : {1, 2, 3, 4})
    for (int c : {1, 63, 64, 65, 130}) {
      const int64_t pixels = 7;
      auto q = random_levels(rng, size_t(pixels) * c, bits);
      std::vector<uint64_t> packed(size_t(pixels) * bits * bit_words(c));
      pack_act_q(q.data(), pixels, c, bits, packed.data());
      std::vector<uint8_t> back(q.size());
      unpack_act_q(packed.data(), pixels, c, bits, back.data());
      CHECK(back == q);
      // Float values exactly on the levels (and outside [0,1]) quantize back to the same packing.
      std::vector<float> x(q.size());
      const float n = float((1 << bits) - 1);
      for (size_t i = 0; i < q.size(); ++i) x[i] = float(q[i]) / n;
      x[0] = -0.5f;
      q[0] = 0;
      if (x.size() > 1) {
        x[1] = 3.0f;
        q[1] = uint8_t(n);
      }
      pack_act_q(q.data(), pixels, c, bits, packed.data());
      std::vector<uint64_t> packed2(packed.size(), ~uint64_t{0});
      quantize_pack_act(x.data(), pixels, c, bits, nullptr, nullptr, packed2.data());
      CHECK(packed2 == packed);
    }
}

TEST_CASE("quantize_pack_act of every variant equals the scalar one bit for bit",
          "[runtime][bitpack]") {
  Rng rng(31);
  const float special[] = {0.0f,        -0.0f,       1.0f,    0.5f / 3.0f, 1.5f / 3.0f,
                           2.5f / 3.0f, 0.5f / 15.f, -1e-30f, 1e30f,       NAN,
                           INFINITY,    -INFINITY,   0.5f,    0.25f,       0.75f};
  for (int c : {1, 3, 8, 63, 64, 65, 130})
    for (int bits : {1, 2, 3, 4, 8})
      for (int affine = 0; affine < 4; ++affine) {
        INFO("c " << c << " bits " << bits << " affine " << affine);
        const int64_t pixels = 5;
        std::vector<float> x(static_cast<size_t>(pixels * c)), mul(static_cast<size_t>(c)),
            add(static_cast<size_t>(c));
        for (size_t i = 0; i < x.size(); ++i)
          x[i] = i % 3 == 0 ? special[i % 15] : rng.uniform(-0.3f, 1.3f);
        for (int ch = 0; ch < c; ++ch) {
          mul[size_t(ch)] = rng.uniform(0.5f, 1.5f);
          add[size_t(ch)] = rng.uniform(-0.2f, 0.2f);
        }
        const float* m = affine & 1 ? mul.data() : nullptr;
        const float* a = affine & 2 ? add.data() : nullptr;
        std::vector<uint64_t> ref(size_t(pixels) * bits * bit_words(c), 1);
        quantize_pack_act__ref(x.data(), pixels, c, bits, m, a, ref.data());
        test::for_each_variant(bitpack_variants(), [&](const BitpackVariant& v) {
          std::vector<uint64_t> got(ref.size(), 2);
          v.quantize_pack_act(x.data(), pixels, c, bits, m, a, got.data());
          REQUIRE(got == ref);
        });
      }
}

TEST_CASE("bitpack, bit-conv and activation-count variant tables: ref first, by ISA level",
          "[runtime][bitpack]") {
  test::check_variant_table(bitpack_variants(), best_variant(bitpack_variants()));
  test::check_variant_table(bgemm_variants(), bgemm_active());
  test::check_variant_table(act_count_variants(), best_variant(act_count_variants()));
}

TEST_CASE("activation counts of every variant equal the popcount definition",
          "[kernels][bitconv]") {
  std::mt19937_64 gen(17);
  for (int cw : {1, 2, 3, 4, 8, 9})
    for (int kb : {1, 2, 4}) {
      INFO("cw " << cw << " kb " << kb);
      const int64_t pixels = 37;
      std::vector<uint64_t> in(size_t(pixels) * kb * cw);
      for (uint64_t& x : in) x = gen();
      in[0] = ~uint64_t{0};  // a full word
      in[1 % in.size()] = 0;
      std::vector<int32_t> want(static_cast<size_t>(pixels));
      for (int64_t p = 0; p < pixels; ++p) {
        int32_t c = 0;
        for (int k = 0; k < kb; ++k)
          for (int i = 0; i < cw; ++i)
            c += int32_t(std::popcount(in[size_t((p * kb + k) * cw + i)])) << k;
        want[size_t(p)] = c;
      }
      test::for_each_variant(act_count_variants(), [&](const ActCountVariant& v) {
        std::vector<int32_t> got(static_cast<size_t>(pixels), -1);
        v.count(in.data(), 0, 20, kb, cw, got.data());  // two ranges, as the driver's chunks
        v.count(in.data(), 20, pixels, kb, cw, got.data());
        CHECK(got == want);
      });
    }
}

TEST_CASE("reference bit-serial conv equals the direct integer conv", "[kernels][bitconv]") {
  Rng rng(3);
  for (const BitConvShape& s : sweep_shapes()) {
    INFO(describe(s));
    const Packed c = make_case(s, rng);
    REQUIRE(run_int(s, c, bgemm_variants()[0]) == direct_int_conv(s, c.q, c.p));
  }
}

TEST_CASE("reference equals a float conv of the dequantized values", "[kernels][bitconv]") {
  Rng rng(5);
  BitConvShape s;
  s.in_h = 9;
  s.in_w = 6;
  s.in_c = 65;
  s.out_c = 5;
  for (int wb : {1, 2}) {
    s.w_bits = wb;
    s.a_bits = 2;
    const Packed c = make_case(s, rng);
    const auto ints = run_int(s, c, bgemm_variants()[0]);
    const float n = 3.0f, wn = float((1 << wb) - 1);
    std::vector<float> mul(size_t(s.out_c), 1.0f / (wn * n)), add(size_t(s.out_c), 0.0f);
    std::vector<float> y(ints.size());
    BitConvEpilogue e;
    e.mul = mul.data();
    e.add = add.data();
    e.out_f32 = y.data();
    bitconv_forward(s, c.in.data(), c.w.data(), e, bgemm_variants()[0]);
    double max_err = 0;
    for (int oy = 0; oy < s.out_h(); ++oy)
      for (int ox = 0; ox < s.out_w(); ++ox)
        for (int o = 0; o < s.out_c; ++o) {
          double ref = 0;
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy - 1 + ky, ix = ox - 1 + kx;
              if (iy < 0 || iy >= s.in_h || ix < 0 || ix >= s.in_w) continue;
              for (int ch = 0; ch < s.in_c; ++ch) {
                const double wv =
                    (2.0 * c.p[(size_t(o) * 9 + ky * 3 + kx) * s.in_c + ch] - wn) / wn;
                ref += wv * c.q[(size_t(iy) * s.in_w + ix) * s.in_c + ch] / n;
              }
            }
          max_err =
              std::max(max_err, std::abs(ref - y[(size_t(oy) * s.out_w() + ox) * s.out_c + o]));
        }
    CHECK(max_err < 1e-4);
  }
}

TEST_CASE("every bgemm variant equals the reference exactly", "[kernels][bitconv]") {
  int simd_variants = 0;  // the reference against itself proves nothing: skip when none ran
  test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
    simd_variants += v.isa != Isa::ref;
    Rng rng(7);
    for (const BitConvShape& s : sweep_shapes()) {
      INFO(describe(s));
      const Packed c = make_case(s, rng);
      REQUIRE(run_int(s, c, v) == run_int(s, c, bgemm_variants()[0]));
    }
    // A wide layer with a long row (several flushes of the byte counters).
    BitConvShape s;
    s.in_h = 6;
    s.in_w = 5;
    s.in_c = 512;
    s.out_c = 9;
    for (int wb : {1, 2})
      for (int ab : {1, 2, 4}) {
        s.w_bits = wb;
        s.a_bits = ab;
        INFO(describe(s));
        const Packed c = make_case(s, rng);
        REQUIRE(run_int(s, c, v) == run_int(s, c, bgemm_variants()[0]));
      }
  });
  if (simd_variants == 0)
    BFCN_SKIP_ISA("no SIMD bgemm variant runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("every variant equals the reference on pixel-tile and channel-block edges",
          "[kernels][bitconv]") {
  // bgemm__avx2_ocv tiles 4 output pixels x 8 output channels: widths leave 0..3 pixels over,
  // channel counts fill 1, 2 or 8 blocks exactly or with a tail; K up to 4 planes, M up to 2.
  struct Case {
    int in_c, out_c, in_w, kernel, stride, dil, wb, ab;
  };
  const Case cases[] = {
      {64, 8, 13, 3, 1, 1, 1, 2},   {64, 16, 12, 3, 1, 1, 2, 2}, {64, 17, 11, 3, 1, 1, 1, 1},
      {130, 64, 10, 3, 1, 2, 1, 2}, {63, 24, 9, 3, 2, 1, 2, 4},  {65, 9, 14, 1, 1, 1, 2, 1},
      {3, 40, 13, 3, 1, 1, 1, 4},   {256, 33, 6, 3, 1, 1, 2, 3}, {64, 20, 13, 3, 3, 1, 1, 2},
      {70, 33, 11, 1, 3, 1, 2, 2},  // stride 3: the implicit-im2col kernels' gather fallback
  };
  Rng rng(21);
  for (const Case& k : cases) {
    BitConvShape s;
    s.in_h = 4;
    s.in_w = k.in_w;
    s.in_c = k.in_c;
    s.out_c = k.out_c;
    s.kh = s.kw = k.kernel;
    s.stride = k.stride;
    s.dilation = k.dil;
    s.pad = k.kernel == 3 ? k.dil : 0;
    s.w_bits = k.wb;
    s.a_bits = k.ab;
    INFO(describe(s));
    const Packed c = make_case(s, rng);
    const auto ref = run_int(s, c, bgemm_variants()[0]);
    REQUIRE(ref == direct_int_conv(s, c.q, c.p));
    test::for_each_variant(bgemm_variants(),
                           [&](const BgemmVariant& v) { REQUIRE(run_int(s, c, v) == ref); });
  }
}

TEST_CASE("a packed residual equals its dequantized float residual exactly", "[kernels][bitconv]") {
  Rng rng(23);
  BitConvShape s;
  s.in_h = 6;
  s.in_w = 9;
  s.in_c = 70;
  s.out_c = 70;
  const Packed c = make_case(s, rng);
  const int64_t pix = int64_t(s.out_h()) * s.out_w();
  std::vector<float> mul(size_t(s.out_c)), add(size_t(s.out_c));
  for (int o = 0; o < s.out_c; ++o) {
    mul[size_t(o)] = rng.uniform(-0.2f, 0.2f) / float(s.in_c);
    add[size_t(o)] = rng.uniform(-0.5f, 0.5f);
  }
  for (int rbits : {1, 2}) {
    // the block input as the residual: codes -> packed, and its float view q / (2^bits-1)
    const std::vector<uint8_t> rq = random_levels(rng, size_t(pix) * s.out_c, rbits);
    std::vector<uint64_t> rp(size_t(pix) * rbits * bit_words(s.out_c));
    pack_act_q(rq.data(), pix, s.out_c, rbits, rp.data());
    std::vector<float> rf(size_t(pix) * s.out_c);
    for (size_t i = 0; i < rf.size(); ++i) rf[i] = float(rq[i]) / float((1 << rbits) - 1);
    test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
      INFO(std::string(v.name) + " residual bits " + std::to_string(rbits));
      for (int out_bits : {0, 1, 2}) {  // float output and fused re-quantization
        std::vector<float> yf(size_t(pix) * s.out_c, -1), yp(yf.size(), -2);
        std::vector<uint64_t> qf(size_t(pix) * std::max(1, out_bits) * bit_words(s.out_c), 1),
            qp(qf.size(), 2);
        BitConvEpilogue e;
        e.mul = mul.data();
        e.add = add.data();
        e.out_bits = out_bits;
        e.residual = rf.data();
        e.out_f32 = out_bits ? nullptr : yf.data();
        e.out_packed = out_bits ? qf.data() : nullptr;
        bitconv_forward(s, c.in.data(), c.w.data(), e, v);
        e.residual = nullptr;
        e.residual_packed = rp.data();
        e.residual_bits = rbits;
        e.out_f32 = out_bits ? nullptr : yp.data();
        e.out_packed = out_bits ? qp.data() : nullptr;
        bitconv_forward(s, c.in.data(), c.w.data(), e, v);
        if (out_bits)  // the buffers start different, so both runs must have written them
          CHECK(qp == qf);
        else
          CHECK(yp == yf);
      }
    });
  }
}

TEST_CASE("a residual conv computed in the epilogue equals its float output as the residual",
          "[kernels][bitconv]") {
  // A ResNet block's conv2 (3x3, stride 1) whose residual is the downsample (1x1, stride 2) of the
  // block input: the downsample run whole to floats, then read as the residual, against the
  // downsample's rows computed inside conv2's epilogue. Odd sizes (partial pixel tiles and
  // channel words), 1-4 words per channel plane, each consumer variant with the downsample
  // prepared for itself and for the reference kernel.
  struct Case {
    int h, w, in_c, mid_c, wb, ab;
  };
  const Case cases[] = {{13, 11, 70, 70, 1, 2},
                        {16, 16, 64, 128, 1, 2},
                        {9, 7, 130, 65, 2, 2},
                        {12, 10, 256, 64, 1, 1},
                        {5, 9, 3, 17, 1, 2}};
  Rng rng(31);
  for (const Case& k : cases) {
    BitConvShape d;  // the downsample
    d.in_h = k.h;
    d.in_w = k.w;
    d.in_c = k.in_c;
    d.out_c = k.mid_c;
    d.kh = d.kw = 1;
    d.pad = 0;
    d.stride = 2;
    d.w_bits = k.wb;
    d.a_bits = k.ab;
    BitConvShape s;  // conv2: its input is conv1's output, of the downsample's size
    s.in_h = d.out_h();
    s.in_w = d.out_w();
    s.in_c = s.out_c = k.mid_c;
    s.kh = s.kw = 3;
    s.pad = 1;
    s.w_bits = k.wb;
    s.a_bits = k.ab;
    const Packed cd = make_case(d, rng), c = make_case(s, rng);
    const int64_t pix = int64_t(s.out_h()) * s.out_w();
    std::vector<float> mul(size_t(s.out_c)), add(size_t(s.out_c)), dmul(mul.size()),
        dadd(mul.size());
    for (int o = 0; o < s.out_c; ++o) {
      mul[size_t(o)] = rng.uniform(-0.3f, 0.3f) / float(s.in_c);
      add[size_t(o)] = rng.uniform(-0.2f, 0.8f);
      dmul[size_t(o)] = rng.uniform(-0.3f, 0.3f) / float(d.in_c);
      dadd[size_t(o)] = rng.uniform(-0.5f, 0.5f);
    }
    test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
      for (const BgemmVariant* dv : {&v, &bgemm_variants()[0]}) {
        INFO("case " << describe(d) << " -> " << describe(s) << " consumer " << v.name
                     << " downsample " << dv->name);
        const PreparedBitWeights dw = prepare_bitconv_weights(d, cd.w.data(), *dv);
        std::vector<float> rf(size_t(pix) * s.out_c, -7.0f);
        BitConvEpilogue de;
        de.mul = dmul.data();
        de.add = dadd.data();
        de.out_f32 = rf.data();
        bitconv_forward(d, cd.in.data(), dw, de);
        ResidualConv rc;
        rc.shape = d;
        rc.in = cd.in.data();
        rc.weights = &dw;
        rc.mul = dmul.data();
        rc.add = dadd.data();
        for (int out_bits : {0, 1, 2}) {
          std::vector<float> yf(size_t(pix) * s.out_c, -1), yc(yf.size(), -2);
          std::vector<uint64_t> qf(size_t(pix) * std::max(1, out_bits) * bit_words(s.out_c), 1),
              qc(qf.size(), 2);
          BitConvEpilogue e;
          e.mul = mul.data();
          e.add = add.data();
          e.out_bits = out_bits;
          e.relu = out_bits == 0;
          e.residual = rf.data();
          e.out_f32 = out_bits ? nullptr : yf.data();
          e.out_packed = out_bits ? qf.data() : nullptr;
          bitconv_forward(s, c.in.data(), c.w.data(), e, v);
          e.residual = nullptr;
          e.residual_conv = &rc;
          e.out_f32 = out_bits ? nullptr : yc.data();
          e.out_packed = out_bits ? qc.data() : nullptr;
          bitconv_forward(s, c.in.data(), c.w.data(), e, v);
          if (out_bits)  // the buffers start different, so both runs must have written them
            CHECK(qc == qf);
          else
            CHECK(std::memcmp(yc.data(), yf.data(), yf.size() * sizeof(float)) == 0);
        }
      }
    });
  }
}

TEST_CASE("packed epilogue re-quantizes like quantize_pack_act", "[kernels][bitconv]") {
  Rng rng(9);
  BitConvShape s;
  s.in_h = 7;
  s.in_w = 8;
  s.in_c = 96;
  s.out_c = 70;
  s.stride = 2;
  const Packed c = make_case(s, rng);
  const int64_t pix = int64_t(s.out_h()) * s.out_w();
  std::vector<float> mul(size_t(s.out_c)), add(size_t(s.out_c));
  for (int o = 0; o < s.out_c; ++o) {
    mul[size_t(o)] = 0.01f * float(1 + o % 5) * (o % 3 == 0 ? -1.0f : 1.0f);
    add[size_t(o)] = 0.5f;
  }
  std::vector<float> y(size_t(pix) * s.out_c);
  BitConvEpilogue ef;
  ef.mul = mul.data();
  ef.add = add.data();
  ef.out_f32 = y.data();
  bitconv_forward(s, c.in.data(), c.w.data(), ef, bgemm_active());
  std::vector<uint64_t> expect(size_t(pix) * 2 * bit_words(s.out_c));
  quantize_pack_act(y.data(), pix, s.out_c, 2, nullptr, nullptr, expect.data());
  std::vector<uint64_t> got(expect.size(), ~uint64_t{0});
  BitConvEpilogue ep;
  ep.mul = mul.data();
  ep.add = add.data();
  ep.out_packed = got.data();
  ep.out_bits = 2;
  bitconv_forward(s, c.in.data(), c.w.data(), ep, bgemm_active());
  CHECK(got == expect);
  // The levels actually spread (the test would be vacuous if everything clipped to one level).
  std::vector<uint8_t> q(size_t(pix) * s.out_c);
  unpack_act_q(got.data(), pix, s.out_c, 2, q.data());
  int seen[4] = {0, 0, 0, 0};
  for (uint8_t v : q) seen[v]++;
  for (int l = 0; l < 4; ++l) CHECK(seen[l] > 0);
}

namespace {

// Per-channel multipliers, offsets uniform in [add_lo, add_hi) and a float residual for shape s,
// drawn in one fixed order, for the epilogue comparisons.
struct RandomEpilogue {
  std::vector<float> mul, add, res;
};
RandomEpilogue random_epilogue(const BitConvShape& s, Rng& rng, float add_lo, float add_hi) {
  const size_t pix = size_t(s.out_h()) * size_t(s.out_w());
  RandomEpilogue r{std::vector<float>(size_t(s.out_c)), std::vector<float>(size_t(s.out_c)),
                   std::vector<float>(pix * size_t(s.out_c))};
  for (size_t o = 0; o < size_t(s.out_c); ++o) {
    r.mul[o] = rng.uniform(-0.2f, 0.2f) / float(s.in_c);
    r.add[o] = rng.uniform(add_lo, add_hi);
  }
  for (float& x : r.res) x = rng.uniform(-0.3f, 0.3f);
  return r;
}

}  // namespace

TEST_CASE("every variant's packed epilogue equals the reference exactly", "[kernels][bitconv]") {
  Rng rng(13);
  int simd_variants = 0;
  test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
    simd_variants += v.isa != Isa::ref;
    for (const BitConvShape& s : sweep_shapes()) {
      INFO(describe(s));
      const Packed c = make_case(s, rng);
      const int64_t pix = int64_t(s.out_h()) * s.out_w();
      auto [mul, add, res] = random_epilogue(s, rng, 0.2f, 0.8f);
      mul[0] = 0.0f;  // a constant channel (the threshold epilogue's special case)
      // Without a residual the SIMD variants take the integer-threshold epilogue, with one the
      // float one: both against the reference's float epilogue.
      for (int bits : {1, 2, 3})
        for (bool with_res : {false, true}) {
          std::vector<uint64_t> ref(size_t(pix) * bits * bit_words(s.out_c), 1), got(ref.size(), 2);
          BitConvEpilogue e;
          e.mul = mul.data();
          e.add = add.data();
          e.residual = with_res ? res.data() : nullptr;  // fused residual add before the quantizer
          e.out_bits = bits;
          e.out_packed = ref.data();
          bitconv_forward(s, c.in.data(), c.w.data(), e, bgemm_variants()[0]);
          e.out_packed = got.data();
          bitconv_forward(s, c.in.data(), c.w.data(), e, v);
          REQUIRE(got == ref);
        }
    }
  });
  if (simd_variants == 0)
    BFCN_SKIP_ISA("no SIMD bgemm variant runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("every variant's float epilogue equals the reference bit for bit", "[kernels][bitconv]") {
  Rng rng(19);
  int simd_variants = 0;
  test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
    simd_variants += v.isa != Isa::ref;
    for (const BitConvShape& s : sweep_shapes()) {
      INFO(describe(s));
      const Packed c = make_case(s, rng);
      const int64_t pix = int64_t(s.out_h()) * s.out_w();
      // offsets of both signs: relu must clip some
      const auto [mul, add, res] = random_epilogue(s, rng, -0.5f, 0.5f);
      for (bool relu : {false, true})
        for (bool with_res : {false, true}) {
          std::vector<float> ref(size_t(pix) * s.out_c, 1.0f), got(ref.size(), 2.0f);
          BitConvEpilogue e;
          e.mul = mul.data();
          e.add = add.data();
          e.relu = relu;
          e.residual = with_res ? res.data() : nullptr;
          e.out_f32 = ref.data();
          bitconv_forward(s, c.in.data(), c.w.data(), e, bgemm_variants()[0]);
          e.out_f32 = got.data();
          bitconv_forward(s, c.in.data(), c.w.data(), e, v);
          INFO("relu " << relu << " residual " << with_res);
          REQUIRE(std::memcmp(got.data(), ref.data(), sizeof(float) * ref.size()) == 0);
        }
    }
  });
  if (simd_variants == 0)
    BFCN_SKIP_ISA("no SIMD bgemm variant runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("float epilogues: the reference's two roundings, and NaN and -0 with and without ReLU",
          "[kernels][bitconv]") {
  Rng rng(23);
  int simd = 0;
  test::for_each_variant(
      bgemm_variants(), [](const BgemmVariant& v) { return v.dequant != nullptr; },
      [&](const BgemmVariant& v) {
        ++simd;
        for (int n : {1, 15, 16, 17, 64, 70, 130}) {
          std::vector<int32_t> p(static_cast<size_t>(n));
          std::vector<float> mul(static_cast<size_t>(n)), add(static_cast<size_t>(n)),
              res(static_cast<size_t>(n));
          for (int o = 0; o < n; ++o) {
            p[size_t(o)] = int32_t(rng.next_u64() % 4000) - 1000;
            // values where an FMA would round differently from a multiply then an add
            mul[size_t(o)] = 1.0f + rng.uniform(0.0f, 1.0f) * 1e-3f;
            add[size_t(o)] = -float(2 * p[size_t(o)] - 7) * mul[size_t(o)];
            res[size_t(o)] = rng.uniform(-1.0f, 1.0f);
          }
          add[0] = std::numeric_limits<float>::quiet_NaN();  // NaN: kept, or 0 after the ReLU
          if (n > 1) {
            mul[1] = -0.0f;  // -0 * I + -0: a zero of either sign, +0 after the ReLU
            add[1] = -0.0f;
          }
          for (bool relu : {false, true})
            for (bool with_res : {false, true}) {
              if (n > 1 && with_res) res[1] = -0.0f;
              std::vector<float> want(static_cast<size_t>(n), 5.0f), got(want.size(), 6.0f);
              dequant_f32__ref(p.data(), n, 7, mul.data(), add.data(),
                               with_res ? res.data() : nullptr, relu, want.data());
              // the reference's ReLU is the training engine's v > 0 ? v : 0
              CHECK(std::isnan(want[0]) == !relu);
              if (relu) CHECK(std::bit_cast<uint32_t>(want[0]) == 0u);
              if (relu && n > 1) CHECK(std::bit_cast<uint32_t>(want[1]) == 0u);
              v.dequant(p.data(), n, 7, mul.data(), add.data(), with_res ? res.data() : nullptr,
                        relu, got.data());
              INFO("n " << n << " relu " << relu << " residual " << with_res);
              REQUIRE(std::memcmp(got.data(), want.data(), sizeof(float) * size_t(n)) == 0);
            }
        }
      });
  if (simd == 0)
    BFCN_SKIP_ISA("no vector float epilogue runs on this CPU (has: " + cpu_features_string() + ")");
}

TEST_CASE("packed epilogues with a residual conv's dot equal the float residual's exactly",
          "[kernels][bitconv]") {
  // RequantResConvFn against requant_pack__ref with res = dequant_f32__ref of the residual's dot:
  // channel tails, values where an FMA would round differently, sums at the level boundaries.
  Rng rng(29);
  int simd = 0;
  test::for_each_variant(
      bgemm_variants(), [](const BgemmVariant& v) { return v.requant_res_conv != nullptr; },
      [&](const BgemmVariant& v) {
        ++simd;
        for (int n : {1, 15, 16, 17, 64, 70, 130})
          for (int bits : {1, 2}) {
            std::vector<int32_t> p(static_cast<size_t>(n)), rp(p.size());
            std::vector<float> mul(p.size()), add(p.size()), rmul(p.size()), radd(p.size()),
                res(p.size());
            for (int o = 0; o < n; ++o) {
              p[size_t(o)] = int32_t(rng.next_u64() % 400) - 100;
              rp[size_t(o)] = int32_t(rng.next_u64() % 400) - 100;
              mul[size_t(o)] = (1.0f + rng.uniform(0.0f, 1.0f) * 1e-3f) / 300.0f;
              rmul[size_t(o)] = (1.0f + rng.uniform(0.0f, 1.0f) * 1e-3f) / 300.0f;
              add[size_t(o)] = rng.uniform(-0.3f, 0.7f);
              radd[size_t(o)] = rng.uniform(-0.3f, 0.3f);
            }
            const int32_t corr = 5, rcorr = 9;
            dequant_f32__ref(rp.data(), n, rcorr, rmul.data(), radd.data(), nullptr, false,
                             res.data());
            const int cw = bit_words(n);
            std::vector<uint64_t> want(size_t(bits) * cw, 1), got(want.size(), 2);
            requant_pack__ref(p.data(), n, corr, mul.data(), add.data(), res.data(), bits,
                              want.data());
            v.requant_res_conv(p.data(), n, corr, mul.data(), add.data(), rp.data(), rcorr,
                               rmul.data(), radd.data(), bits, got.data());
            INFO("n " << n << " bits " << bits);
            REQUIRE(got == want);
          }
      });
  if (simd == 0)
    BFCN_SKIP_ISA("no residual-conv epilogue runs on this CPU (has: " + cpu_features_string() +
                  ")");
}

TEST_CASE("every variant equals the reference on the ResNet-18/34 FCN-8s layer shapes",
          "[kernels][bitconv]") {
  // The trunk's bit convs with their real channel counts at a 512x512 input's sizes (layer1 at
  // 128x128) or odd sizes: 3x3 stride 1 and 2, the 1x1 stride-2 downsample convs, plus channel
  // counts that are no multiple of 64 or of a channel block; W1A1, W1A2 and W2A2.
  struct Case {
    int in_c, out_c, h, w, kernel, stride;
  };
  const Case cases[] = {
      {64, 64, 128, 128, 3, 1},  // layer1 convs
      {64, 128, 33, 31, 3, 2},   // layer2.0.conv1
      {64, 128, 33, 31, 1, 2},   // layer2.0.downsample.0
      {128, 128, 17, 15, 3, 1},  // layer2 convs
      {128, 256, 17, 15, 3, 2},  // layer3.0.conv1
      {128, 256, 64, 64, 1, 2},  // layer3.0.downsample.0 at its 512x512 size
      {256, 256, 9, 7, 3, 1},    // layer3 convs
      {256, 512, 9, 7, 1, 2},    // layer4.0.downsample.0
      {512, 512, 5, 5, 3, 1},    // layer4 convs
      {96, 40, 11, 13, 3, 1},    // channels no multiple of 64 / 16 / 32
      {200, 72, 7, 9, 1, 2},
  };
  const int wa[][2] = {{1, 1}, {1, 2}, {2, 2}};
  Rng rng(41);
  for (const Case& k : cases)
    for (const auto& bits : wa) {
      BitConvShape s;
      s.in_h = k.h;
      s.in_w = k.w;
      s.in_c = k.in_c;
      s.out_c = k.out_c;
      s.kh = s.kw = k.kernel;
      s.stride = k.stride;
      s.pad = k.kernel / 2;
      s.w_bits = bits[0];
      s.a_bits = bits[1];
      INFO(describe(s));
      const Packed c = make_case(s, rng);
      const auto ref = run_int(s, c, bgemm_variants()[0]);
      if (s.macs() < 50'000'000) REQUIRE(ref == direct_int_conv(s, c.q, c.p));
      test::for_each_variant(bgemm_variants(),
                             [&](const BgemmVariant& v) { REQUIRE(run_int(s, c, v) == ref); });
      // The per-shape dispatch picks a variant this CPU runs, capped by the active level, the
      // same one every time, and its result is exact too.
      const BgemmVariant& chosen = bgemm_for_shape(s);
      CHECK(isa_supported(chosen.isa));
      CHECK(int(chosen.isa) <= int(active_isa()));
      CHECK((chosen.isa != Isa::ref || active_isa() == Isa::ref));
      CHECK(&bgemm_for_shape(s) == &chosen);
      REQUIRE(run_int(s, c, chosen) == ref);
    }
}

namespace {

// The level of integer dot i by the float epilogue (requant_pack__ref on one channel: p = 0 and
// corr = -i give I = i), with an optional residual value.
int float_level(int64_t i, float mul, float add, const float* res, int bits) {
  const int32_t p = 0;
  uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  requant_pack__ref(&p, 1, int32_t(-i), &mul, &add, res, bits, planes);
  int level = 0;
  for (int b = 0; b < bits; ++b) level |= int(planes[b] & 1) << b;
  return level;
}

// The level of integer dot i by channel o's thresholds of residual code rq (requant_thresholds).
int threshold_level(const std::vector<int32_t>& thr, const std::vector<int32_t>& neg, int ldt,
                    int bits, int rq, int o, int64_t i) {
  const int levels = (1 << bits) - 1;
  const int64_t x = neg[size_t(o)] ? -i : i;
  int level = 0;
  for (int t = 0; t < levels; ++t) level += x >= thr[(size_t(rq) * levels + t) * ldt + o];
  return level;
}

}  // namespace

TEST_CASE("integer thresholds give the float epilogue's level for every integer dot",
          "[kernels][bitconv]") {
  // requant_thresholds against the float quantizer itself (requant_pack__ref on one channel) for
  // every I in the range: signs, zero, a tiny multiplier (far-off estimates, the binary search),
  // offsets that clip everything, and ties at level boundaries.
  Rng rng(5);
  const int64_t bound = 300;
  std::vector<float> mul, add;
  for (int i = 0; i < 60; ++i) {
    mul.push_back(rng.uniform(-0.02f, 0.02f));
    add.push_back(rng.uniform(-0.5f, 1.5f));
  }
  mul.insert(mul.end(), {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f / 6.0f, 1.0f / 600.0f, 5.0f});
  add.insert(add.end(), {0.4f, 0.9f, 0.5f, 0.5f, 0.5f, 0.5f / 3.0f, -3.0f});
  const int oc = int(mul.size());
  for (int bits : {1, 2, 3}) {
    std::vector<int32_t> thr, neg;
    int ldt = 0;
    REQUIRE(requant_thresholds(mul.data(), add.data(), oc, bits, bound, 0, &thr, &neg, &ldt));
    REQUIRE(ldt % 16 == 0);
    for (int o = 0; o < oc; ++o) {
      INFO("channel " << o << " mul " << mul[size_t(o)] << " add " << add[size_t(o)] << " bits "
                      << bits);
      for (int64_t i = -bound; i <= bound; ++i) {
        REQUIRE(threshold_level(thr, neg, ldt, bits, 0, o, i) ==
                float_level(i, mul[size_t(o)], add[size_t(o)], nullptr, bits));
      }
    }
  }
  // A non-finite multiplier leaves the float epilogue in charge.
  std::vector<int32_t> thr, neg;
  int ldt = 0;
  const float bad_mul = INFINITY, ok_add = 0.5f;
  CHECK_FALSE(requant_thresholds(&bad_mul, &ok_add, 1, 2, bound, 0, &thr, &neg, &ldt));
}

TEST_CASE("every variant gives the same output on any team size", "[kernels][bitconv]") {
  // Each thread prepares the input rows of its own output rows (counts, re-layout) before a
  // barrier; a row band left unprepared or prepared twice differently shows up at some team size.
  // Teams of 2, 3 and 8 on the sweep (5-8 output rows or fewer: 8 leaves threads without rows),
  // and a conv with a packed residual and one with a residual conv, in the threshold epilogue.
  // Before each run, another input of the same shape fills the reused buffers (an
  // unprepared row would otherwise still hold this input's own re-layout from the run before).
  const int saved = omp_get_max_threads();
  const auto at_team = [&](int team, auto&& run) {
    omp_set_num_threads(team);
    auto out = run();
    omp_set_num_threads(saved);
    return out;
  };
  test::for_each_variant(bgemm_variants(), [&](const BgemmVariant& v) {
    Rng rng(37);
    for (const BitConvShape& s : sweep_shapes()) {
      const Packed c = make_case(s, rng), other = make_case(s, rng);
      const auto one = at_team(1, [&] { return run_int(s, c, v); });
      for (int team : {2, 3, 8}) {
        INFO(describe(s) << " team " << team);
        run_int(s, other, v);
        REQUIRE(at_team(team, [&] { return run_int(s, c, v); }) == one);
      }
    }
    // conv2 of a downsampling block, 2-bit codes out, its residual packed or a 1x1/2 conv
    BitConvShape d;
    d.in_h = 13;
    d.in_w = 9;
    d.in_c = 70;
    d.out_c = 65;
    d.kh = d.kw = 1;
    d.pad = 0;
    d.stride = 2;
    d.w_bits = 1;
    d.a_bits = 2;
    BitConvShape s = d;
    s.in_h = d.out_h();
    s.in_w = d.out_w();
    s.in_c = s.out_c;
    s.kh = s.kw = 3;
    s.pad = 1;
    s.stride = 1;
    const Packed cd = make_case(d, rng), c = make_case(s, rng), other_d = make_case(d, rng),
                 other = make_case(s, rng);
    const RandomEpilogue re = random_epilogue(s, rng, -0.2f, 0.8f);
    const PreparedBitWeights dw = prepare_bitconv_weights(d, cd.w.data(), v);
    const int64_t pix = int64_t(s.out_h()) * s.out_w();
    std::vector<uint64_t> res(size_t(pix) * 2 * bit_words(s.out_c));
    for (uint64_t& x : res) x = rng.next_u64();
    for (const bool conv_residual : {false, true}) {
      const auto run = [&](const Packed& in, const Packed& in_d) {
        ResidualConv rc;
        rc.shape = d;
        rc.in = in_d.in.data();
        rc.weights = &dw;
        rc.mul = re.mul.data();
        rc.add = re.add.data();
        std::vector<uint64_t> out(res.size(), 3);
        BitConvEpilogue e;
        e.mul = re.mul.data();
        e.add = re.add.data();
        e.out_packed = out.data();
        e.out_bits = 2;
        if (conv_residual) {
          e.residual_conv = &rc;
        } else {
          e.residual_packed = res.data();
          e.residual_bits = 2;
        }
        bitconv_forward(s, in.in.data(), c.w.data(), e, v);
        return out;
      };
      const auto one = at_team(1, [&] { return run(c, cd); });
      for (int team : {2, 3, 8}) {
        INFO("residual conv " << conv_residual << " team " << team);
        run(other, other_d);
        REQUIRE(at_team(team, [&] { return run(c, cd); }) == one);
      }
    }
  });
}

TEST_CASE("threshold epilogues of every variant equal the scalar one", "[kernels][bitconv]") {
  Rng rng(17);
  int simd = 0;
  test::for_each_variant(
      bgemm_variants(), [](const BgemmVariant& v) { return v.threshold_pack != nullptr; },
      [&](const BgemmVariant& v) {
        ++simd;
        for (int oc : {1, 15, 16, 17, 64, 70, 130})
          for (int bits : {1, 2, 3}) {
            const int n = 5, levels = (1 << bits) - 1, ldt = (oc + 15) / 16 * 16;
            std::vector<int32_t> p(size_t(n) * oc), corr(static_cast<size_t>(n)),
                thr(size_t(levels) * ldt), neg(size_t(ldt), 0);
            for (auto& x : p) x = int32_t(rng.next_u64() % 200);
            for (auto& c : corr) c = int32_t(rng.next_u64() % 200);
            for (int o = 0; o < oc; ++o) {
              neg[size_t(o)] = rng.next_u64() % 2 ? -1 : 0;
              int32_t t = int32_t(rng.next_u64() % 200) - 250;
              for (int j = 0; j < levels; ++j)
                thr[size_t(j) * ldt + o] = t += int32_t(rng.next_u64() % 90);
            }
            for (int o = oc; o < ldt; ++o)
              for (int j = 0; j < levels; ++j) thr[size_t(j) * ldt + o] = 1 << 30;
            const size_t words = size_t(n) * bits * bit_words(oc);
            std::vector<uint64_t> want(words, 1), got(words, 2);
            threshold_pack__ref(p.data(), n, oc, corr.data(), thr.data(), neg.data(), ldt, bits,
                                want.data());
            v.threshold_pack(p.data(), n, oc, corr.data(), thr.data(), neg.data(), ldt, bits,
                             got.data());
            INFO("oc " << oc << " bits " << bits);
            REQUIRE(got == want);
          }
      });
  if (simd == 0)
    BFCN_SKIP_ISA("no threshold epilogue variant runs on this CPU (has: " + cpu_features_string() +
                  ")");
}

TEST_CASE("per-residual-code thresholds give the float epilogue's level with that residual",
          "[kernels][bitconv]") {
  // One threshold set per code of a packed 1- or 2-bit residual: for every I and code, the level
  // equals requant_pack__ref with the residual value unpack_dequant_act gives that code.
  Rng rng(8);
  const int64_t bound = 200;
  std::vector<float> mul, add;
  for (int i = 0; i < 24; ++i) {
    mul.push_back(rng.uniform(-0.02f, 0.02f));
    add.push_back(rng.uniform(-1.0f, 1.0f));
  }
  mul.push_back(0.0f);
  add.push_back(0.2f);
  const int oc = int(mul.size());
  for (int res_bits : {1, 2})
    for (int bits : {1, 2}) {
      std::vector<int32_t> thr, neg;
      int ldt = 0;
      REQUIRE(
          requant_thresholds(mul.data(), add.data(), oc, bits, bound, res_bits, &thr, &neg, &ldt));
      for (int rq = 0; rq < (1 << res_bits); ++rq) {
        // the code's value through the runtime's own dequantizer
        uint64_t code[2] = {uint64_t(rq & 1), uint64_t((rq >> 1) & 1)};
        float res = -1.0f;
        unpack_dequant_act(code, 1, 1, res_bits, &res);
        for (int o = 0; o < oc; ++o)
          for (int64_t i = -bound; i <= bound; ++i) {
            INFO("res_bits " << res_bits << " code " << rq << " channel " << o << " I " << i);
            REQUIRE(threshold_level(thr, neg, ldt, bits, rq, o, i) ==
                    float_level(i, mul[size_t(o)], add[size_t(o)], &res, bits));
          }
      }
    }
}
