// Scalar bit packing (see bitpack.h for the layouts). Packing is O(pixels*C) against the
// O(pixels*C*OC*taps) convolution, so plain loops with OpenMP over pixels are enough.
#include "kernels/bitpack.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace bfcn {

void pack_act_q(const uint8_t* q, int64_t pixels, int c, int bits, uint64_t* out) {
  const int cw = bit_words(c);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t p = 0; p < pixels; ++p) {
    uint64_t* o = out + p * bits * cw;
    std::memset(o, 0, sizeof(uint64_t) * bits * cw);
    const uint8_t* src = q + p * c;
    for (int ch = 0; ch < c; ++ch) {
      const uint64_t bit = uint64_t{1} << (ch & 63);
      for (int k = 0; k < bits; ++k)
        if ((src[ch] >> k) & 1) o[k * cw + (ch >> 6)] |= bit;
    }
  }
}

void unpack_act_q(const uint64_t* packed, int64_t pixels, int c, int bits, uint8_t* q) {
  const int cw = bit_words(c);
  for (int64_t p = 0; p < pixels; ++p) {
    const uint64_t* src = packed + p * bits * cw;
    for (int ch = 0; ch < c; ++ch) {
      int v = 0;
      for (int k = 0; k < bits; ++k) v |= int((src[k * cw + (ch >> 6)] >> (ch & 63)) & 1) << k;
      q[p * c + ch] = uint8_t(v);
    }
  }
}

void quantize_pack_act(const float* x, int64_t pixels, int c, int bits, const float* mul,
                       const float* add, uint64_t* out) {
  const int cw = bit_words(c);
  const float levels = float((1 << bits) - 1);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t p = 0; p < pixels; ++p) {
    uint64_t* o = out + p * bits * cw;
    std::memset(o, 0, sizeof(uint64_t) * bits * cw);
    const float* src = x + p * c;
    for (int ch = 0; ch < c; ++ch) {
      float v = src[ch];
      if (mul) v *= mul[ch];
      if (add) v += add[ch];
      v = v > 0.0f ? (v < 1.0f ? v : 1.0f) : 0.0f;  // NaN → 0
      const unsigned qv = unsigned(std::nearbyint(v * levels));
      const uint64_t bit = uint64_t{1} << (ch & 63);
      for (int k = 0; k < bits; ++k)
        if ((qv >> k) & 1u) o[k * cw + (ch >> 6)] |= bit;
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
