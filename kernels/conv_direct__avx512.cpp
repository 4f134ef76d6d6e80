// AVX-512 register tiles of a direct 3x3, stride-1 convolution (kernels/conv.h, ConvTile3x3Fn):
// up to 12 output channels x 32 output pixels in 24 zmm accumulators, the depth being (input
// channel, tap) in the weights' own order. Per tap two unit-stride loads of a zero-padded input row
// (the tap's row pointer plus its column offset), 12 broadcasts of a weight and 24 FMAs: the
// 12x32 GEMM tile's ratio, with no im2col copy (which had cost a tenth of the deep layers' forward
// time) and the weights read in place with any row and channel stride, so the same tile runs
// backward-data on the untransposed weights (FLIP: tap 8 - t, the kernel rotated by 180 degrees).
// Compiled with -mavx512f... (file name); called only when active_isa() allows it. No
// standard-library templates here (their instantiations would carry AVX-512 code into other
// files; <type_traits> only names types).
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "kernels/conv.h"
#include "kernels/gemm_tile__avx512.h"

namespace bfcn {

template <int MP, int NP, bool FLIP>
void conv3x3_tile__avx512(int64_t nch, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                          int64_t b_cs, int64_t b_rs, int64_t b_next, float* c, int64_t ldc,
                          bool accumulate) {
  constexpr int M = 6 * MP;
  avx512::TileAcc<M, NP> acc;
  acc.zero();
  // Rows in threes from MP*2 base pointers (row 3q + r at base q + r*a_rs), tap rows from three
  // (the column tap a displacement); opaque to the compiler at each channel, so that it addresses
  // every load from them instead of keeping 108 derived pointers (which spilled).
  const float* ab[4] = {a, a + 3 * a_rs, a + 6 * a_rs, a + 9 * a_rs};
  const float* bb[3] = {b, b + b_rs, b + 2 * b_rs};
  for (int64_t ch = 0; ch < nch; ++ch) {
    asm("" : "+r"(ab[0]), "+r"(ab[1]), "+r"(bb[0]), "+r"(bb[1]), "+r"(bb[2]));
    if constexpr (MP > 1) asm("" : "+r"(ab[2]), "+r"(ab[3]));
#pragma GCC unroll 9
    for (int t = 0; t < 9; ++t) {
      const float* br = bb[t / 3] + t % 3;
      __m512 bv[NP];
      bv[0] = _mm512_loadu_ps(br);
      if constexpr (NP > 1) bv[1] = _mm512_loadu_ps(br + b_next);
      const int ta = FLIP ? 8 - t : t;
      acc.fma(bv, [&](int i) { return ab[i / 3][(i % 3) * a_rs + ta]; });
    }
    for (int q = 0; q < 2 * MP; ++q) ab[q] += a_cs;
    for (int q = 0; q < 3; ++q) bb[q] += b_cs;
  }
  acc.store(c, ldc, 16, accumulate);
}

// Backward-weight tile: rows (channel cq < NCH, column tap kj < 3) of one row tap, 16*NP output
// channels, the depth being the output pixels of nrows rows: per pixel two loads of the packed dY^T
// panels, 3*NCH broadcasts of the zero-padded input (4 channel rows, the column tap a displacement)
// and 6*NCH FMAs. The second 16 columns of C are c_next floats after the first.
template <int NCH, int NP>
void conv3x3_wgrad_tile__avx512(int64_t nrows, int64_t wo, const float* a, int64_t a_cs,
                                int64_t lda, const float* b, int64_t b_next, float* c, int64_t ldc,
                                int64_t c_next, bool accumulate) {
  constexpr int M = 3 * NCH;
  avx512::TileAcc<M, NP> acc;
  acc.zero();
  for (int64_t r = 0; r < nrows; ++r, a += lda) {
#pragma GCC unroll 2
    for (int64_t ow = 0; ow < wo; ++ow, b += 16) {
      __m512 bv[NP];
      bv[0] = _mm512_loadu_ps(b);
      if constexpr (NP > 1) bv[1] = _mm512_loadu_ps(b + b_next);
      // Opaque to the compiler: otherwise it keeps the broadcasts that the next pixel's column
      // taps reuse in registers, spilling accumulators.
      const float* ar = a + ow;
      asm("" : "+r"(ar));
      acc.fma(bv, [&](int i) { return ar[(i / 3) * a_cs + i % 3]; });
    }
  }
  acc.store(c, ldc, c_next, accumulate);
}

// Forward tile on column-phase rows (kernels/conv.h, ConvFwdPhaseTileFn): 6*MP output channels x
// 32 output pixels in 12*MP zmm accumulators; per depth step two unit-stride loads of a phase row
// (the column tap a displacement: no gathered copy per tap) and 6*MP broadcasts of the packed
// weights; the bias is added as the tile is stored (no second pass over the output rows).
template <int MP>
void conv_fwd_phase_tile__avx512(const ConvPhaseGeom& pg, const float* ap, const float* b,
                                 const float* bias, int64_t mr, int64_t nr, float* c, int64_t ldc) {
  constexpr int M = 6 * MP;
  avx512::TileAcc<M, 2> acc;
  acc.zero();
  // The output lines, a whole tile of FMAs before they are stored: their misses (16 MB of
  // output for the stem) had cost a tenth of the time.
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i) {
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16), _MM_HINT_T0);
  }
  for (int64_t ki = 0; ki < pg.kh; ++ki, b += pg.b_rs)
    for (int64_t kj = 0; kj < pg.kw; ++kj) {
      const float* bj = b + pg.koff[kj];
      for (int64_t ch = 0; ch < pg.nc; ++ch, bj += pg.cs, ap += M) {
        const __m512 bv[2] = {_mm512_loadu_ps(bj), _mm512_loadu_ps(bj + 16)};
        acc.fma(bv, [&](int i) { return ap[i]; });
      }
    }
  const __mmask16 m0 = nr >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << nr) - 1u);
  const __mmask16 m1 = nr >= 32   ? __mmask16(0xFFFF)
                       : nr <= 16 ? __mmask16(0)
                                  : __mmask16((1u << (nr - 16)) - 1u);
#pragma GCC unroll 12
  for (int i = 0; i < M; ++i) {
    if (i >= mr) break;
    __m512 v0 = acc.v[i][0], v1 = acc.v[i][1];
    if (bias != nullptr) {
      const __m512 bb = _mm512_set1_ps(bias[i]);
      v0 = _mm512_add_ps(v0, bb);
      v1 = _mm512_add_ps(v1, bb);
    }
    _mm512_mask_storeu_ps(c + i * ldc, m0, v0);
    _mm512_mask_storeu_ps(c + i * ldc + 16, m1, v1);
  }
}

namespace {

// In-register transpose: out[k] lane j = r[j] lane k.
[[gnu::always_inline]] inline void transpose16(const __m512 (&r)[16], __m512 (&out)[16]) {
  __m512 t[16], u[16], v[16];
#pragma GCC unroll 8
  for (int q = 0; q < 8; ++q) {
    t[2 * q] = _mm512_mask_unpacklo_ps(r[2 * q], 0xFFFF, r[2 * q], r[2 * q + 1]);
    t[2 * q + 1] = _mm512_mask_unpackhi_ps(r[2 * q], 0xFFFF, r[2 * q], r[2 * q + 1]);
  }
#pragma GCC unroll 4
  for (int q = 0; q < 4; ++q) {  // u[4q + m]: column 4L + m of rows 4q..4q+3, 128-bit lane L
    u[4 * q] = _mm512_mask_shuffle_ps(t[4 * q], 0xFFFF, t[4 * q], t[4 * q + 2], 0x44);
    u[4 * q + 1] = _mm512_mask_shuffle_ps(t[4 * q], 0xFFFF, t[4 * q], t[4 * q + 2], 0xEE);
    u[4 * q + 2] = _mm512_mask_shuffle_ps(t[4 * q + 1], 0xFFFF, t[4 * q + 1], t[4 * q + 3], 0x44);
    u[4 * q + 3] = _mm512_mask_shuffle_ps(t[4 * q + 1], 0xFFFF, t[4 * q + 1], t[4 * q + 3], 0xEE);
  }
#pragma GCC unroll 2
  for (int h = 0; h < 2; ++h)
#pragma GCC unroll 4
    for (int m = 0; m < 4; ++m) {
      v[8 * h + m] =
          _mm512_mask_shuffle_f32x4(u[8 * h + m], 0xFFFF, u[8 * h + m], u[8 * h + 4 + m], 0x88);
      v[8 * h + 4 + m] =
          _mm512_mask_shuffle_f32x4(u[8 * h + m], 0xFFFF, u[8 * h + m], u[8 * h + 4 + m], 0xDD);
    }
#pragma GCC unroll 4
  for (int m = 0; m < 4; ++m) {
    out[m] = _mm512_mask_shuffle_f32x4(v[m], 0xFFFF, v[m], v[8 + m], 0x88);
    out[8 + m] = _mm512_mask_shuffle_f32x4(v[m], 0xFFFF, v[m], v[8 + m], 0xDD);
    out[4 + m] = _mm512_mask_shuffle_f32x4(v[4 + m], 0xFFFF, v[4 + m], v[12 + m], 0x88);
    out[12 + m] = _mm512_mask_shuffle_f32x4(v[4 + m], 0xFFFF, v[4 + m], v[12 + m], 0xDD);
  }
}

}  // namespace

// acc rows (ki*C + c)*3 + kj of 32 floats (output channels k < nk) into dW rows k (ldw apart),
// column c*9 + ki*3 + kj: 16x16 blocks transposed in registers (the scalar loop had cost a sixth
// of the 512-channel layer's backward-weight time).
void conv3x3_wgrad_store__avx512(const float* acc, int64_t c, int64_t nk, float* dw, int64_t ldw) {
  const int64_t r = 9 * c;
  for (int64_t col0 = 0; col0 < r; col0 += 16) {
    const int64_t ncol = r - col0 < 16 ? r - col0 : 16;
    const __mmask16 m = ncol == 16 ? __mmask16(0xFFFF) : __mmask16((1u << ncol) - 1u);
    const float* src[16];
    for (int j = 0; j < 16; ++j) {
      const int64_t col = col0 + (j < ncol ? j : 0), ch = col / 9, t = col % 9;
      src[j] = acc + ((t / 3 * c + ch) * 3 + t % 3) * 32;
    }
    for (int64_t k0 = 0; k0 < nk; k0 += 16) {
      __m512 rows[16], out[16];
#pragma GCC unroll 16
      for (int j = 0; j < 16; ++j) rows[j] = _mm512_loadu_ps(src[j] + k0);
      transpose16(rows, out);
      const int64_t kn = nk - k0 < 16 ? nk - k0 : 16;
      for (int64_t k = 0; k < kn; ++k) _mm512_mask_storeu_ps(dw + (k0 + k) * ldw + col0, m, out[k]);
    }
  }
}

// The tiles the row variant table names (kernels/conv.cpp).
using Tile = std::remove_pointer_t<ConvTile3x3Fn>;
template Tile conv3x3_tile__avx512<1, 1, false>;
template Tile conv3x3_tile__avx512<1, 2, false>;
template Tile conv3x3_tile__avx512<2, 1, false>;
template Tile conv3x3_tile__avx512<2, 2, false>;
template Tile conv3x3_tile__avx512<1, 1, true>;
template Tile conv3x3_tile__avx512<1, 2, true>;
template Tile conv3x3_tile__avx512<2, 1, true>;
template Tile conv3x3_tile__avx512<2, 2, true>;
using FwdPhaseTile = std::remove_pointer_t<ConvFwdPhaseTileFn>;
template FwdPhaseTile conv_fwd_phase_tile__avx512<1>;
template FwdPhaseTile conv_fwd_phase_tile__avx512<2>;
using WgradTile = std::remove_pointer_t<ConvWgradTile3x3Fn>;
template WgradTile conv3x3_wgrad_tile__avx512<2, 1>;
template WgradTile conv3x3_wgrad_tile__avx512<2, 2>;
template WgradTile conv3x3_wgrad_tile__avx512<4, 1>;
template WgradTile conv3x3_wgrad_tile__avx512<4, 2>;

}  // namespace bfcn
