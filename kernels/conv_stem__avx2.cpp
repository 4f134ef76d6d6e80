// AVX2+FMA direct-convolution microkernel for the stem: the 6x16 sgemm register tile
// (gemm_ukernel__avx2.h: 12 ymm accumulators, per k two B loads and 6 broadcasts) whose A rows are
// read straight from the zero-padded NHWC image, one contiguous K*C run per kernel row, so no
// im2col buffer is written.
#include <immintrin.h>

#include "kernels/conv_stem.h"
#include "kernels/gemm_ukernel__avx2.h"

namespace bfcn {

void conv_stem_ukernel_6x16__avx2(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                  const float* bp, float* c, int64_t ldc) {
  avx2::Tile6x16 t;
  avx2::tile6x16_zero(t);
  for (int r = 0; r < rows; ++r, bp += int64_t(run) * 16) {
    const float* ar = a + r * rs;  // kernel row r of the 6 pixels, one contiguous K*C run each
    avx2::tile6x16_fma(
        t, run, [ar, lda](int i, int64_t p) { return ar + i * lda + p; }, bp, 16);
  }
  avx2::tile6x16_store(t, c, ldc, false);
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
