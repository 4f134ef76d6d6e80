// AVX-512 sgemm tiles: up to 12x32 (two 6-row A panels x two 16-column B panels) in 24 zmm
// accumulators; per k two B loads, 12 broadcasts of A and 24 FMAs, so the two 512-bit FMA pipes
// (Zen 4/5, Skylake-X) stay busy with loads to spare (a 6x16 zmm tile would need a load per FMA).
// The packed layouts are the AVX2 kernel's, so packing and the conv lowering do not change with
// the ISA. The packed and the in-place tiles are one body (tile()) with an A-reader policy.
// Compiled with -mavx512f... (file name); only called when active_isa() allows it. No
// standard-library templates here: their instantiations would carry AVX-512 code into other files
// (<type_traits> only names types).
#include <immintrin.h>

#include <type_traits>

#include "kernels/gemm.h"
#include "kernels/gemm_tile__avx512.h"

namespace bfcn {

namespace {

// How a tile reads A (the A-reader of tile() below): at(i, p) is row i's value at step p of k.
// Packed: MP panels of kc groups of 6 values, panel 1 at + a_next.
template <int MP>
struct PackedA {
  const float* a0;
  const float* a1;
  PackedA(const float* ap, int64_t a_next) : a0(ap), a1(ap + (MP > 1 ? a_next : 0)) {}
  float at(int i, int64_t p) const { return i < 6 ? a0[p * 6 + i] : a1[p * 6 + i - 6]; }
};

// Rows in place: row i at a + i*lda, k contiguous.
struct RowsA {
  const float* a;
  int64_t lda;
  float at(int i, int64_t p) const { return a[i * lda + p]; }
};

// The (6*MP) x (16*NP) tile: every element summed from zero in k order with FMA, then stored (or
// added to C). A is only ever broadcast, so the reader's addressing is the one difference.
template <int MP, int NP, class ReadA>
[[gnu::always_inline]] inline void tile(int64_t kc, ReadA a, const float* b, int64_t ldb,
                                        int64_t b_next, float* c, int64_t ldc, bool accumulate) {
  constexpr int M = 6 * MP;
  avx512::TileAcc<M, NP> acc;
  acc.zero();
  const float* b1 = b + (NP > 1 ? b_next : 0);
#pragma GCC unroll 2
  for (int64_t p = 0; p < kc; ++p) {
    __m512 bv[NP];
    bv[0] = _mm512_loadu_ps(b + p * ldb);
    if constexpr (NP > 1) bv[1] = _mm512_loadu_ps(b1 + p * ldb);
    acc.fma(bv, [&](int i) { return a.at(i, p); });
  }
  acc.store(c, ldc, 16, accumulate);
}

}  // namespace

template <int MP, int NP>
void sgemm_tile__avx512(int64_t kc, const float* ap, int64_t a_next, const float* b, int64_t ldb,
                        int64_t b_next, float* c, int64_t ldc, bool accumulate) {
  tile<MP, NP>(kc, PackedA<MP>(ap, a_next), b, ldb, b_next, c, ldc, accumulate);
}

template <int MP, int NP>
void sgemm_tile_arows__avx512(int64_t kc, const float* a, int64_t lda, const float* b, int64_t ldb,
                              int64_t b_next, float* c, int64_t ldc, bool accumulate) {
  tile<MP, NP>(kc, RowsA{a, lda}, b, ldb, b_next, c, ldc, accumulate);
}

// The tiles the variant table names (kernels/gemm.cpp).
using Tile = std::remove_pointer_t<GemmTile>;
using TileArows = std::remove_pointer_t<GemmTileArows>;
template Tile sgemm_tile__avx512<1, 1>;
template Tile sgemm_tile__avx512<1, 2>;
template Tile sgemm_tile__avx512<2, 1>;
template Tile sgemm_tile__avx512<2, 2>;
template TileArows sgemm_tile_arows__avx512<1, 1>;
template TileArows sgemm_tile_arows__avx512<1, 2>;
template TileArows sgemm_tile_arows__avx512<2, 1>;
template TileArows sgemm_tile_arows__avx512<2, 2>;

}  // namespace bfcn
