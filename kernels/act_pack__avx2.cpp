// AVX2 argmax over channel planes: 8 positions per step, running best value and index blended
// with an ordered less-than compare (false on NaN), matching the scalar first-maximum rule.
#include <immintrin.h>

#include "kernels/act_pack.h"

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

}  // namespace bfcn
