// AVX-512 popcount GEMM vectorised across output channels (bgemm__avx512_ocv): one zmm holds the
// same 32-bit weight word of 16 output channels, ANDed with a broadcast 32-bit patch word and
// counted with VPOPCNTD into that channel's own int32 lane, so no horizontal sum, no byte-counter
// flush and no padding of short rows (64 channels x 9 taps = 18 dwords) are needed. Each bit-plane
// shift s = m + k gets its own accumulator, weighted once per tile (Horner), so the inner step is
// AND + VPOPCNTD + ADD: 3 ops per 512 plane-bit MACs. Weights are re-laid-out once per layer
// (prep_weights); the driver gathers unsplit patches pixel-tiled (pixel_tile), as for the AVX2 ocv
// kernel. Selected only when the CPU reports avx512vpopcntdq (kernels/cpu_features.h).
#include <immintrin.h>

#include <algorithm>
#include <vector>

#include "kernels/bitconv.h"

namespace bfcn {
namespace {

constexpr int kLanes = 16;  // int32 output channels per zmm
constexpr int kVecs = 2;    // zmm per weight block
constexpr int kBlock = kLanes * kVecs;

bool supported(int m_bits, int k_bits) {
  return m_bits >= 1 && m_bits <= 2 && k_bits >= 1 && k_bits <= 4;
}

// P pixels x one block of kBlock channels. at: the tile's patch words [lp][n][K] as dwords (ls
// dwords between consecutive words l); wb: the block's dwords [lp][2][M][kVecs][16].
template <int M, int K, int P>
void tile(const uint32_t* at, int ls, const uint32_t* wb, int lp, int32_t* out, int ldo,
          int valid) {
  constexpr int S = M + K - 1;  // plane shifts 0..S-1
  __m512i acc[P][kVecs][S];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v)
#pragma GCC unroll 8
      for (int s = 0; s < S; ++s) acc[p][v][s] = _mm512_setzero_si512();
  const uint32_t* al = at;
  const uint32_t* wl = wb;
  for (int l = 0; l < lp; ++l, al += ls, wl += 2 * M * kBlock) {
#pragma GCC unroll 2
    for (int h = 0; h < 2; ++h) {
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        __m512i wv[kVecs];
#pragma GCC unroll 8
        for (int v = 0; v < kVecs; ++v)
          wv[v] = _mm512_loadu_si512(wl + ((h * M + m) * kVecs + v) * kLanes);
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
          for (int p = 0; p < P; ++p) {
            const __m512i b = _mm512_set1_epi32(int32_t(al[2 * (p * K + k) + h]));
#pragma GCC unroll 8
            for (int v = 0; v < kVecs; ++v)
              acc[p][v][m + k] = _mm512_add_epi32(acc[p][v][m + k],
                                                  _mm512_popcnt_epi32(_mm512_and_si512(wv[v], b)));
          }
      }
    }
  }
  const __mmask16 tail0 = __mmask16((1u << std::clamp(valid, 0, 16)) - 1);
  const __mmask16 tail1 = __mmask16((1u << std::clamp(valid - 16, 0, 16)) - 1);
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v) {
      __m512i r = acc[p][v][S - 1];
#pragma GCC unroll 8
      for (int s = S - 2; s >= 0; --s) r = _mm512_add_epi32(_mm512_add_epi32(r, r), acc[p][v][s]);
      _mm512_mask_storeu_epi32(out + int64_t(p) * ldo + v * kLanes, v == 0 ? tail0 : tail1, r);
    }
}

// The last pixels of a tile: one tile of R = rest pixels.
template <int M, int K, int R>
void rest_tile(int rest, const uint32_t* at, int ls, const uint32_t* wb, int lp, int32_t* out,
               int ldo, int valid) {
  if constexpr (R >= 1) {
    if (rest != R) return rest_tile<M, K, R - 1>(rest, at, ls, wb, lp, out, ldo, valid);
    tile<M, K, R>(at, ls, wb, lp, out, ldo, valid);
  }
}

// a: pixel tiles of kOcv512PixelTile (BgemmVariant::pixel_tile). Every weight block sweeps all
// tiles of the row (a block's weights, <= 36 KB for 512 input channels x 9 taps, stay in L1).
template <int M, int K>
void run(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out, int ldo) {
  constexpr int kT = kOcv512PixelTile;
  // Pixels per register tile: at most 24 accumulators (P x kVecs x (M+K-1)) beside the weights.
  constexpr int kP = (kVecs * (M + K - 1) * kT <= 24) ? kT : kT / 2;
  const auto* a32 = reinterpret_cast<const uint32_t*>(a);
  const auto* w32 = reinterpret_cast<const uint32_t*>(w);
  const int64_t as = int64_t(2) * K * lp, ws = int64_t(2) * lp * M * kBlock;  // in dwords
  for (int o = 0, blk = 0; o < noc; o += kBlock, ++blk) {
    const uint32_t* wb = w32 + blk * ws;
    const int valid = std::min(kBlock, noc - o);
    for (int t0 = 0; t0 < npix; t0 += kT) {
      const int n = std::min(kT, npix - t0);
      const uint32_t* at = a32 + t0 * as;
      const int ls = 2 * n * K;
      int p = 0;
      for (; p + kP <= n; p += kP)
        tile<M, K, kP>(at + 2 * p * K, ls, wb, lp, out + int64_t(t0 + p) * ldo + o, ldo, valid);
      rest_tile<M, K, kP - 1>(n - p, at + 2 * p * K, ls, wb, lp, out + int64_t(t0 + p) * ldo + o,
                              ldo, valid);
    }
  }
}

// Planar [npix][K][lp] copy of pixel-tiled patches, for the fallback.
void untile(const uint64_t* a, int npix, int k_bits, int lp, uint64_t* dst) {
  for (int t0 = 0; t0 < npix; t0 += kOcv512PixelTile) {
    const int n = std::min(kOcv512PixelTile, npix - t0);
    const uint64_t* src = a + int64_t(t0) * k_bits * lp;
    for (int l = 0; l < lp; ++l)
      for (int p = 0; p < n; ++p)
        for (int k = 0; k < k_bits; ++k)
          dst[(int64_t(t0 + p) * k_bits + k) * lp + l] = src[(int64_t(l) * n + p) * k_bits + k];
  }
}

}  // namespace

void prep_weights__avx512_ocv(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                              std::vector<uint64_t>* out) {
  if (!supported(m_bits, k_bits)) {  // the fallback reads the plain layout
    out->assign(w, w + int64_t(noc) * m_bits * lp);
    return;
  }
  const int nblk = (noc + kBlock - 1) / kBlock;
  // dwords [blk][lp][2][M][kVecs][16], channels past noc zero (counted, never stored)
  out->assign(size_t(nblk) * lp * m_bits * kBlock, 0);
  auto* d = reinterpret_cast<uint32_t*>(out->data());
#pragma omp parallel for schedule(static) if (int64_t(noc) * m_bits * lp > 65536)
  for (int o = 0; o < noc; ++o) {
    const int blk = o / kBlock, r = o % kBlock;
    for (int m = 0; m < m_bits; ++m)
      for (int l = 0; l < lp; ++l) {
        const uint64_t x = w[(int64_t(o) * m_bits + m) * lp + l];
        for (int h = 0; h < 2; ++h)
          d[(((size_t(blk) * lp + l) * 2 + h) * m_bits + m) * kBlock + r] = uint32_t(x >> (32 * h));
      }
  }
}

// The packed epilogue (RequantFn) 16 channels per step: the float operations of
// requant_pack__ref in its order (an asm barrier keeps the multiply and add from contracting into
// an FMA), each bit plane's 16 bits taken as a test mask. Zero-masked forms throughout (GCC 12
// warns on the undefined pass-through of the plain ones).
void requant_pack__avx512(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                          const float* res, int bits, uint64_t* out) {
  const int cw = (n + 63) / 64;
  const __m512i vcorr = _mm512_set1_epi32(corr);
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  const __m512 levels = _mm512_set1_ps(float((1 << bits) - 1));
  const __mmask16 all = 0xffff;
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int m = std::min(64, n - wi * 64);
    for (int j = 0; j < m; j += 16) {
      const int o = wi * 64 + j;
      const __mmask16 k = m - j >= 16 ? all : __mmask16((1u << (m - j)) - 1);
      const __m512i pv = _mm512_maskz_loadu_epi32(k, p + o);
      const __m512i iv = _mm512_sub_epi32(_mm512_add_epi32(pv, pv), vcorr);
      __m512 v =
          _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(all, iv), _mm512_maskz_loadu_ps(k, mul + o));
      asm("" : "+v"(v));
      v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, add + o));
      if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res + o));
      v = _mm512_mul_ps(_mm512_maskz_min_ps(all, _mm512_maskz_max_ps(all, v, zero), one),
                        levels);  // NaN -> 0
      asm("" : "+v"(v));
      const __m512i qi = _mm512_maskz_cvtps_epi32(
          all, _mm512_maskz_roundscale_ps(all, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      for (int b = 0; b < bits; ++b)
        planes[b] |= uint64_t(_mm512_mask_test_epi32_mask(k, qi, _mm512_set1_epi32(1 << b))) << j;
    }
    for (int b = 0; b < bits; ++b) out[b * cw + wi] = planes[b];
  }
}

void bgemm__avx512_ocv(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                       int m_bits, int lp, int32_t* out, int ldo) {
  switch (m_bits * 16 + k_bits) {
    case 0x11:
      return run<1, 1>(a, npix, w, noc, lp, out, ldo);
    case 0x12:
      return run<1, 2>(a, npix, w, noc, lp, out, ldo);
    case 0x13:
      return run<1, 3>(a, npix, w, noc, lp, out, ldo);
    case 0x14:
      return run<1, 4>(a, npix, w, noc, lp, out, ldo);
    case 0x21:
      return run<2, 1>(a, npix, w, noc, lp, out, ldo);
    case 0x22:
      return run<2, 2>(a, npix, w, noc, lp, out, ldo);
    case 0x23:
      return run<2, 3>(a, npix, w, noc, lp, out, ldo);
    case 0x24:
      return run<2, 4>(a, npix, w, noc, lp, out, ldo);
    default: {  // plain (unprepared) weights of any lp: the scalar reference on untiled patches
      std::vector<uint64_t> planar(size_t(npix) * k_bits * lp);
      untile(a, npix, k_bits, lp, planar.data());
      return bgemm__ref(planar.data(), npix, w, noc, k_bits, m_bits, lp, out, ldo);
    }
  }
}

}  // namespace bfcn
