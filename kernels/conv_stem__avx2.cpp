// AVX2+FMA direct-convolution microkernel for the stem: the 6x16 sgemm tile (12 ymm accumulators,
// per k two B loads and 6 broadcasts) whose A rows are read straight from the zero-padded NHWC
// image, one contiguous K*C run per kernel row, so no im2col buffer is written.
#include <immintrin.h>

#include "kernels/conv_stem.h"

namespace bfcn {

void conv_stem_ukernel_6x16__avx2(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                  const float* bp, float* c, int64_t ldc) {
  __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps();
  __m256 c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
  __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps();
  __m256 c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
  __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps();
  __m256 c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    const float* a0 = a + r * rs;
    const float* a1 = a0 + lda;
    const float* a2 = a0 + 2 * lda;
    const float* a3 = a0 + 3 * lda;
    const float* a4 = a0 + 4 * lda;
    const float* a5 = a0 + 5 * lda;
#pragma GCC unroll 4
    for (int p = 0; p < run; ++p) {
      const __m256 b0 = _mm256_load_ps(bp);
      const __m256 b1 = _mm256_load_ps(bp + 8);
      __m256 av = _mm256_broadcast_ss(a0 + p);
      c00 = _mm256_fmadd_ps(av, b0, c00);
      c01 = _mm256_fmadd_ps(av, b1, c01);
      av = _mm256_broadcast_ss(a1 + p);
      c10 = _mm256_fmadd_ps(av, b0, c10);
      c11 = _mm256_fmadd_ps(av, b1, c11);
      av = _mm256_broadcast_ss(a2 + p);
      c20 = _mm256_fmadd_ps(av, b0, c20);
      c21 = _mm256_fmadd_ps(av, b1, c21);
      av = _mm256_broadcast_ss(a3 + p);
      c30 = _mm256_fmadd_ps(av, b0, c30);
      c31 = _mm256_fmadd_ps(av, b1, c31);
      av = _mm256_broadcast_ss(a4 + p);
      c40 = _mm256_fmadd_ps(av, b0, c40);
      c41 = _mm256_fmadd_ps(av, b1, c41);
      av = _mm256_broadcast_ss(a5 + p);
      c50 = _mm256_fmadd_ps(av, b0, c50);
      c51 = _mm256_fmadd_ps(av, b1, c51);
      bp += 16;
    }
  }
  auto store = [&](float* row, __m256 lo, __m256 hi) {
    _mm256_storeu_ps(row, lo);
    _mm256_storeu_ps(row + 8, hi);
  };
  store(c + 0 * ldc, c00, c01);
  store(c + 1 * ldc, c10, c11);
  store(c + 2 * ldc, c20, c21);
  store(c + 3 * ldc, c30, c31);
  store(c + 4 * ldc, c40, c41);
  store(c + 5 * ldc, c50, c51);
}

// 8 channels per step. The asm barriers keep GCC from contracting mul+add into an FMA, so every
// value is rounded exactly as in the scalar quantize_pack_act; _mm256_round_ps is
// round-to-nearest-even like quantize_level's 1.5*2^23 trick.
void conv_stem_quantize__avx2(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                              const float* mul, const float* add, int bits, uint8_t* q) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 levels = _mm256_set1_ps(float((1 << bits) - 1));
  const int oc8 = oc / 8 * 8;
  for (int64_t i = 0; i < m; ++i, acc += oc, q += oc) {
    for (int o = 0; o < oc8; o += 8) {
      __m256 v = _mm256_add_ps(_mm256_loadu_ps(acc + o), _mm256_loadu_ps(bias + o));
      if (relu) v = _mm256_max_ps(v, zero);  // (v > 0 ? v : 0): NaN -> 0
      if (mul) {
        v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + o));
        asm("" : "+x"(v));
      }
      if (add) v = _mm256_add_ps(v, _mm256_loadu_ps(add + o));
      v = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(v, zero), one), levels);  // NaN -> 0
      asm("" : "+x"(v));
      const __m256i qi =
          _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      const __m128i w16 =
          _mm_packus_epi32(_mm256_castsi256_si128(qi), _mm256_extracti128_si256(qi, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(q + o), _mm_packus_epi16(w16, w16));
    }
    if (oc8 < oc)
      conv_stem_quantize__ref(acc + oc8, 1, oc - oc8, bias + oc8, relu, mul ? mul + oc8 : nullptr,
                              add ? add + oc8 : nullptr, bits, q + oc8);
  }
}

}  // namespace bfcn
