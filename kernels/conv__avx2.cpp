// AVX2 helpers for stride-2 im2col/col2im rows (the 7x7/2 stem spends most of its non-GEMM time
// there): dst[i] = src[2i] by two loads and a lane shuffle, and the matching scatter-add.
// Compiled with -mavx2 (file name); called only when active_isa() allows it.
#include <immintrin.h>

#include <cstdint>

namespace bfcn {

// dst[i] = src[2*i] for i in [0, n). Reads src[0 .. 2n-2] only.
void gather_stride2__avx2(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  const __m256i order = _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7);
  for (; i + 8 < n; i += 8) {                           // reads src[2i .. 2i+15] <= src[2n-2]
    const __m256 a = _mm256_loadu_ps(src + 2 * i);      // x0 .. x7
    const __m256 b = _mm256_loadu_ps(src + 2 * i + 8);  // x8 .. x15
    // shuffle_ps picks even elements per 128-bit lane: [x0 x2 x8 x10 | x4 x6 x12 x14]
    const __m256 even = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    _mm256_storeu_ps(dst + i, _mm256_castsi256_ps(
                                  _mm256_permutevar8x32_epi32(_mm256_castps_si256(even), order)));
  }
  for (; i < n; ++i) dst[i] = src[2 * i];
}

// dst[2*i] += src[i] for i in [0, n). Touches dst[0 .. 2n-2] only.
void scatter_add_stride2__avx2(const float* src, float* dst, int64_t n) {
  int64_t i = 0;
  const __m256 zero = _mm256_setzero_ps();
  for (; i + 8 < n; i += 8) {                       // touches dst[2i .. 2i+15] <= dst[2n-2]
    const __m256 v = _mm256_loadu_ps(src + i);      // v0 .. v7
    const __m256 lo = _mm256_unpacklo_ps(v, zero);  // [v0 0 v1 0 | v4 0 v5 0]
    const __m256 hi = _mm256_unpackhi_ps(v, zero);  // [v2 0 v3 0 | v6 0 v7 0]
    const __m256 first = _mm256_permute2f128_ps(lo, hi, 0x20);   // v0 0 v1 0 v2 0 v3 0
    const __m256 second = _mm256_permute2f128_ps(lo, hi, 0x31);  // v4 0 .. v7 0
    float* d = dst + 2 * i;
    _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), first));
    _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8), second));
  }
  for (; i < n; ++i) dst[2 * i] += src[i];
}

}  // namespace bfcn
