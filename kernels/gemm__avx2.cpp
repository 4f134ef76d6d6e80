// AVX2+FMA 6x16 sgemm microkernels (the register tile is gemm_ukernel__avx2.h, shared with the
// stem) and the transposed-B panel packing. Compiled with -mavx2 -mfma (file name) and only called
// when active_isa() says the CPU has them.
#include <immintrin.h>

#include "kernels/gemm.h"
#include "kernels/gemm_ukernel__avx2.h"

namespace bfcn {

void sgemm_ukernel_6x16__avx2(int64_t kc, const float* ap, const float* bp, int64_t ldb, float* c,
                              int64_t ldc, bool accumulate) {
  avx2::Tile6x16 t;
  avx2::tile6x16_zero(t);
  avx2::tile6x16_fma(
      t, kc, [ap](int i, int64_t p) { return ap + p * kGemmMr + i; }, bp, ldb);
  avx2::tile6x16_store(t, c, ldc, accumulate);
}

// A read in place: row i of the tile at a + i*lda, k contiguous (no packing for row-major A).
void sgemm_ukernel_6x16_arows__avx2(int64_t kc, const float* a, int64_t lda, const float* bp,
                                    float* c, int64_t ldc, bool accumulate) {
  avx2::Tile6x16 t;
  avx2::tile6x16_zero(t);
  avx2::tile6x16_fma(
      t, kc, [a, lda](int i, int64_t p) { return a + i * lda + p; }, bp, kGemmNr);
  avx2::tile6x16_store(t, c, ldc, accumulate);
}

// One full 16-column B panel from B stored transposed (B(p, j) = b[j*cs + p]): 8x8 register
// transposes instead of 16 strided scalar writes per k.
void sgemm_pack_b_panel_t__avx2(int64_t kc, const float* b, int64_t cs, float* dst) {
  int64_t p = 0;
  for (; p + 8 <= kc; p += 8)
    for (int half = 0; half < 2; ++half) {
      const float* src = b + half * 8 * cs + p;
      const __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + cs);
      const __m256 r2 = _mm256_loadu_ps(src + 2 * cs), r3 = _mm256_loadu_ps(src + 3 * cs);
      const __m256 r4 = _mm256_loadu_ps(src + 4 * cs), r5 = _mm256_loadu_ps(src + 5 * cs);
      const __m256 r6 = _mm256_loadu_ps(src + 6 * cs), r7 = _mm256_loadu_ps(src + 7 * cs);
      const __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1);
      const __m256 t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3);
      const __m256 t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5);
      const __m256 t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
      const __m256 s0 = _mm256_shuffle_ps(t0, t2, 0x44), s1 = _mm256_shuffle_ps(t0, t2, 0xEE);
      const __m256 s2 = _mm256_shuffle_ps(t1, t3, 0x44), s3 = _mm256_shuffle_ps(t1, t3, 0xEE);
      const __m256 s4 = _mm256_shuffle_ps(t4, t6, 0x44), s5 = _mm256_shuffle_ps(t4, t6, 0xEE);
      const __m256 s6 = _mm256_shuffle_ps(t5, t7, 0x44), s7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* d = dst + p * 16 + half * 8;  // row q of the output is k = p + q
      _mm256_store_ps(d + 0 * 16, _mm256_permute2f128_ps(s0, s4, 0x20));
      _mm256_store_ps(d + 1 * 16, _mm256_permute2f128_ps(s1, s5, 0x20));
      _mm256_store_ps(d + 2 * 16, _mm256_permute2f128_ps(s2, s6, 0x20));
      _mm256_store_ps(d + 3 * 16, _mm256_permute2f128_ps(s3, s7, 0x20));
      _mm256_store_ps(d + 4 * 16, _mm256_permute2f128_ps(s0, s4, 0x31));
      _mm256_store_ps(d + 5 * 16, _mm256_permute2f128_ps(s1, s5, 0x31));
      _mm256_store_ps(d + 6 * 16, _mm256_permute2f128_ps(s2, s6, 0x31));
      _mm256_store_ps(d + 7 * 16, _mm256_permute2f128_ps(s3, s7, 0x31));
    }
  for (; p < kc; ++p)
    for (int j = 0; j < 16; ++j) dst[p * 16 + j] = b[j * cs + p];
}

}  // namespace bfcn
