// AVX-512 helpers for stride-2 im2col/col2im rows (the 7x7/2 stem): 16 outputs per step by a
// two-register permute, the row ends by masked loads and stores (nothing past the row end is read
// or written; full steps rewrite the odd destination floats unchanged, as the AVX2 helper does).
// Same values as the AVX2 and scalar loops: a copy, and one add per element. Compiled with
// -mavx512f... (file name); called only when active_isa() allows it.
#include <immintrin.h>

#include <cstdint>

namespace bfcn {

namespace {
// Lanes [0, n) set, n clamped to [0, 16].
__mmask16 first_lanes(int64_t n) {
  return n <= 0 ? __mmask16(0) : n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1);
}
}  // namespace

// dst[i] = src[2*i] for i in [0, n). Reads src[0 .. 2n-2] only.
void gather_stride2__avx512(const float* src, float* dst, int64_t n) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  int64_t i = 0;
  for (; i + 16 < n; i += 16) {  // reads src[2i .. 2i+31] <= src[2n-2]
    const __m512 lo = _mm512_loadu_ps(src + 2 * i), hi = _mm512_loadu_ps(src + 2 * i + 16);
    _mm512_storeu_ps(dst + i, _mm512_permutex2var_ps(lo, even, hi));
  }
  for (; i < n; i += 16) {
    const int64_t span = 2 * (n - i) - 1;  // source floats this step may read
    const __m512 lo = _mm512_maskz_loadu_ps(first_lanes(span), src + 2 * i);
    const __m512 hi = _mm512_maskz_loadu_ps(first_lanes(span - 16), src + 2 * i + 16);
    _mm512_mask_storeu_ps(dst + i, first_lanes(n - i), _mm512_permutex2var_ps(lo, even, hi));
  }
}

// dst[2*i] += src[i] for i in [0, n). Touches dst[0 .. 2n-2] only.
void scatter_add_stride2__avx512(const float* src, float* dst, int64_t n) {
  // Source lane j goes to lane 2j of the first (j < 8) or second (j >= 8) destination register.
  const __m512i to_lo = _mm512_setr_epi32(0, 0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0);
  const __m512i to_hi = _mm512_setr_epi32(8, 0, 9, 0, 10, 0, 11, 0, 12, 0, 13, 0, 14, 0, 15, 0);
  int64_t i = 0;
  for (; i + 16 < n; i += 16) {  // touches dst[2i .. 2i+31] <= dst[2n-2], odd lanes rewritten
    const __m512 v = _mm512_loadu_ps(src + i);
    float* d = dst + 2 * i;
    const __m512 d_lo = _mm512_loadu_ps(d), d_hi = _mm512_loadu_ps(d + 16);
    _mm512_storeu_ps(
        d, _mm512_mask_add_ps(d_lo, 0x5555, d_lo, _mm512_maskz_permutexvar_ps(0x5555, to_lo, v)));
    _mm512_storeu_ps(d + 16, _mm512_mask_add_ps(d_hi, 0x5555, d_hi,
                                                _mm512_maskz_permutexvar_ps(0x5555, to_hi, v)));
  }
  for (; i < n; i += 16) {
    const __m512 v = _mm512_maskz_loadu_ps(first_lanes(n - i), src + i);
    const int64_t span = 2 * (n - i) - 1;  // destination floats this step may touch
    const __mmask16 m_lo = first_lanes(span) & 0x5555, m_hi = first_lanes(span - 16) & 0x5555;
    float* d = dst + 2 * i;
    const __m512 d_lo = _mm512_maskz_loadu_ps(m_lo, d);
    const __m512 d_hi = _mm512_maskz_loadu_ps(m_hi, d + 16);
    _mm512_mask_storeu_ps(d, m_lo,
                          _mm512_add_ps(d_lo, _mm512_maskz_permutexvar_ps(0x5555, to_lo, v)));
    _mm512_mask_storeu_ps(d + 16, m_hi,
                          _mm512_add_ps(d_hi, _mm512_maskz_permutexvar_ps(0x5555, to_hi, v)));
  }
}

}  // namespace bfcn
