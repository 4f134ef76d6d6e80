// Scalar bit packing (see bitpack.h for the layouts). Packing is O(pixels*C) against the
// O(pixels*C*OC*taps) convolution, so plain loops with OpenMP over pixels are enough.
#include "kernels/bitpack.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/variant.h"

namespace bfcn {

void pack_pixel_q(const uint8_t* q, int c, int bits, uint64_t* out) {
  const int cw = bit_words(c);
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int n = std::min(64, c - wi * 64);
    for (int b8 = 0; b8 < n; b8 += 8) {
      uint64_t x = 0;
      std::memcpy(&x, q + wi * 64 + b8, size_t(std::min(8, n - b8)));
      for (int k = 0; k < bits; ++k)
        planes[k] |= ((((x >> k) & 0x0101010101010101ull) * 0x0102040810204080ull) >> 56) << b8;
    }
    for (int k = 0; k < bits; ++k) out[k * cw + wi] = planes[k];
  }
}

void pack_act_q(const uint8_t* q, int64_t pixels, int c, int bits, uint64_t* out) {
  const int cw = bit_words(c);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t p = 0; p < pixels; ++p) pack_pixel_q(q + p * c, c, bits, out + p * bits * cw);
}

namespace {
// kSpread[b]: bit i of b moved to bit 0 of byte i.
struct SpreadTable {
  uint64_t v[256];
  constexpr SpreadTable() : v() {
    for (int b = 0; b < 256; ++b) {
      uint64_t x = 0;
      for (int i = 0; i < 8; ++i) x |= uint64_t((b >> i) & 1) << (8 * i);
      v[b] = x;
    }
  }
};
constexpr SpreadTable kSpread;
}  // namespace

void unpack_act_q(const uint64_t* packed, int64_t pixels, int c, int bits, uint8_t* q) {
  const int cw = bit_words(c);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t p = 0; p < pixels; ++p) {
    const uint64_t* src = packed + p * bits * cw;
    uint8_t* dst = q + p * c;
    for (int ch0 = 0; ch0 < c; ch0 += 8) {
      uint64_t v = 0;
      for (int k = 0; k < bits; ++k)
        v |= kSpread.v[(src[k * cw + (ch0 >> 6)] >> (ch0 & 63)) & 0xff] << k;
      std::memcpy(dst + ch0, &v, size_t(std::min(8, c - ch0)));
    }
  }
}

std::span<const BitpackVariant> bitpack_variants() {
  static const BitpackVariant kVariants[] = {
    {Isa::ref, "quantize_pack_act__ref", quantize_pack_act__ref},
#if BFCN_X86
    {Isa::avx2, "quantize_pack_act__avx2", quantize_pack_act__avx2},
    {Isa::avx512, "quantize_pack_act__avx512", quantize_pack_act__avx512},
#endif
  };
  return kVariants;
}

void quantize_pack_act(const float* x, int64_t pixels, int c, int bits, const float* mul,
                       const float* add, uint64_t* out) {
  static const QuantizePackActFn fn = best_variant(bitpack_variants()).quantize_pack_act;
  fn(x, pixels, c, bits, mul, add, out);
}

void quantize_pack_act__ref(const float* x, int64_t pixels, int c, int bits, const float* mul,
                            const float* add, uint64_t* out) {
  const int cw = bit_words(c);
  const float levels = float((1 << bits) - 1);
#pragma omp parallel if (pixels * c > 65536)
  {
    std::vector<uint8_t> q(static_cast<size_t>(c));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < pixels; ++p) {
      const float* src = x + p * c;
      uint8_t* qd = q.data();
      if (mul && add)  // branch-free loops so they vectorize
        for (int ch = 0; ch < c; ++ch) qd[ch] = quantize_level(src[ch] * mul[ch] + add[ch], levels);
      else if (mul)
        for (int ch = 0; ch < c; ++ch) qd[ch] = quantize_level(src[ch] * mul[ch], levels);
      else if (add)
        for (int ch = 0; ch < c; ++ch) qd[ch] = quantize_level(src[ch] + add[ch], levels);
      else
        for (int ch = 0; ch < c; ++ch) qd[ch] = quantize_level(src[ch], levels);
      pack_pixel_q(q.data(), c, bits, out + p * bits * cw);
    }
  }
}

void pack_weights_q(const uint8_t* p, int oc, int taps, int c, int bits, uint64_t* out) {
  const int cw = bit_words(c);
  const int lp = bitconv_row_words(taps, c);
  std::memset(out, 0, sizeof(uint64_t) * size_t(oc) * bits * lp);
  for (int o = 0; o < oc; ++o)
    for (int t = 0; t < taps; ++t)
      for (int ch = 0; ch < c; ++ch) {
        const uint8_t v = p[(int64_t(o) * taps + t) * c + ch];
        for (int m = 0; m < bits; ++m)
          if ((v >> m) & 1)
            out[(int64_t(o) * bits + m) * lp + t * cw + (ch >> 6)] |= uint64_t{1} << (ch & 63);
      }
}

}  // namespace bfcn
