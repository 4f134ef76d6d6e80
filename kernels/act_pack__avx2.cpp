// AVX2 argmax over channel planes: 8 positions per step, running best value and index blended
// with an ordered less-than compare (false on NaN), matching the scalar first-maximum rule. And
// the unpack + dequantize of packed codes, 8 channels per step.
#include <immintrin.h>

#include "kernels/act_pack.h"
#include "kernels/bitpack.h"

namespace bfcn {

void argmax_planar__avx2(const float* x, int c, int n, int64_t stride, uint8_t* out) {
  int i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 best = _mm256_loadu_ps(x + i);
    __m256i idx = _mm256_setzero_si256();
    for (int ch = 1; ch < c; ++ch) {
      const __m256 v = _mm256_loadu_ps(x + ch * stride + i);
      const __m256 gt = _mm256_cmp_ps(best, v, _CMP_LT_OQ);
      best = _mm256_blendv_ps(best, v, gt);
      idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(ch), _mm256_castps_si256(gt));
    }
    const __m128i w16 =
        _mm_packus_epi32(_mm256_castsi256_si128(idx), _mm256_extracti128_si256(idx, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(w16, w16));
  }
  if (i < n) argmax_planar__ref(x + i, c, n - i, stride, out + i);
}

// Per 8 channels: each plane's byte, broadcast and tested against the lanes' bits, ORs 2^b into
// the code lanes; the level is float(q) / n, the scalar body's IEEE division, so the floats are
// bit-identical. A channel tail below 8 is scalar.
void unpack_dequant_act__avx2(const uint64_t* packed, int64_t pixels, int c, int bits, float* out) {
  const int cw = bit_words(c);
  const float n = float((1 << bits) - 1);
  const __m256 nv = _mm256_set1_ps(n);
  const __m256i lane_bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  for (int64_t px = 0; px < pixels; ++px) {
    const uint64_t* src = packed + px * bits * cw;
    float* d = out + px * c;
    int c0 = 0;
    for (; c0 + 8 <= c; c0 += 8) {
      __m256i q = _mm256_setzero_si256();
      for (int b = 0; b < bits; ++b) {
        const int byte = int((src[b * cw + (c0 >> 6)] >> (c0 & 63)) & 0xff);
        const __m256i hit =
            _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32(byte), lane_bit), lane_bit);
        q = _mm256_or_si256(q, _mm256_and_si256(hit, _mm256_set1_epi32(1 << b)));
      }
      _mm256_storeu_ps(d + c0, _mm256_div_ps(_mm256_cvtepi32_ps(q), nv));
    }
    for (; c0 < c; ++c0) {
      int q = 0;
      for (int b = 0; b < bits; ++b) q |= int((src[b * cw + (c0 >> 6)] >> (c0 & 63)) & 1) << b;
      d[c0] = float(q) / n;
    }
  }
}

}  // namespace bfcn
