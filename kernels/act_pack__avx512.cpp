// AVX-512 unpack + dequantize of packed activation codes (bits <= 4): per 16 channels, each bit
// plane's 16 bits are a mask that adds 2^b into the code lanes, and one VPERMPS looks the level up
// in a 16-entry table of q / (2^bits - 1) computed by the same float division as the scalar
// unpack_dequant_act__ref, so the floats are bit-identical.
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/act_pack.h"
#include "kernels/bitpack.h"

namespace bfcn {

void unpack_dequant_act__avx512(const uint64_t* packed, int64_t pixels, int c, int bits,
                                float* out) {
  if (bits > 4) return unpack_dequant_act__ref(packed, pixels, c, bits, out);
  const int cw = bit_words(c);
  const float n = float((1 << bits) - 1);
  alignas(64) float table[16] = {};
  for (int q = 0; q < (1 << bits); ++q) table[q] = float(q) / n;
  const __m512 lut = _mm512_load_ps(table);
  for (int64_t px = 0; px < pixels; ++px) {
    const uint64_t* src = packed + px * bits * cw;
    float* d = out + px * c;
    for (int c0 = 0; c0 < c; c0 += 16) {
      __m512i q = _mm512_setzero_si512();
      for (int b = 0; b < bits; ++b) {
        const __mmask16 m = __mmask16(src[b * cw + (c0 >> 6)] >> (c0 & 63));
        q = _mm512_mask_add_epi32(q, m, q, _mm512_set1_epi32(1 << b));
      }
      const __m512 v = _mm512_maskz_permutexvar_ps(0xffff, q, lut);  // (GCC 12: maskz, no warning)
      const int left = c - c0;
      if (left >= 16)
        _mm512_storeu_ps(d + c0, v);
      else
        _mm512_mask_storeu_ps(d + c0, __mmask16((1u << left) - 1), v);
    }
  }
}

}  // namespace bfcn

namespace bfcn {

// Max pool on codes + pack, 64 channels per zmm: VPMAXUB over the window's taps, then each bit
// plane's 64 bits straight from one VPTESTMB mask (no byte-to-bit gathering).
void maxpool_pack_row_q__avx512(const uint8_t* const* rows, int nrows, int w, int c, int k, int s,
                                int p, int bits, uint64_t* out, int ow) {
  const int cw = bit_words(c);
  for (int ox = 0; ox < ow; ++ox) {
    const int xa = std::max(0, ox * s - p), xb = std::min(w, ox * s - p + k);
    uint64_t* d = out + int64_t(ox) * bits * cw;
    for (int wi = 0; wi < cw; ++wi) {
      const int n = std::min(64, c - wi * 64);
      const __mmask64 m = n == 64 ? ~__mmask64(0) : (__mmask64(1) << n) - 1;
      __m512i mx = _mm512_setzero_si512();  // codes are >= 0 and every window has a tap
      for (int r = 0; r < nrows; ++r)
        for (int ix = xa; ix < xb; ++ix)
          mx = _mm512_max_epu8(mx, _mm512_maskz_loadu_epi8(m, rows[r] + int64_t(ix) * c + wi * 64));
      for (int b = 0; b < bits; ++b)
        d[b * cw + wi] = _mm512_test_epi8_mask(mx, _mm512_set1_epi8(char(1 << b)));
    }
  }
}

}  // namespace bfcn
