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
#include "kernels/bitconv_internal.h"
#include "kernels/quantize__avx512.h"

namespace bfcn {
namespace {

constexpr int kLanes = 16;  // int32 output channels per zmm
constexpr int kVecs = 2;    // zmm per weight block
constexpr int kBlock = kLanes * kVecs;

// The fused threshold epilogue of one row and channel block (ThresholdEpilogue with B = bits and
// RB = res_bits compile-time): pointers at the block's first channel and the row's first pixel;
// a tile adds its first pixel p0. Strides follow from cw, the 64-channel words of the output (and
// of the residual, which has the same channels).
struct Fused {
  const int32_t* corr;  // [npix]
  const int32_t* thr;   // [code][level][ldt]
  const int32_t* neg;   // [ldt], -1 where the level's X is -I
  int64_t ldt;
  int cw;
  uint16_t* out;        // 16-channel half-words [npix][B][4 cw]
  const uint16_t* res;  // [npix][RB][4 cw], or null when RB = 0
};

// P pixels x V of the block's kVecs vectors of 16 channels (from vector v0) of one block of kBlock
// channels. S = 0: at is the tile's patch words [lp][n][K] as dwords (ls dwords between
// consecutive words l). S > 0 (implicit im2col, stride S): word l of pixel p, plane k is at +
// 2*loff[l] + 2*(p*S*K + k) (dwords). wb: the block's dwords [lp][2][M][kVecs][16]. B, the
// epilogue (compile-time, so a tile carries no branch for the others): 0, the int32 store; 1 or
// 2, the fused threshold epilogue into B output planes (fu, at pixel p0 of the row), with a packed
// residual of RB = B bits per code or none (RB = 0).
template <int M, int K, int P, int S, int V = kVecs, int B = 0, int RB = 0>
void tile(const uint32_t* at, int ls, const int64_t* loff, const uint32_t* wb, int lp, int32_t* out,
          int ldo, int valid, const Fused* fu, int p0, int v0 = 0) {
  constexpr int R = M + K - 1;              // plane shifts 0..R-1
  constexpr int PS = (S == 0 ? 1 : S) * K;  // words between consecutive pixels
  __m512i acc[P][V][R];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v)
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) acc[p][v][r] = _mm512_setzero_si512();
  const uint32_t* wl = wb + v0 * kLanes;
  for (int l = 0; l < lp; ++l, wl += 2 * M * kBlock) {
    const uint32_t* al = S == 0 ? at + int64_t(l) * ls : at + 2 * loff[l];
    // h, the word's two dwords. Asked not to unroll it (when unrolled, GCC hoists all 2*P*K
    // broadcasts ahead of the popcounts and spills; W2A2 once ran at 2.3x W1A2's time). GCC 12
    // still unrolls it for W1A2, spilling 4 accumulators, yet that measured ~4 % faster at lp 9
    // and 72 than one flattened loop over the 2*lp dwords (session 15).
#pragma GCC unroll 1
    for (int h = 0; h < 2; ++h) {
      __m512i wv[M][V];
#pragma GCC unroll 8
      for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v)
          wv[m][v] = _mm512_loadu_si512(wl + ((h * M + m) * kVecs + v) * kLanes);
#pragma GCC unroll 8
      for (int k = 0; k < K; ++k)
#pragma GCC unroll 8
        for (int p = 0; p < P; ++p) {
          const __m512i b = _mm512_set1_epi32(int32_t(al[2 * (p * PS + k) + h]));
#pragma GCC unroll 8
          for (int m = 0; m < M; ++m)
#pragma GCC unroll 8
            for (int v = 0; v < V; ++v)
              acc[p][v][m + k] = _mm512_add_epi32(
                  acc[p][v][m + k], _mm512_popcnt_epi32(_mm512_and_si512(wv[m][v], b)));
        }
    }
  }
  // P = sum_s 2^s acc[s] (Horner)
  __m512i sum[P][V];
#pragma GCC unroll 8
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) {
      __m512i r = acc[p][v][R - 1];
#pragma GCC unroll 8
      for (int i = R - 2; i >= 0; --i) r = _mm512_add_epi32(_mm512_add_epi32(r, r), acc[p][v][i]);
      sum[p][v] = r;
    }
#pragma GCC unroll 8
  for (int v = 0; v < V; ++v) {
    const int vg = v0 + v;  // vector within the block
    const __mmask16 tail = __mmask16((1u << std::clamp(valid - 16 * vg, 0, 16)) - 1);
    if constexpr (B == 0) {
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p)
        _mm512_mask_storeu_epi32(out + int64_t(p) * ldo + vg * kLanes, tail, sum[p][v]);
    } else {
      // X = I (or -I where neg), I = 2P - corr; the level = #{j : X >= thr_j}. The thresholds
      // of this vector (of every residual code) are loaded once for the tile's pixels.
      constexpr int L = (1 << B) - 1, C = 1 << RB;
      const __mmask16 kneg = _mm512_movepi32_mask(_mm512_loadu_si512(fu->neg + vg * kLanes));
      __m512i t[C][L];
#pragma GCC unroll 8
      for (int c = 0; c < C; ++c)
#pragma GCC unroll 8
        for (int j = 0; j < L; ++j)
          t[c][j] = _mm512_loadu_si512(fu->thr + (c * L + j) * fu->ldt + vg * kLanes);
      const int64_t halves = 4 * int64_t(fu->cw);  // per plane
#pragma GCC unroll 8
      for (int p = 0; p < P; ++p) {
        const __m512i i2 = _mm512_sub_epi32(_mm512_add_epi32(sum[p][v], sum[p][v]),
                                            _mm512_set1_epi32(fu->corr[p0 + p]));
        const __m512i x = _mm512_mask_sub_epi32(i2, kneg, _mm512_setzero_si512(), i2);
        // Each channel's thresholds are those of its residual code: a blend by the code's bits
        // (16 channels of a plane word are one half-word).
        __mmask16 r0 = 0, r1 = 0;
        if constexpr (RB > 0) {
          const uint16_t* rp = fu->res + (p0 + p) * RB * halves + vg;
          r0 = __mmask16(rp[0]);
          if constexpr (RB == 2) r1 = __mmask16(rp[halves]);
        }
        const auto thr = [&](int j) {
          if constexpr (RB == 0) return t[0][j];
          const __m512i lo = _mm512_mask_blend_epi32(r0, t[0][j], t[1][j]);
          if constexpr (RB == 1) return lo;
          return _mm512_mask_blend_epi32(r1, lo, _mm512_mask_blend_epi32(r0, t[2][j], t[3][j]));
        };
        uint16_t* o = fu->out + (p0 + p) * B * halves + vg;
        const __mmask16 m1 = _mm512_mask_cmpge_epi32_mask(tail, x, thr(0));
        if constexpr (B == 1) {
          o[0] = uint16_t(m1);
        } else {
          const __mmask16 m2 = _mm512_mask_cmpge_epi32_mask(tail, x, thr(1));
          const __mmask16 m3 = _mm512_mask_cmpge_epi32_mask(tail, x, thr(2));
          o[0] = uint16_t(_kxor_mask16(_kxor_mask16(m1, m2), m3));  // parity of the level
          o[halves] = uint16_t(m2);                                 // level >= 2
        }
      }
    }
  }
}

// The last pixels of a tile: one tile of Q = rest pixels.
template <int M, int K, int Q, int S, int V = kVecs, int B = 0, int RB = 0>
void rest_tile(int rest, const uint32_t* at, int ls, const int64_t* loff, const uint32_t* wb,
               int lp, int32_t* out, int ldo, int valid, const Fused* fu, int p0, int v0 = 0) {
  if constexpr (Q >= 1) {
    if (rest != Q)
      return rest_tile<M, K, Q - 1, S, V, B, RB>(rest, at, ls, loff, wb, lp, out, ldo, valid, fu,
                                                 p0, v0);
    tile<M, K, Q, S, V, B, RB>(at, ls, loff, wb, lp, out, ldo, valid, fu, p0, v0);
  }
}

// Pixels per register tile: at most 24 accumulators (P x kVecs x (M+K-1)) beside the weights.
template <int M, int K>
constexpr int kRegPixels = (kVecs * (M + K - 1) * kOcv512PixelTile <= 24) ? kOcv512PixelTile
                                                                          : kOcv512PixelTile / 2;

// a: pixel tiles of kOcv512PixelTile (BgemmVariant::pixel_tile). Every weight block sweeps all
// tiles of the row (a block's weights, <= 36 KB for 512 input channels x 9 taps, stay in L1).
template <int M, int K>
void run(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out, int ldo) {
  constexpr int kT = kOcv512PixelTile, kP = kRegPixels<M, K>;
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
        tile<M, K, kP, 0>(at + 2 * p * K, ls, nullptr, wb, lp, out + int64_t(t0 + p) * ldo + o, ldo,
                          valid, nullptr, 0);
      rest_tile<M, K, kP - 1, 0>(n - p, at + 2 * p * K, ls, nullptr, wb, lp,
                                 out + int64_t(t0 + p) * ldo + o, ldo, valid, nullptr, 0);
    }
  }
}

// The register tile of the implicit-im2col rows, vectors of 16 channels x pixels, measured on
// Zen 5 (the W1A2, W1A1 and W2A2 networks at 512^2, 1 thread): W1A2 one vector x 8 pixels (16
// accumulators; 2 x 4 spilled 4 of them and ran 3 % slower, 1 x 12 spilled and ran 50 %
// slower); W1A1 2 x 8 (16; 2 x 4 ran 4 % slower); W2A2 one vector x 4 (12; with both, its 24
// spilled, and 6 or 8 pixels ran slower). Others: as the pixel-tiled rows.
template <int M, int K>
constexpr int kDirectVecs = (M == 1 && K == 2) || (M == 2 && K >= 2) ? 1 : kVecs;
template <int M, int K>
constexpr int kDirectPixels = (M == 1 && K <= 2) ? 8 : kRegPixels<M, K>;

// The implicit-im2col row (BgemmDirectFn), stride S; B > 0: the fused threshold epilogue (te)
// into B planes, with a packed residual of RB bits (0: none).
template <int M, int K, int S, int B, int RB>
void run_direct(const uint64_t* a, const int64_t* loff, int npix, const uint64_t* w, int noc,
                int lp, int32_t* out, int ldo, const ThresholdEpilogue* te) {
  constexpr int kV = kDirectVecs<M, K>;
  constexpr int kP = kDirectPixels<M, K>;
  const auto* a32 = reinterpret_cast<const uint32_t*>(a);
  const auto* w32 = reinterpret_cast<const uint32_t*>(w);
  const int64_t ws = int64_t(2) * lp * M * kBlock;  // in dwords
  const int nblk = (noc + kBlock - 1) / kBlock, cw = (noc + 63) / 64;
  for (int o = 0, blk = 0; o < noc; o += kBlock, ++blk) {
    const uint32_t* wb = w32 + blk * ws;
    const int valid = std::min(kBlock, noc - o);
    Fused f{};
    if constexpr (B > 0)
      f = Fused{te->corr,
                te->thr + o,
                te->neg + o,
                te->ldt,
                cw,
                reinterpret_cast<uint16_t*>(te->out) + 2 * blk,
                RB > 0 ? reinterpret_cast<const uint16_t*>(te->res) + 2 * blk : nullptr};
    for (int v0 = 0; v0 < kVecs; v0 += kV) {
      if (16 * v0 >= valid && B == 0) break;  // (fused: zero halves are written)
      int p = 0;
      for (; p + kP <= npix; p += kP)
        tile<M, K, kP, S, kV, B, RB>(a32 + 2 * p * S * K, 0, loff, wb, lp,
                                     out + int64_t(p) * ldo + o, ldo, valid, &f, p, v0);
      rest_tile<M, K, kP - 1, S, kV, B, RB>(npix - p, a32 + 2 * p * S * K, 0, loff, wb, lp,
                                            out + int64_t(p) * ldo + o, ldo, valid, &f, p, v0);
    }
  }
  if constexpr (B > 0)
    if (nblk % 2 == 1) {  // the unused upper half of the last plane word
      auto* out16 = reinterpret_cast<uint16_t*>(te->out);
      const int64_t plane_halves = 4 * int64_t(cw);
      for (int p = 0; p < npix; ++p)
        for (int b = 0; b < B; ++b) {
          out16[(p * B + b) * plane_halves + 2 * nblk] = 0;
          out16[(p * B + b) * plane_halves + 2 * nblk + 1] = 0;
        }
    }
}

// te: null, or an epilogue fusable() accepts.
template <int M, int K>
void run_direct_strided(const uint64_t* a, const int64_t* loff, int npix, int stride,
                        const uint64_t* w, int noc, int lp, int32_t* out, int ldo,
                        const ThresholdEpilogue* te) {
  const auto with_stride = [&]<int B, int RB>() {
    if (stride == 1) return run_direct<M, K, 1, B, RB>(a, loff, npix, w, noc, lp, out, ldo, te);
    run_direct<M, K, 2, B, RB>(a, loff, npix, w, noc, lp, out, ldo, te);
  };
  if (!te) return with_stride.template operator()<0, 0>();
  const bool res = te->res != nullptr;
  if (te->bits == 1) {
    if (res) return with_stride.template operator()<1, 1>();
    return with_stride.template operator()<1, 0>();
  }
  if (res) return with_stride.template operator()<2, 2>();
  with_stride.template operator()<2, 0>();
}

// The threshold epilogues the kernel fuses: 1 or 2 output bits, with a packed residual of as many
// bits (the block input of a residual block) or none. Others are left to the driver.
bool fusable(const ThresholdEpilogue& te) {
  return (te.bits == 1 || te.bits == 2) && (te.res == nullptr || te.res_bits == te.bits);
}

}  // namespace

void prep_weights__avx512_ocv(const uint64_t* w, int noc, int m_bits, int k_bits, int lp,
                              std::vector<uint64_t>* out) {
  // dwords [blk][lp][2][M][kVecs][16], channels past noc zero (counted, never stored)
  if (!prep_weight_blocks(w, noc, m_bits, k_bits, lp, kBlock, out)) return;
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

// The epilogue's float value of 16 channels (lanes outside k zero): I = 2P - corr, then I*mul + add
// with two roundings (the asm barrier keeps GCC from contracting them into an FMA), + res when set.
static inline __m512 epilogue_value(const int32_t* p, __m512i vcorr, const float* mul,
                                    const float* add, const float* res, __mmask16 k) {
  const __m512i pv = _mm512_maskz_loadu_epi32(k, p);
  const __m512i iv = _mm512_sub_epi32(_mm512_add_epi32(pv, pv), vcorr);
  __m512 v = _mm512_mul_ps(_mm512_maskz_cvtepi32_ps(0xffff, iv), _mm512_maskz_loadu_ps(k, mul));
  asm("" : "+v"(v));
  v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, add));
  if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, res));
  return v;
}

// The packed epilogue (RequantFn) 16 channels per step: the float operations of
// requant_pack__ref in its order (epilogue_value, then avx512::level16), each bit plane's 16 bits
// taken as a test mask.
void requant_pack__avx512(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                          const float* res, int bits, uint64_t* out) {
  const int cw = (n + 63) / 64;
  const __m512i vcorr = _mm512_set1_epi32(corr);
  const __m512 levels = _mm512_set1_ps(float((1 << bits) - 1));
  const __mmask16 all = 0xffff;
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int m = std::min(64, n - wi * 64);
    for (int j = 0; j < m; j += 16) {
      const int o = wi * 64 + j;
      const __mmask16 k = m - j >= 16 ? all : __mmask16((1u << (m - j)) - 1);
      const __m512 v = epilogue_value(p + o, vcorr, mul + o, add + o, res ? res + o : nullptr, k);
      avx512::or_planes(avx512::level16(v, levels), k, bits, j, planes);
    }
    for (int b = 0; b < bits; ++b) out[b * cw + wi] = planes[b];
  }
}

// RequantResConvFn: both values by epilogue_value (the residual's is dequant_f32__ref's), their
// sum, then the levels as requant_pack__avx512.
void requant_res_conv__avx512(const int32_t* p, int n, int32_t corr, const float* mul,
                              const float* add, const int32_t* rp, int32_t rcorr, const float* rmul,
                              const float* radd, int bits, uint64_t* out) {
  const int cw = (n + 63) / 64;
  const __m512i vcorr = _mm512_set1_epi32(corr), vrcorr = _mm512_set1_epi32(rcorr);
  const __m512 levels = _mm512_set1_ps(float((1 << bits) - 1));
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int m = std::min(64, n - wi * 64);
    for (int j = 0; j < m; j += 16) {
      const int o = wi * 64 + j;
      const __mmask16 k = m - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (m - j)) - 1);
      const __m512 r = epilogue_value(rp + o, vrcorr, rmul + o, radd + o, nullptr, k);
      const __m512 v = _mm512_add_ps(epilogue_value(p + o, vcorr, mul + o, add + o, nullptr, k), r);
      avx512::or_planes(avx512::level16(v, levels), k, bits, j, planes);
    }
    for (int b = 0; b < bits; ++b) out[b * cw + wi] = planes[b];
  }
}

// The float epilogue (DequantFn) 16 channels per step, in dequant_f32__ref's order and roundings
// (epilogue_value); relu as MAXPS(v, 0), which returns its second operand for NaN and for -0,
// as the reference's v > 0 ? v : 0.
void dequant_f32__avx512(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                         const float* res, bool relu, float* out) {
  const __m512i vcorr = _mm512_set1_epi32(corr);
  const __m512 zero = _mm512_setzero_ps();
  const __mmask16 all = 0xffff;
  for (int o = 0; o < n; o += 16) {
    const __mmask16 k = n - o >= 16 ? all : __mmask16((1u << (n - o)) - 1);
    __m512 v = epilogue_value(p + o, vcorr, mul + o, add + o, res ? res + o : nullptr, k);
    if (relu) v = _mm512_maskz_max_ps(all, v, zero);
    _mm512_mask_storeu_ps(out + o, k, v);
  }
}

void threshold_pack__avx512(const int32_t* p, int n, int oc, const int32_t* corr,
                            const int32_t* thr, const int32_t* neg, int ldt, int bits,
                            uint64_t* out) {
  const int cw = (oc + 63) / 64, levels = (1 << bits) - 1;
  for (int px = 0; px < n; ++px) {
    const int32_t* row = p + int64_t(px) * oc;
    uint64_t* dst = out + int64_t(px) * bits * cw;
    const __m512i vcorr = _mm512_set1_epi32(corr[px]);
    for (int wi = 0; wi < cw; ++wi) {
      uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int m = std::min(64, oc - wi * 64);
      for (int j = 0; j < m; j += 16) {
        const int o = wi * 64 + j;
        const __mmask16 k = m - j >= 16 ? __mmask16(0xffff) : __mmask16((1u << (m - j)) - 1);
        const __m512i pv = _mm512_maskz_loadu_epi32(k, row + o);
        const __m512i sg = _mm512_loadu_si512(neg + o);  // ldt pads to 16 entries
        const __m512i x = _mm512_sub_epi32(
            _mm512_xor_si512(_mm512_sub_epi32(_mm512_add_epi32(pv, pv), vcorr), sg),
            sg);          // I, or -I where neg
        if (bits == 2) {  // the usual case: nested masks, bit 1 = (q >= 2), bit 0 = parity
          const __mmask16 m1 = _mm512_mask_cmpge_epi32_mask(k, x, _mm512_loadu_si512(thr + o));
          const __mmask16 m2 =
              _mm512_mask_cmpge_epi32_mask(k, x, _mm512_loadu_si512(thr + ldt + o));
          const __mmask16 m3 =
              _mm512_mask_cmpge_epi32_mask(k, x, _mm512_loadu_si512(thr + 2 * ldt + o));
          planes[0] |= uint64_t(uint16_t(m1 ^ m2 ^ m3)) << j;
          planes[1] |= uint64_t(m2) << j;
          continue;
        }
        __m512i q = _mm512_setzero_si512();
        for (int t = 0; t < levels; ++t) {
          const __mmask16 mt =
              _mm512_mask_cmpge_epi32_mask(k, x, _mm512_loadu_si512(thr + int64_t(t) * ldt + o));
          q = _mm512_mask_add_epi32(q, mt, q, _mm512_set1_epi32(1));
        }
        for (int b = 0; b < bits; ++b)
          planes[b] |= uint64_t(_mm512_mask_test_epi32_mask(k, q, _mm512_set1_epi32(1 << b))) << j;
      }
      for (int b = 0; b < bits; ++b) dst[b * cw + wi] = planes[b];
    }
  }
}

void bgemm__avx512_ocv(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                       int m_bits, int lp, int32_t* out, int ldo) {
  // fallback: plain (unprepared) weights of any lp, the scalar reference
  tiled_or_fallback(a, npix, w, noc, k_bits, m_bits, lp, out, ldo, kOcv512PixelTile, bgemm__ref,
                    [&]<int M, int K>() {
                      run<M, K>(a, npix, w, noc, lp, out, ldo);
                      return true;
                    });
}

bool bgemm_direct__avx512_ocv(const uint64_t* a, const int64_t* loff, int npix, int stride,
                              const uint64_t* w, int noc, int k_bits, int m_bits, int lp,
                              int32_t* out, int ldo, const ThresholdEpilogue* te) {
  if (te && !fusable(*te)) te = nullptr;
  if ((stride == 1 || stride == 2) && with_plane_counts(m_bits, k_bits, [&]<int M, int K>() {
        run_direct_strided<M, K>(a, loff, npix, stride, w, noc, lp, out, ldo, te);
        return true;
      }))
    return te != nullptr;
  if (compiled_plane_counts(m_bits,
                            k_bits)) {  // a stride > 2: the prepared layout, so the tiled kernel
    std::vector<uint64_t> tiled(size_t(npix) * k_bits * lp);
    for (int t0 = 0; t0 < npix; t0 += kOcv512PixelTile) {
      const int n = std::min(kOcv512PixelTile, npix - t0);
      for (int l = 0; l < lp; ++l)
        for (int p = 0; p < n; ++p)
          for (int k = 0; k < k_bits; ++k)
            tiled[(int64_t(t0) * lp + int64_t(l) * n + p) * k_bits + k] =
                a[loff[l] + int64_t(t0 + p) * stride * k_bits + k];
    }
    bgemm__avx512_ocv(tiled.data(), npix, w, noc, k_bits, m_bits, lp, out, ldo);
    return false;
  }
  // Other widths: planar patches and the scalar reference (their prepared layout is the plain one).
  std::vector<uint64_t> planar(size_t(npix) * k_bits * lp);
  for (int p = 0; p < npix; ++p)
    for (int k = 0; k < k_bits; ++k)
      for (int l = 0; l < lp; ++l)
        planar[(int64_t(p) * k_bits + k) * lp + l] = a[loff[l] + int64_t(p) * stride * k_bits + k];
  bgemm__ref(planar.data(), npix, w, noc, k_bits, m_bits, lp, out, ldo);
  return false;
}

}  // namespace bfcn
