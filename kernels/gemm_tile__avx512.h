// The AVX-512 FP32 register tile shared by the sgemm tiles (gemm__avx512.cpp) and the direct 3x3
// convolution tiles (conv_direct__avx512.cpp): M rows x NP 16-lane vectors of accumulators, each
// depth step one broadcast per row and NP FMAs per broadcast, the finished sums stored or added to
// C. The callers differ only in where a step's B vectors and A values live.
// Include only from *__avx512.cpp files: they are compiled with -mavx512f... (CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace bfcn::avx512 {

template <int M, int NP>
struct TileAcc {
  __m512 v[M][NP];

  [[gnu::always_inline]] void zero() {
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j) v[i][j] = _mm512_setzero_ps();
  }

  // One depth step: v[i][j] += a_at(i) * bv[j], every output summed in step order with FMA.
  template <class AAt>
  [[gnu::always_inline]] void fma(const __m512 (&bv)[NP], AAt a_at) {
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i) {
      const __m512 av = _mm512_set1_ps(a_at(i));
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j) v[i][j] = _mm512_fmadd_ps(av, bv[j], v[i][j]);
    }
  }

  // Row i, vector j to c + i*ldc + j*c_next (unaligned), added to what is there when accumulate.
  [[gnu::always_inline]] void store(float* c, int64_t ldc, int64_t c_next, bool accumulate) const {
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j) {
        float* row = c + i * ldc + j * c_next;
        __m512 s = v[i][j];
        if (accumulate) s = _mm512_add_ps(_mm512_loadu_ps(row), s);
        _mm512_storeu_ps(row, s);
      }
  }
};

}  // namespace bfcn::avx512
