// The AVX2+FMA 6x16 FP32 register tile, written once for the sgemm microkernels (gemm__avx2.cpp)
// and the stem's direct convolution (conv_stem__avx2.cpp): 12 ymm accumulators (6 rows x 2
// vectors), per k one pair of B loads and 6 broadcasts of A. The callers differ only in where A(i,
// p) lives (packed panel, rows in place, rows of the padded image), passed as an inlined accessor.
// Include only from *__avx2.cpp files: they are compiled with -mavx2 -mfma (CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace bfcn::avx2 {

struct Tile6x16 {
  __m256 lo[6], hi[6];  // row i, columns 0..7 and 8..15
};

[[gnu::always_inline]] inline void tile6x16_zero(Tile6x16& t) {
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) t.lo[i] = t.hi[i] = _mm256_setzero_ps();
}

// kc steps of t += A(:, p) * B(p, :): A(i, p) at a_at(i, p), B row p at the 32-byte aligned
// b + p * ldb. Each output is summed in p order with FMA (the reference-equality tests rely on it).
template <class AAt>
[[gnu::always_inline]] inline void tile6x16_fma(Tile6x16& t, int64_t kc, AAt a_at, const float* b,
                                                int64_t ldb) {
#pragma GCC unroll 4
  for (int64_t p = 0; p < kc; ++p, b += ldb) {
    const __m256 b0 = _mm256_load_ps(b);
    const __m256 b1 = _mm256_load_ps(b + 8);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m256 a = _mm256_broadcast_ss(a_at(i, p));
      t.lo[i] = _mm256_fmadd_ps(a, b0, t.lo[i]);
      t.hi[i] = _mm256_fmadd_ps(a, b1, t.hi[i]);
    }
  }
}

// Row i to c + i * ldc (unaligned), added to what is there when accumulate.
[[gnu::always_inline]] inline void tile6x16_store(const Tile6x16& t, float* c, int64_t ldc,
                                                  bool accumulate) {
#pragma GCC unroll 6
  for (int i = 0; i < 6; ++i) {
    float* row = c + i * ldc;
    __m256 lo = t.lo[i], hi = t.hi[i];
    if (accumulate) {
      lo = _mm256_add_ps(_mm256_loadu_ps(row), lo);
      hi = _mm256_add_ps(_mm256_loadu_ps(row + 8), hi);
    }
    _mm256_storeu_ps(row, lo);
    _mm256_storeu_ps(row + 8, hi);
  }
}

}  // namespace bfcn::avx2
