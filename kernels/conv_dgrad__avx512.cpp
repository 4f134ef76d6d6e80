// AVX-512 direct backward-data for convolutions with few input channels and stride 2 along the
// width (the 7x7/2 RGB stem): dx is computed row by row, each row as its two column phases (even
// and odd input columns). For one phase every tap (ki, kj) of matching parity reads a contiguous
// run of a dY row, so the sum over output channels, row taps and column taps is FMAs of unit-stride
// dY vectors with broadcast weights into registers of 16 dx columns; the two phases are then
// interleaved into the dx row with two permutes (stores past the row end masked). This replaces
// GEMM + col2im, whose stride-2 scatter-add of 49 taps per input channel had cost a third of the
// stem's backward-data time. The dY rows are read from a zero-padded copy (see dgrad_rows).
// Compiled with -mavx512f... (file name); called only when active_isa() allows it.
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/conv.h"

namespace bfcn {

namespace {

// Lanes l of [0, 16) with lo <= l < hi.
__mmask16 lanes_in(int64_t lo, int64_t hi) {
  lo = std::max<int64_t>(lo, 0);
  hi = std::min<int64_t>(hi, 16);
  if (hi <= lo) return 0;
  const uint32_t upto_hi = (1u << hi) - 1u, below_lo = (1u << lo) - 1u;
  return __mmask16(upto_hi & ~below_lo);
}

// The dY rows of the rows being computed are copied into a ring of nslots = ceil(kh/stride_h)
// rows of all kg channels, each channel row padded with zeros to ld floats (no masked loads, and
// the channel stride is no longer a power of two: dY rows a whole channel apart alias in L1/L2).
constexpr int64_t kMargin = 16;  // zeros left of column 0; more than any tap offset (kw <= 33)
thread_local std::vector<float> t_ring;

// acc[c][jj] += sum over k < kg of src[k*ld + 16*jj ..] * wq[k*CG + c] (the k order fixed).
template <int CG, int J>
[[gnu::always_inline]] inline void tap_sum(int64_t kg, const float* src, int64_t ld,
                                           const float* wq, __m512 (&acc)[CG][J]) {
  for (int64_t k = 0; k < kg; ++k, src += ld, wq += CG) {
    __m512 wv[CG];
    for (int c = 0; c < CG; ++c) wv[c] = _mm512_set1_ps(wq[c]);
    for (int jj = 0; jj < J; ++jj) {
      __m512 v = _mm512_loadu_ps(src + 16 * jj);
      // One (unaligned, line-splitting) load per vector, not one folded into each of the CG FMAs.
      asm("" : "+v"(v));
      for (int c = 0; c < CG; ++c) acc[c][jj] = _mm512_fmadd_ps(v, wv[c], acc[c][jj]);
    }
  }
}

// Phase columns j0 .. j0 + 16*J - 1 of dx row ih, every one of the CG channels: dx[c][ih][2j+pw].
// dY row oh of channel k is at ring[(oh % nslots) * kg * ld + k * ld + kMargin + ow], zeros for
// ow outside [0, wo) up to the margins.
template <int CG, int J>
void dgrad_block(const ConvGeom& g, const float* ring, int64_t nslots, int64_t ld, const float* wp,
                 int64_t ih, int64_t j0, float* dx) {
  const int64_t ho = g.out_h(), kg = g.k / g.groups, hw = g.h * g.w;
  alignas(64) float even[CG][16 * J];  // phase 0, kept until phase 1 is done
  for (int pw = 0; pw < 2; ++pw) {
    __m512 acc[CG][J];
    for (int c = 0; c < CG; ++c)
      for (int jj = 0; jj < J; ++jj) acc[c][jj] = _mm512_setzero_ps();
    for (int64_t ki = 0; ki < g.kh; ++ki) {
      const int64_t num_h = ih + g.pad_h - ki;
      if (num_h < 0 || num_h % g.stride_h != 0 || num_h / g.stride_h >= ho) continue;
      const float* dyr = ring + ((num_h / g.stride_h) % nslots) * kg * ld + kMargin;
      // Column taps of this phase: iw = 2*ow - pad_w + kj = 2*j + pw, so ow = j + o with
      // o = (pw + pad_w - kj) / 2 for kj of the parity of pw + pad_w.
      for (int64_t kj = (pw + g.pad_w) % 2; kj < g.kw; kj += 2) {
        const int64_t col0 = j0 + (pw + g.pad_w - kj) / 2;
        tap_sum<CG, J>(kg, dyr + col0, ld, wp + (ki * g.kw + kj) * kg * CG, acc);
      }
    }
    if (pw == 0) {
      for (int c = 0; c < CG; ++c)
        for (int jj = 0; jj < J; ++jj) _mm512_store_ps(even[c] + 16 * jj, acc[c][jj]);
      continue;
    }
    const __m512i lo_idx =
        _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi_idx =
        _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    for (int c = 0; c < CG; ++c) {
      float* row = dx + c * hw + ih * g.w;
      for (int jj = 0; jj < J; ++jj) {
        const int64_t iw = 2 * (j0 + 16 * jj);
        if (iw >= g.w) break;
        const __m512 e = _mm512_load_ps(even[c] + 16 * jj), o = acc[c][jj];
        _mm512_mask_storeu_ps(row + iw, lanes_in(0, g.w - iw),
                              _mm512_permutex2var_ps(e, lo_idx, o));
        _mm512_mask_storeu_ps(row + iw + 16, lanes_in(0, g.w - iw - 16),
                              _mm512_permutex2var_ps(e, hi_idx, o));
      }
    }
  }
}

template <int CG>
void dgrad_rows(const ConvGeom& g, const float* dy, const float* wp, int64_t ih0, int64_t ih1,
                float* dx) {
  constexpr int J = CG == 4 ? 6 : 8;  // CG*J accumulators + CG weights + 1: at most 28 registers
  const int64_t ho = g.out_h(), wo = g.out_w(), kg = g.k / g.groups;
  const int64_t nj = (g.w + 1) / 2;  // phase columns (phase 0 has this many)
  const int64_t span = (nj + 16 * J - 1) / (16 * J) * (16 * J);
  // Loads reach column span - 1 + o for the largest tap offset o = (1 + pad_w) / 2; an odd number
  // of cache lines per channel row spreads the channels over all cache sets.
  int64_t ld = (kMargin + std::max(span + (1 + g.pad_w) / 2, wo) + 15) / 16 * 16;
  if (ld / 16 % 2 == 0) ld += 16;
  const int64_t nslots = (g.kh - 1) / g.stride_h + 1;
  t_ring.resize(static_cast<size_t>(nslots * kg * ld));
  float* ring = t_ring.data();
  int64_t next = 0;  // dY rows below next are in the ring (or were, for past rows)
  for (int64_t ih = ih0; ih < ih1; ++ih) {
    const int64_t hi = std::min(ho - 1, (ih + g.pad_h) / g.stride_h);  // last dY row used
    const int64_t lo_num = ih + g.pad_h - (g.kh - 1);
    const int64_t lo =
        std::max<int64_t>(0, lo_num <= 0 ? 0 : (lo_num + g.stride_h - 1) / g.stride_h);
    next = std::max(next, lo);
    for (; next <= hi; ++next) {
      float* slot = ring + (next % nslots) * kg * ld;
      for (int64_t k = 0; k < kg; ++k) {
        float* r = slot + k * ld;
        std::fill(r, r + kMargin, 0.0f);
        std::memcpy(r + kMargin, dy + (k * ho + next) * wo,
                    static_cast<size_t>(wo) * sizeof(float));
        std::fill(r + kMargin + wo, r + ld, 0.0f);
      }
    }
    for (int64_t j0 = 0; j0 < nj; j0 += 16 * J)
      dgrad_block<CG, J>(g, ring, nslots, ld, wp, ih, j0, dx);
  }
}

}  // namespace

void conv2d_dgrad_rows_w2__avx512(const ConvGeom& g, const float* dy, const float* wp, int64_t ih0,
                                  int64_t ih1, float* dx) {
  switch (g.c / g.groups) {
    case 1:
      return dgrad_rows<1>(g, dy, wp, ih0, ih1, dx);
    case 2:
      return dgrad_rows<2>(g, dy, wp, ih0, ih1, dx);
    case 3:
      return dgrad_rows<3>(g, dy, wp, ih0, ih1, dx);
    case 4:
      return dgrad_rows<4>(g, dy, wp, ih0, ih1, dx);
    default:
      break;  // the caller checks cg <= kConvDgradMaxC
  }
}

}  // namespace bfcn
