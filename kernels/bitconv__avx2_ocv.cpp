// AVX2 popcount GEMM vectorised across output channels (bgemm__avx2_ocv): one ymm holds the same
// nibble-split weight word of 4 output channels, ANDed with a broadcast patch word, counted with
// one vpshufb of a LUT pre-scaled by 2^(m+k) into byte counters. vpsadbw then yields each
// channel's count in its own 64-bit lane, so no horizontal sums are needed (they dominated short
// rows such as 64 channels x 9 taps). Weights are re-laid-out once per layer (prep_weights) and
// the driver gathers patches pixel-tiled (pixel_tile), so a 4-pixel x 8-channel register tile
// walks two pointers.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/bitconv.h"
#include "kernels/bitconv_internal.h"
#include "kernels/popcount_bytes__avx2.h"

namespace bfcn {
namespace {

// Output channels per weight block: kVecs ymm of 4 lanes. Vector v of a block holds, in lane i,
// channel 8*(v/2) + 2*i + v%2, so one blend of vectors 2j and 2j+1 gives channels 8j..8j+7 in
// order.
constexpr int kVecs = 2;
constexpr int kBlock = 4 * kVecs;

// P pixels x one block of kBlock channels. at: the tile's patch words [lp][P][K] (one pointer walks
// them); wb: the block's words [lp][M][kVecs][4]. Not inlined into run (as GCC chose before the
// plane-count dispatch was inlined): each tile keeps its own register allocation.
template <int M, int K, int P>
[[gnu::noinline]] void tile(const uint64_t* at, int ls, const uint64_t* wb, int lp, int32_t* out,
                            int ldo, int valid) {
  // byte counter growth per word index: sum over plane pairs of 4 * 2^(m+k)
  constexpr int kPerWord = 4 * ((1 << M) - 1) * ((1 << K) - 1);
  constexpr int kFlush = avx2::steps_per_flush(kPerWord);
  static_assert(kFlush >= 1, "byte counters would overflow");
  __m256i lut[M + K - 1];
  avx2::scaled_popcount_luts(lut);
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc[P][kVecs];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < kVecs; ++v) acc[p][v] = zero;
  for (int l0 = 0; l0 < lp; l0 += kFlush) {
    const int l1 = std::min(lp, l0 + kFlush);
    const uint64_t* al = at + int64_t(l0) * ls;
    const uint64_t* wl = wb + int64_t(l0) * M * kBlock;
    for (int l = l0; l < l1; ++l, al += ls, wl += M * kBlock) {
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m) {
        __m256i wv[kVecs];
#pragma GCC unroll 8
        for (int v = 0; v < kVecs; ++v)
          wv[v] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wl + (m * kVecs + v) * 4));
#pragma GCC unroll 8
        for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
          for (int p = 0; p < P; ++p) {
            const __m256i b = _mm256_set1_epi64x(int64_t(al[p * K + k]));
#pragma GCC unroll 8
            for (int v = 0; v < kVecs; ++v)
              acc[p][v] = _mm256_add_epi8(
                  acc[p][v], _mm256_shuffle_epi8(lut[m + k], _mm256_and_si256(wv[v], b)));
          }
      }
    }
    // Flush: this chunk's counts added straight into out (running totals kept in registers would
    // crowd the byte accumulators out of the 16 ymm registers). Lanes of vector 2j: channels
    // 8j+0,2,4,6; of 2j+1: 8j+1,3,5,7; per-chunk counts < 2^16.
#pragma GCC unroll 8
    for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
      for (int j = 0; j < kVecs / 2; ++j) {
        const __m256i r =
            _mm256_blend_epi32(avx2::lane_sums(acc[p][2 * j]),
                               _mm256_slli_epi64(avx2::lane_sums(acc[p][2 * j + 1]), 32), 0xaa);
        acc[p][2 * j] = acc[p][2 * j + 1] = zero;
        int32_t* dst = out + int64_t(p) * ldo + 8 * j;
        const int n = valid - 8 * j;
        if (n >= 8) {
          __m256i* d = reinterpret_cast<__m256i*>(dst);
          _mm256_storeu_si256(d, l0 == 0 ? r : _mm256_add_epi32(_mm256_loadu_si256(d), r));
        } else if (n > 0) {
          alignas(32) int32_t tmp[8];
          _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), r);
          for (int i = 0; i < n; ++i) dst[i] = l0 == 0 ? tmp[i] : dst[i] + tmp[i];
        }
      }
  }
}

// The last npix % kP pixels: one tile of R = rest pixels.
template <int M, int K, int R>
void rest_tile(int rest, const uint64_t* at, const uint64_t* wb, int lp, int32_t* out, int ldo,
               int valid) {
  if constexpr (R >= 1) {
    if (rest != R) return rest_tile<M, K, R - 1>(rest, at, wb, lp, out, ldo, valid);
    tile<M, K, R>(at, R * K, wb, lp, out, ldo, valid);
  }
}

// a: pixel tiles of kOcvPixelTile (BgemmVariant::pixel_tile). Every weight block sweeps all tiles
// of the row (a block's weights, <= 18 KB for 512 input channels, stay in L1).
template <int M, int K>
void run(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out, int ldo) {
  // 4 pixels x 2 vectors: 8 byte accumulators + 2 weight vectors + LUTs fit the 16 ymm registers
  // (2x4, 3x2, 3x4 and 5x2 pixels x vectors measured slower or within noise, loaded machine)
  constexpr int kP = kOcvPixelTile;
  const int64_t as = int64_t(K) * lp, ws = int64_t(lp) * M * kBlock;
  const int full = npix / kP * kP, rest = npix - full;
  for (int o = 0, blk = 0; o < noc; o += kBlock, ++blk) {
    const uint64_t* wb = w + blk * ws;
    const int valid = std::min(kBlock, noc - o);
    for (int p = 0; p < full; p += kP)
      if constexpr (M == 1) {
        tile<M, K, kP>(a + p * as, kP * K, wb, lp, out + int64_t(p) * ldo + o, ldo, valid);
      } else {  // 2 weight planes: two 2-pixel halves of the tile (fewer live registers)
        for (int h = 0; h < kP; h += 2)
          tile<M, K, 2>(a + p * as + h * K, kP * K, wb, lp, out + int64_t(p + h) * ldo + o, ldo,
                        valid);
      }
    rest_tile<M, K, kP - 1>(rest, a + full * as, wb, lp, out + int64_t(full) * ldo + o, ldo, valid);
  }
}

}  // namespace

void prep_weights__avx2_ocv(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                            std::vector<uint64_t>* out) {
  // [blk][lp][M][kVecs][4], channels past noc zero (their counts are computed but not stored)
  if (!prep_weight_blocks(w, noc, m_bits, k_bits, lp, kBlock, out)) return;
#pragma omp parallel for schedule(static) if (int64_t(noc) * m_bits * lp > 65536)
  for (int o = 0; o < noc; ++o) {
    const int blk = o / kBlock, r = o % kBlock;
    const int v = 2 * (r / 8) + r % 2, lane = (r % 8) / 2;
    for (int m = 0; m < m_bits; ++m)
      for (int l = 0; l < lp; ++l)
        (*out)[((size_t(blk) * lp + l) * m_bits + m) * kBlock + v * 4 + lane] =
            w[(int64_t(o) * m_bits + m) * lp + l];
  }
}

void bgemm__avx2_ocv(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                     int m_bits, int lp, int32_t* out, int ldo) {
  // fallback: plain (unprepared) split weights; popcounts of split rows equal the originals
  tiled_or_fallback(a, npix, w, noc, k_bits, m_bits, lp, out, ldo, kOcvPixelTile,
                    bgemm__avx2_popcnt, [&]<int M, int K>() {
                      run<M, K>(a, npix, w, noc, lp, out, ldo);
                      return true;
                    });
}

}  // namespace bfcn
