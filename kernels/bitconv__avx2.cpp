// AVX2 popcount GEMMs. AVX2 has no vector popcount, so bgemm__avx2 counts bits with the nibble
// lookup (vpshufb) into byte counters, weights the bit planes by Horner doubling in bytes, and
// widens with vpsadbw only every kFlush chunks (before a byte can overflow). bgemm__avx2_popcnt is
// the scalar 64-bit popcnt alternative, kept to measure which wins (docs/bench_runtime.md).
#include <immintrin.h>

#include <algorithm>

#include "kernels/bitconv.h"
#include "kernels/bitconv_internal.h"
#include "kernels/popcount_bytes__avx2.h"

namespace bfcn {
namespace {

using avx2::flush_byte_counters;
using avx2::lane_sums;

inline int64_t hsum_u64(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

// How one 256-bit chunk of M weight planes x K activation planes adds sum 2^(m+k) cnt(w_m & a_k)
// to a byte counter, for plain rows (bgemm__avx2): the nibble lookup per byte, the planes
// weighted by Horner doubling in bytes (over m then k).
template <int M, int K>
struct HornerCount {
  static constexpr int kM = M, kK = K;
  static constexpr int kMaxPerChunk = 8 * ((1 << M) - 1) * ((1 << K) - 1);
  const __m256i lut = avx2::nibble_popcount_lut(), low = _mm256_set1_epi8(0x0f);
  [[gnu::always_inline]] __m256i operator()(const __m256i (&wv)[M], const __m256i (&av)[K],
                                            __m256i acc) const {
    __m256i r = _mm256_setzero_si256();
    for (int m = M - 1; m >= 0; --m) {
      __m256i rk = avx2::popcount_bytes(_mm256_and_si256(wv[m], av[K - 1]), lut, low);
      for (int k = K - 2; k >= 0; --k)
        rk = _mm256_add_epi8(_mm256_add_epi8(rk, rk),
                             avx2::popcount_bytes(_mm256_and_si256(wv[m], av[k]), lut, low));
      r = (m == M - 1) ? rk : _mm256_add_epi8(_mm256_add_epi8(r, r), rk);
    }
    return _mm256_add_epi8(acc, r);
  }
};

// The same for nibble-split rows (BgemmVariant::split_nibbles, bgemm__avx2_nib): every byte holds
// one nibble, so the count of w AND a is one vpshufb of a LUT pre-scaled by 2^(m+k); 3 ops per
// plane pair per chunk.
template <int M, int K>
struct NibbleCount {
  static constexpr int kM = M, kK = K;
  static constexpr int kMaxPerChunk = 4 * ((1 << M) - 1) * ((1 << K) - 1);
  __m256i lut[M + K - 1];
  NibbleCount() { avx2::scaled_popcount_luts(lut); }
  [[gnu::always_inline]] __m256i operator()(const __m256i (&wv)[M], const __m256i (&av)[K],
                                            __m256i acc) const {
    for (int m = 0; m < M; ++m)
      for (int k = 0; k < K; ++k)
        acc = _mm256_add_epi8(acc, _mm256_shuffle_epi8(lut[m + k], _mm256_and_si256(wv[m], av[k])));
    return acc;
  }
};

// P patches x O weight rows, counted by Count (HornerCount or NibbleCount) into byte counters
// flushed every kFlush chunks. Not inlined into run: each tile keeps its own register allocation
// (inlined, bgemm__avx2_nib's W1A2 tiles ran ~10% slower).
template <class Count, int P, int O>
[[gnu::noinline]] void tile(const uint64_t* a, const uint64_t* w, int lp, int32_t* out, int ldo) {
  constexpr int M = Count::kM, K = Count::kK;
  constexpr int kFlush = avx2::steps_per_flush(Count::kMaxPerChunk);
  static_assert(kFlush >= 1, "byte counters would overflow");
  const Count count;
  const __m256i zero = _mm256_setzero_si256();
  __m256i acc[P][O], tot[P][O];
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) acc[p][o] = tot[p][o] = zero;
  const int chunks = lp / 4;
  int since = 0;
  for (int c = 0; c < chunks; ++c) {
    __m256i av[P][K];
    for (int p = 0; p < P; ++p)
      for (int k = 0; k < K; ++k)
        av[p][k] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + (p * K + k) * lp) + c);
    for (int o = 0; o < O; ++o) {
      __m256i wv[M];
      for (int m = 0; m < M; ++m)
        wv[m] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (o * M + m) * lp) + c);
      for (int p = 0; p < P; ++p) acc[p][o] = count(wv, av[p], acc[p][o]);
    }
    if (++since == kFlush) {
      flush_byte_counters(acc, tot);
      since = 0;
    }
  }
  flush_byte_counters(acc, tot);
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) out[p * ldo + o] = int32_t(hsum_u64(tot[p][o]));
}

// kP x kO tiles, then the pixel and channel tails.
template <class Count, int kO>
void run(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out, int ldo) {
  constexpr int kP = 2;
  const int64_t as = int64_t(Count::kK) * lp, ws = int64_t(Count::kM) * lp;
  int o = 0;
  for (; o + kO <= noc; o += kO) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile<Count, kP, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile<Count, 1, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
  for (; o < noc; ++o) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile<Count, kP, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile<Count, 1, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
}

// The plane counts whose byte counters cannot overflow run Count's tiles; the others (wider
// planes) the scalar popcnt.
template <template <int, int> class Count, int kO>
void run_planes(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits, int m_bits,
                int lp, int32_t* out, int ldo) {
  const bool done = with_plane_counts(m_bits, k_bits, [&]<int M, int K>() {
    if constexpr (avx2::steps_per_flush(Count<M, K>::kMaxPerChunk) >= 1) {
      run<Count<M, K>, kO>(a, npix, w, noc, lp, out, ldo);
      return true;
    }
    return false;
  });
  if (!done) bgemm__avx2_popcnt(a, npix, w, noc, k_bits, m_bits, lp, out, ldo);
}

}  // namespace

// popcounts of split rows equal those of the original rows, so the fallback reads them as they are
void bgemm__avx2_nib(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                     int m_bits, int lp, int32_t* out, int ldo) {
  run_planes<NibbleCount, 3>(a, npix, w, noc, k_bits, m_bits, lp, out, ldo);
}

namespace {

// round-half-even(clip(v, 0, 1) * levels) of 8 lanes (NaN -> 0), bit k of each lane's level into
// bits [b8, b8 + 8) of planes[k], k < bits.
inline void or_levels8(__m256 v, __m256 levels, int bits, int b8, uint64_t* planes) {
  v = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(v, _mm256_setzero_ps()), _mm256_set1_ps(1.0f)),
                    levels);
  const __m256i qi =
      _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
  for (int k = 0; k < bits; ++k) {
    const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(qi, 31 - k)));
    planes[k] |= uint64_t(unsigned(mask)) << b8;
  }
}

// I*mul + add of 8 lanes, I = 2p - corr, in dequant_f32__ref's two roundings (the asm barrier
// keeps GCC from contracting them into an FMA).
inline __m256 affine8(const int32_t* p, __m256i vcorr, const float* mul, const float* add) {
  const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
  const __m256i iv = _mm256_sub_epi32(_mm256_add_epi32(pv, pv), vcorr);
  __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(iv), _mm256_loadu_ps(mul));
  asm("" : "+x"(v));
  return _mm256_add_ps(v, _mm256_loadu_ps(add));
}

// The first n < 8 entries of src, zero-padded to 8 (a channel tail: zero lanes give level 0).
template <class T>
struct Tail8 {
  alignas(32) T v[8] = {};
  Tail8(const T* src, int n) { std::copy(src, src + n, v); }
};

// The packed epilogue's loop: per 64-channel word, value(o, t) for the 8 channels from o (t of
// them valid, t = 8 but in the tail) into levels and bit planes, each word stored once.
template <class ValueFn>
inline void pack_levels8(int n, int bits, uint64_t* out, const ValueFn& value) {
  const int cw = (n + 63) / 64;
  const __m256 levels = _mm256_set1_ps(float((1 << bits) - 1));
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int m = n - wi * 64 < 64 ? n - wi * 64 : 64;
    for (int b8 = 0; b8 < m; b8 += 8)
      or_levels8(value(wi * 64 + b8, std::min(8, m - b8)), levels, bits, b8, planes);
    for (int k = 0; k < bits; ++k) out[k * cw + wi] = planes[k];
  }
}

}  // namespace

void requant_pack__avx2(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                        const float* res, int bits, uint64_t* out) {
  const __m256i vcorr = _mm256_set1_epi32(corr);
  pack_levels8(n, bits, out, [&](int o, int t) {
    if (t == 8) {
      const __m256 v = affine8(p + o, vcorr, mul + o, add + o);
      return res ? _mm256_add_ps(v, _mm256_loadu_ps(res + o)) : v;
    }
    // the channel tail: the same vector arithmetic on zero-padded copies
    const __m256 v = affine8(Tail8(p + o, t).v, vcorr, Tail8(mul + o, t).v, Tail8(add + o, t).v);
    return res ? _mm256_add_ps(v, _mm256_loadu_ps(Tail8(res + o, t).v)) : v;
  });
}

// RequantResConvFn 8 channels per step: both values by affine8 (the residual's is
// dequant_f32__ref's), their sum, then the levels as requant_pack__avx2.
void requant_res_conv__avx2(const int32_t* p, int n, int32_t corr, const float* mul,
                            const float* add, const int32_t* rp, int32_t rcorr, const float* rmul,
                            const float* radd, int bits, uint64_t* out) {
  const __m256i vcorr = _mm256_set1_epi32(corr), vrcorr = _mm256_set1_epi32(rcorr);
  pack_levels8(n, bits, out, [&](int o, int t) {
    if (t == 8)
      return _mm256_add_ps(affine8(p + o, vcorr, mul + o, add + o),
                           affine8(rp + o, vrcorr, rmul + o, radd + o));
    const __m256 r =
        affine8(Tail8(rp + o, t).v, vrcorr, Tail8(rmul + o, t).v, Tail8(radd + o, t).v);
    return _mm256_add_ps(
        affine8(Tail8(p + o, t).v, vcorr, Tail8(mul + o, t).v, Tail8(add + o, t).v), r);
  });
}

// The float epilogue (DequantFn) 8 channels per step in dequant_f32__ref's order and roundings
// (affine8); relu as VMAXPS(v, 0), which returns its second operand for NaN and for -0, as the
// reference's v > 0 ? v : 0. The channel tail goes to the
// scalar body.
void dequant_f32__avx2(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                       const float* res, bool relu, float* out) {
  const __m256i vcorr = _mm256_set1_epi32(corr);
  const __m256 zero = _mm256_setzero_ps();
  int o = 0;
  for (; o + 8 <= n; o += 8) {
    __m256 v = affine8(p + o, vcorr, mul + o, add + o);
    if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + o));
    if (relu) v = _mm256_max_ps(v, zero);
    _mm256_storeu_ps(out + o, v);
  }
  if (o < n)
    dequant_f32__ref(p + o, n - o, corr, mul + o, add + o, res ? res + o : nullptr, relu, out + o);
}

void bgemm__avx2_popcnt(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                        int m_bits, int lp, int32_t* out, int ldo) {
  for (int o = 0; o < noc; ++o)
    for (int p = 0; p < npix; ++p) {
      int64_t sum = 0;
      for (int m = 0; m < m_bits; ++m) {
        const uint64_t* wr = w + (int64_t(o) * m_bits + m) * lp;
        for (int k = 0; k < k_bits; ++k) {
          const uint64_t* ar = a + (int64_t(p) * k_bits + k) * lp;
          int64_t c = 0;
          for (int i = 0; i < lp; ++i) c += int64_t(_mm_popcnt_u64(wr[i] & ar[i]));
          sum += c << (m + k);
        }
      }
      out[int64_t(p) * ldo + o] = int32_t(sum);
    }
}

void bgemm__avx2(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits, int m_bits,
                 int lp, int32_t* out, int ldo) {
  run_planes<HornerCount, 2>(a, npix, w, noc, k_bits, m_bits, lp, out, ldo);
}

}  // namespace bfcn
