// AVX-512 sgemm tiles: up to 12x32 (two 6-row A panels x two 16-column B panels) in 24 zmm
// accumulators; per k two B loads, 12 broadcasts of A and 24 FMAs, so the two 512-bit FMA pipes
// (Zen 4/5, Skylake-X) stay busy with loads to spare (a 6x16 zmm tile would need a load per FMA).
// The packed layouts are the AVX2 kernel's, so packing and the conv lowering do not change with
// the ISA. Compiled with -mavx512f... (file name); only called when active_isa() allows it. No
// standard-library templates here: their instantiations would carry AVX-512 code into other files.
#include <immintrin.h>

#include "kernels/gemm.h"

namespace bfcn {

namespace {

template <int M, int NP>
inline void store_tile(__m512 (&acc)[M][NP], float* c, int64_t ldc, bool accumulate) {
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) {
      float* row = c + i * ldc + j * 16;
      __m512 v = acc[i][j];
      if (accumulate) v = _mm512_add_ps(_mm512_loadu_ps(row), v);
      _mm512_storeu_ps(row, v);
    }
}

}  // namespace

template <int MP, int NP>
void sgemm_tile__avx512(int64_t kc, const float* ap, int64_t a_next, const float* b, int64_t ldb,
                        int64_t b_next, float* c, int64_t ldc, bool accumulate) {
  constexpr int M = 6 * MP;
  __m512 acc[M][NP];
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* a1 = ap + (MP > 1 ? a_next : 0);
  const float* b1 = b + (NP > 1 ? b_next : 0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NP];
    bv[0] = _mm512_loadu_ps(b);
    if constexpr (NP > 1) bv[1] = _mm512_loadu_ps(b1);
#pragma GCC unroll 6
    for (int i = 0; i < 6; ++i) {
      const __m512 av = _mm512_set1_ps(ap[i]);
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
    if constexpr (MP > 1) {
#pragma GCC unroll 6
      for (int i = 0; i < 6; ++i) {
        const __m512 av = _mm512_set1_ps(a1[i]);
#pragma GCC unroll 2
        for (int j = 0; j < NP; ++j) acc[6 + i][j] = _mm512_fmadd_ps(av, bv[j], acc[6 + i][j]);
      }
      a1 += 6;
    }
    ap += 6;
    b += ldb;
    b1 += ldb;
  }
  store_tile<M, NP>(acc, c, ldc, accumulate);
}

template <int MP, int NP>
void sgemm_tile_arows__avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                              int64_t b_next, float* c, int64_t ldc, bool accumulate) {
  constexpr int M = 6 * MP;
  __m512 acc[M][NP];
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i)
#pragma GCC unroll 2
    for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_ps();
  const float* b1 = b + (NP > 1 ? b_next : 0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NP];
    bv[0] = _mm512_loadu_ps(b + p * ldb);
    if constexpr (NP > 1) bv[1] = _mm512_loadu_ps(b1 + p * ldb);
#pragma GCC unroll 12
    for (int i = 0; i < M; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + p]);
#pragma GCC unroll 2
      for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_fmadd_ps(av, bv[j], acc[i][j]);
    }
  }
  store_tile<M, NP>(acc, c, ldc, accumulate);
}

template void sgemm_tile__avx512<1, 1>(int64_t, const float*, int64_t, const float*, int64_t,
                                       int64_t, float*, int64_t, bool);
template void sgemm_tile__avx512<1, 2>(int64_t, const float*, int64_t, const float*, int64_t,
                                       int64_t, float*, int64_t, bool);
template void sgemm_tile__avx512<2, 1>(int64_t, const float*, int64_t, const float*, int64_t,
                                       int64_t, float*, int64_t, bool);
template void sgemm_tile__avx512<2, 2>(int64_t, const float*, int64_t, const float*, int64_t,
                                       int64_t, float*, int64_t, bool);
template void sgemm_tile_arows__avx512<1, 1>(int64_t, const float*, int64_t, const float*, int64_t,
                                             int64_t, float*, int64_t, bool);
template void sgemm_tile_arows__avx512<1, 2>(int64_t, const float*, int64_t, const float*, int64_t,
                                             int64_t, float*, int64_t, bool);
template void sgemm_tile_arows__avx512<2, 1>(int64_t, const float*, int64_t, const float*, int64_t,
                                             int64_t, float*, int64_t, bool);
template void sgemm_tile_arows__avx512<2, 2>(int64_t, const float*, int64_t, const float*, int64_t,
                                             int64_t, float*, int64_t, bool);

}  // namespace bfcn
