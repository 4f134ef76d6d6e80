// AVX2 fused quantize + pack of float NHWC activations (bitpack.h): 8 channels per step, the
// level's bit k of each lane gathered by one movemask. The float operations are those of the
// scalar quantize_level (multiply, then add, no FMA; clip; round half to even), so both agree
// bit for bit.
#include <immintrin.h>

#include "kernels/bitpack.h"

namespace bfcn {

void quantize_pack_act__avx2(const float* x, int64_t pixels, int c, int bits, const float* mul,
                             const float* add, uint64_t* out) {
  const int cw = bit_words(c), c8 = c / 8 * 8;
  const float levels = float((1 << bits) - 1);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 lv = _mm256_set1_ps(levels);
#pragma omp parallel for schedule(static) if (pixels * c > 65536)
  for (int64_t p = 0; p < pixels; ++p) {
    const float* src = x + p * c;
    uint64_t* dst = out + p * bits * cw;
    for (int i = 0; i < bits * cw; ++i) dst[i] = 0;
    for (int ch = 0; ch < c8; ch += 8) {
      __m256 v = _mm256_loadu_ps(src + ch);
      if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + ch));
      if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(add + ch));
      v = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(v, zero), one), lv);  // NaN -> 0
      const __m256i q =
          _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      for (int k = 0; k < bits; ++k) {
        const int m = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(q, 31 - k)));
        dst[k * cw + ch / 64] |= uint64_t(unsigned(m)) << (ch & 63);
      }
    }
    for (int ch = c8; ch < c; ++ch) {  // channel tail
      float v = src[ch];
      if (mul) v *= mul[ch];
      if (add) v += add[ch];
      const uint8_t q = quantize_level(v, levels);
      for (int k = 0; k < bits; ++k) dst[k * cw + ch / 64] |= uint64_t((q >> k) & 1) << (ch & 63);
    }
  }
}

}  // namespace bfcn
