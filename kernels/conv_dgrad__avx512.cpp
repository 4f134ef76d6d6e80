// AVX-512 direct backward-data for convolutions with few input channels and stride 2 along the
// width (the 7x7/2 RGB stem): dx is computed row by row, each row as its two column phases (even
// and odd input columns). A tap (ki, kj) of phase pw reads a contiguous run of a dY row at the
// column offset o = (pw + pad_w - kj) / 2, and each offset serves one tap of each phase (kj and
// kj + 1), so one load of 16 dY columns feeds the FMAs of both phases: the sum over output
// channels, row taps and offsets is FMAs of unit-stride dY vectors with broadcast weights into
// registers holding 16*J columns of both phases of every channel (2 x CG x J = 24 accumulators,
// kept over all output channels), interleaved into the dx row with two permutes at the end (stores
// past the row end masked). This replaces GEMM + col2im, whose stride-2 scatter-add of 49 taps per
// input channel had cost a third of the stem's backward-data time. The dY rows are read from a
// zero-padded copy (see dgrad_rows), so the borders need no conditions in the inner loop.
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
constexpr int64_t kMargin = 16;  // zeros left of column 0; at least any tap offset (kw <= 33)
thread_local std::vector<float> t_ring;
thread_local std::vector<float> t_wq;  // the weights tap-row major: [kh][kg][kw][CG]

// One column offset: the J dY vectors at src feed the phase-0 tap (weights w0[c], if P0) and the
// phase-1 tap (weights w1[c], if P1) of every channel c.
template <int CG, int J, bool P0, bool P1>
[[gnu::always_inline]] inline void offset_step(const float* src, const float* w0, const float* w1,
                                               __m512 (&acc)[2][CG][J]) {
  __m512 w0v[CG], w1v[CG];
  for (int c = 0; c < CG; ++c) {
    if constexpr (P0) w0v[c] = _mm512_set1_ps(w0[c]);
    if constexpr (P1) w1v[c] = _mm512_set1_ps(w1[c]);
  }
  for (int jj = 0; jj < J; ++jj) {
    __m512 v = _mm512_loadu_ps(src + 16 * jj);
    // One (unaligned, line-splitting) load per vector, not one folded into each of the FMAs.
    asm("" : "+v"(v));
    for (int c = 0; c < CG; ++c) {
      if constexpr (P0) acc[0][c][jj] = _mm512_fmadd_ps(v, w0v[c], acc[0][c][jj]);
      if constexpr (P1) acc[1][c][jj] = _mm512_fmadd_ps(v, w1v[c], acc[1][c][jj]);
    }
  }
}

// Phase columns j0 .. j0 + 16*J - 1 of dx row ih, both phases, every one of the CG channels:
// dx[c][ih][2j+pw]. dY row oh of channel k is at ring[(oh % nslots) * kg * ld + k * ld + kMargin +
// ow], zeros for ow outside [0, wo) up to the margins. While the first row tap runs, the pf_n
// cache lines at pf + k * pf_ld (a share of a dY row copied later) are prefetched.
template <int CG, int J>
void dgrad_block(const ConvGeom& g, const float* ring, int64_t nslots, int64_t ld, const float* wq,
                 int64_t ih, int64_t j0, float* dx, const float* pf, int64_t pf_ld, int64_t pf_n) {
  const int64_t ho = g.out_h(), kg = g.k / g.groups, hw = g.h * g.w, kw = g.kw;
  __m512 acc[2][CG][J];
  for (int p = 0; p < 2; ++p)
    for (int c = 0; c < CG; ++c)
      for (int jj = 0; jj < J; ++jj) acc[p][c][jj] = _mm512_setzero_ps();
  // Offset o_hi - s carries the phase-0 tap kj = kj0 + 2s and the phase-1 tap kj0 + 2s + 1; for
  // odd pad_w kj0 = -1 (s = 0 has the phase-1 tap only), for odd kw - kj0 the last s has the
  // phase-0 tap only.
  const int64_t o_hi = (g.pad_w + 1) / 2, kj0 = g.pad_w % 2 ? -1 : 0;
  const int64_t nboth_end = (kw - kj0) / 2;
  const bool tail = (kw - kj0) % 2 != 0;
  // Row taps ki = r, r + stride_h, ... read dY rows oh = (ih + pad_h - ki) / stride_h, descending.
  const int64_t r = (ih + g.pad_h) % g.stride_h;
  for (int64_t ki = r, oh = (ih + g.pad_h) / g.stride_h; ki < g.kh && oh >= 0;
       ki += g.stride_h, --oh) {
    if (oh >= ho) continue;
    const float* dyr = ring + (oh % nslots) * kg * ld + kMargin + j0 + o_hi;
    const float* wr = wq + ki * kg * kw * CG;
    for (int64_t k = 0; k < kg; ++k, dyr += ld, wr += kw * CG) {
      for (int64_t i = 0; i < pf_n; ++i)
        _mm_prefetch(reinterpret_cast<const char*>(pf + k * pf_ld + 16 * i), _MM_HINT_T1);
      int64_t s = 0;
      if (kj0 < 0) {
        offset_step<CG, J, false, true>(dyr, wr, wr, acc);
        s = 1;
      }
      for (; s < nboth_end; ++s)
        offset_step<CG, J, true, true>(dyr - s, wr + (kj0 + 2 * s) * CG,
                                       wr + (kj0 + 2 * s + 1) * CG, acc);
      if (tail) offset_step<CG, J, true, false>(dyr - s, wr + (kj0 + 2 * s) * CG, wr, acc);
    }
    pf_n = 0;
  }
  const __m512i lo_idx = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi_idx =
      _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  for (int c = 0; c < CG; ++c) {
    float* row = dx + c * hw + ih * g.w;
    for (int jj = 0; jj < J; ++jj) {
      const int64_t iw = 2 * (j0 + 16 * jj);
      if (iw >= g.w) break;
      const __m512 e = acc[0][c][jj], o = acc[1][c][jj];
      _mm512_mask_storeu_ps(row + iw, lanes_in(0, g.w - iw), _mm512_permutex2var_ps(e, lo_idx, o));
      _mm512_mask_storeu_ps(row + iw + 16, lanes_in(0, g.w - iw - 16),
                            _mm512_permutex2var_ps(e, hi_idx, o));
    }
  }
}

template <int CG>
void dgrad_rows(const ConvGeom& g, const float* dy, const float* wp, int64_t ih0, int64_t ih1,
                float* dx) {
  constexpr int J = 12 / CG;  // 24 accumulators + CG or 2*CG weights + 1: at most 32 registers
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
  for (int64_t q = 0; q < nslots * kg; ++q) {  // the margins; the row copies leave them zero
    std::fill(ring + q * ld, ring + q * ld + kMargin, 0.0f);
    std::fill(ring + q * ld + kMargin + wo, ring + (q + 1) * ld, 0.0f);
  }
  t_wq.resize(static_cast<size_t>(g.kh * kg * g.kw * CG));
  float* wq = t_wq.data();
  for (int64_t ki = 0; ki < g.kh; ++ki)
    for (int64_t kj = 0; kj < g.kw; ++kj)
      for (int64_t k = 0; k < kg; ++k)
        for (int c = 0; c < CG; ++c)
          wq[((ki * kg + k) * g.kw + kj) * CG + c] = wp[((ki * g.kw + kj) * kg + k) * CG + c];
  const int64_t nblk = (nj + 16 * J - 1) / (16 * J), lines = (wo + 15) / 16;
  int64_t next = 0;  // dY rows below next are in the ring (or were, for past rows)
  for (int64_t ih = ih0; ih < ih1; ++ih) {
    const int64_t hi = std::min(ho - 1, (ih + g.pad_h) / g.stride_h);  // last dY row used
    const int64_t lo_num = ih + g.pad_h - (g.kh - 1);
    const int64_t lo =
        std::max<int64_t>(0, lo_num <= 0 ? 0 : (lo_num + g.stride_h - 1) / g.stride_h);
    next = std::max(next, lo);
    for (; next <= hi; ++next) {
      float* slot = ring + (next % nslots) * kg * ld;
      for (int64_t k = 0; k < kg; ++k)
        std::memcpy(slot + k * ld + kMargin, dy + (k * ho + next) * wo,
                    static_cast<size_t>(wo) * sizeof(float));
    }
    // dY rows come from L3 or memory with their channels 4*ho*wo bytes apart: when the next dx row
    // copies a dY row, the one after it (hi + 2, two dx rows ahead of its copy for stride 2) is
    // prefetched, a share of its lines per block, while this dx row runs (stand-alone A/B: 3 %
    // faster than one row ahead in 20 of 20 pairs; T0 slower than T1).
    const bool prefetch = ih + 1 < ih1 && hi + 2 < ho && (ih + 1 + g.pad_h) / g.stride_h > hi;
    const float* pf = prefetch ? dy + (hi + 2) * wo : dy;
    for (int64_t b = 0; b < nblk; ++b) {
      const int64_t l0 = lines * b / nblk, l1 = lines * (b + 1) / nblk;
      dgrad_block<CG, J>(g, ring, nslots, ld, wq, ih, 16 * J * b, dx, pf + 16 * l0, ho * wo,
                         prefetch ? l1 - l0 : 0);
    }
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
