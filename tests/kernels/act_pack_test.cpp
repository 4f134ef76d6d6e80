// Activation packing kernels (kernels/act_pack.*, kernels/bitpack.*) against simple references:
// max pooling on codes + packing, unpack + dequantize, the channel argmax.
#include "kernels/act_pack.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "kernels/bitpack.h"
#include "kernels/cpu_features.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

using namespace bfcn;

TEST_CASE("max pool on codes + pack equals float pool then quantize", "[kernels][pool]") {
  struct Case {
    int h, w, c, k, s, p;
  };
  const Case cases[] = {{13, 11, 70, 3, 2, 1},
                        {8, 8, 64, 2, 2, 0},
                        {7, 9, 5, 3, 1, 1},
                        {1, 1, 3, 3, 2, 1},
                        {6, 5, 130, 3, 3, 1}};
  std::mt19937 gen(31);
  for (const Case& cs : cases)
    for (int bits : {1, 2, 4}) {
      INFO(cs.h << "x" << cs.w << "x" << cs.c << " k" << cs.k << " s" << cs.s << " p" << cs.p
                << " bits " << bits);
      const int oh = (cs.h + 2 * cs.p - cs.k) / cs.s + 1, ow = (cs.w + 2 * cs.p - cs.k) / cs.s + 1;
      std::vector<uint8_t> q(size_t(cs.h) * cs.w * cs.c);
      for (uint8_t& v : q) v = uint8_t(gen() % (1u << bits));
      // Reference: -inf padded float max pool of the codes, then pack.
      std::vector<uint8_t> pooled(size_t(oh) * ow * cs.c);
      for (int oy = 0; oy < oh; ++oy)
        for (int ox = 0; ox < ow; ++ox)
          for (int ch = 0; ch < cs.c; ++ch) {
            float mx = -std::numeric_limits<float>::infinity();
            for (int ky = 0; ky < cs.k; ++ky)
              for (int kx = 0; kx < cs.k; ++kx) {
                const int iy = oy * cs.s - cs.p + ky, ix = ox * cs.s - cs.p + kx;
                if (iy >= 0 && iy < cs.h && ix >= 0 && ix < cs.w)
                  mx = std::max(mx, float(q[(size_t(iy) * cs.w + ix) * cs.c + ch]));
              }
            pooled[(size_t(oy) * ow + ox) * cs.c + ch] = uint8_t(mx);
          }
      const size_t words = size_t(oh) * ow * bits * bit_words(cs.c);
      std::vector<uint64_t> expect(words, 0), got(words, ~0ull);
      pack_act_q(pooled.data(), int64_t(oh) * ow, cs.c, bits, expect.data());
      maxpool_pack_q(q.data(), cs.h, cs.w, cs.c, cs.k, cs.s, cs.p, bits, got.data(), oh, ow);
      CHECK(got == expect);
      test::for_each_variant(act_pack_variants(), [&](const ActPackVariant& v) {
        REQUIRE(bits <= v.maxpool_max_bits);
        std::vector<uint64_t> var(words, ~0ull);
        maxpool_pack_q(q.data(), cs.h, cs.w, cs.c, cs.k, cs.s, cs.p, bits, var.data(), oh, ow,
                       v.maxpool_pack_row);
        CHECK(var == expect);
      });
    }
}

TEST_CASE("act_pack variant table: ref first, by ISA level, dispatch takes the best allowed",
          "[kernels][pool]") {
  const ActPackVariant& best = best_variant(act_pack_variants());
  test::check_variant_table(act_pack_variants(), best);
}

TEST_CASE("unpack + dequantize matches unpack_act_q and the level values", "[kernels][pool]") {
  std::mt19937 gen(41);
  for (int c : {1, 7, 64, 70, 200})
    for (int bits : {1, 2, 3, 4}) {
      INFO("c " << c << " bits " << bits);
      const int64_t pix = c >= 70 ? 1001 : 37;  // 1001 x 70+: parallel chunks, a short last one
      std::vector<uint8_t> q(size_t(pix) * c);
      for (uint8_t& v : q) v = uint8_t(gen() % (1u << bits));
      std::vector<uint64_t> packed(size_t(pix) * bits * bit_words(c));
      pack_act_q(q.data(), pix, c, bits, packed.data());
      std::vector<float> got(q.size(), -1.0f);
      unpack_dequant_act(packed.data(), pix, c, bits, got.data());
      const float n = float((1 << bits) - 1);
      bool same = true;
      for (size_t i = 0; i < q.size(); ++i) same = same && got[i] == float(q[i]) / n;
      CHECK(same);
      // Every variant's row unpack: bit-identical floats, no write past c per pixel.
      test::for_each_variant(act_pack_variants(), [&](const ActPackVariant& v) {
        std::vector<float> var(q.size() + 16, -1.0f);
        v.unpack_dequant_row(packed.data(), pix, c, bits, var.data());
        CHECK(std::equal(got.begin(), got.end(), var.begin()));
        CHECK(var[q.size()] == -1.0f);
      });
    }
  for (int bits : {5, 8}) {  // wider codes (the AVX-512 body falls back to the scalar one)
    const int c = 70;
    std::vector<uint8_t> q(size_t(5) * c);
    for (uint8_t& v : q) v = uint8_t(gen() % (1u << bits));
    std::vector<uint64_t> packed(size_t(5) * bits * bit_words(c));
    pack_act_q(q.data(), 5, c, bits, packed.data());
    std::vector<float> a(q.size());
    unpack_dequant_act(packed.data(), 5, c, bits, a.data());
    test::for_each_variant(act_pack_variants(), [&](const ActPackVariant& v) {
      std::vector<float> b(q.size());
      v.unpack_dequant_row(packed.data(), 5, c, bits, b.data());
      CHECK(a == b);
    });
  }
}

TEST_CASE("channel argmax picks the first maximum, ignores NaN after the first",
          "[kernels][argmax]") {
  for (int c : {1, 2, 21, 150})
    for (int n : {1, 7, 8, 37}) {
      INFO("c " << c << " n " << n);
      std::mt19937 gen(uint32_t(c * 100 + n));
      const int64_t stride = n + 3;
      std::vector<float> x(size_t(c) * stride);
      for (float& v : x) v = float(gen() % 5);  // many ties
      for (int i = 0; i < n; i += 3) x[size_t((i % c) * stride + i)] = std::nanf("");
      std::vector<uint8_t> expect(static_cast<size_t>(n)), got(static_cast<size_t>(n), 255);
      for (int i = 0; i < n; ++i) {
        std::vector<float> col(static_cast<size_t>(c));
        for (int ch = 0; ch < c; ++ch) col[size_t(ch)] = x[size_t(ch * stride + i)];
        expect[size_t(i)] = uint8_t(std::max_element(col.begin(), col.end()) - col.begin());
      }
      argmax_planar(x.data(), c, n, stride, got.data());
      CHECK(got == expect);
      test::for_each_variant(act_pack_variants(), [&](const ActPackVariant& v) {
        std::vector<uint8_t> var(static_cast<size_t>(n), 255);
        v.argmax_planar(x.data(), c, n, stride, var.data());
        CHECK(var == expect);
      });
    }
}
