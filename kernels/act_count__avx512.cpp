// AVX-512 activation counts (ActCountFn, kernels/bitconv.h) for inputs of one word per plane
// (<= 64 channels, the 128x128 layer1 maps): 8 pixels per step, VPOPCNTQ over their words, plane k
// weighted by a shift of k, and for two planes the pixel's pair of lanes summed by one permute of
// each half. Other layouts and the last pixels take the scalar POPCNT loop
// (count_pixels__popcnt). Exact: integer counts.
#include <immintrin.h>

#include "kernels/bitconv.h"

namespace bfcn {

void count_pixels__avx512(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                          int32_t* counts) {
  int64_t p = p0;
  if (cw == 1 && kb == 1) {
    for (; p + 8 <= p1; p += 8) {
      const __m512i pc = _mm512_popcnt_epi64(_mm512_loadu_si512(in + p));
      _mm512_mask_cvtepi64_storeu_epi32(counts + p, 0xff, pc);
    }
  } else if (cw == 1 && kb == 2) {
    // words [p][k]: lanes alternate planes 0 and 1; plane 1 counts double
    const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
    const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
    for (; p + 8 <= p1; p += 8) {
      const __m512i lo = _mm512_popcnt_epi64(_mm512_loadu_si512(in + 2 * p));
      const __m512i hi = _mm512_popcnt_epi64(_mm512_loadu_si512(in + 2 * p + 8));
      const __m512i plane0 = _mm512_permutex2var_epi64(lo, even, hi);
      const __m512i plane1 = _mm512_permutex2var_epi64(lo, odd, hi);
      const __m512i c = _mm512_add_epi64(plane0, _mm512_add_epi64(plane1, plane1));
      _mm512_mask_cvtepi64_storeu_epi32(counts + p, 0xff, c);
    }
  }
  count_pixels__popcnt(in, p, p1, kb, cw, counts);
}

}  // namespace bfcn
