// AVX2 popcount GEMMs. AVX2 has no vector popcount, so bgemm__avx2 counts bits with the nibble
// lookup (vpshufb) into byte counters, weights the bit planes by Horner doubling in bytes, and
// widens with vpsadbw only every kFlush chunks (before a byte can overflow). bgemm__avx2_popcnt is
// the scalar 64-bit popcnt alternative, kept to measure which wins (docs/bench_runtime.md).
#include <immintrin.h>

#include "kernels/bitconv.h"

namespace bfcn {
namespace {

inline __m256i popcnt_bytes(__m256i x, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(x, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

inline int64_t hsum_u64(__m256i v) {
  const __m128i s = _mm_add_epi64(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  return _mm_cvtsi128_si64(s) + _mm_extract_epi64(s, 1);
}

// P patches x O weight rows; byte counters per pair hold at most 8*(2^M-1)*(2^K-1) per chunk.
template <int M, int K, int P, int O>
void tile(const uint64_t* a, const uint64_t* w, int lp, int32_t* out, int ldo) {
  constexpr int kMaxPerChunk = 8 * ((1 << M) - 1) * ((1 << K) - 1);
  constexpr int kFlush = 255 / kMaxPerChunk;
  static_assert(kFlush >= 1, "byte counters would overflow");
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2,
                                       1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
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
      for (int p = 0; p < P; ++p) {
        // Horner over m then k: r = sum 2^(m+k) cnt(w_m & a_k)
        __m256i r = zero;
        for (int m = M - 1; m >= 0; --m) {
          __m256i rk = popcnt_bytes(_mm256_and_si256(wv[m], av[p][K - 1]), lut, low);
          for (int k = K - 2; k >= 0; --k)
            rk = _mm256_add_epi8(_mm256_add_epi8(rk, rk),
                                 popcnt_bytes(_mm256_and_si256(wv[m], av[p][k]), lut, low));
          r = (m == M - 1) ? rk : _mm256_add_epi8(_mm256_add_epi8(r, r), rk);
        }
        acc[p][o] = _mm256_add_epi8(acc[p][o], r);
      }
    }
    if (++since == kFlush) {
      for (int p = 0; p < P; ++p)
        for (int o = 0; o < O; ++o) {
          tot[p][o] = _mm256_add_epi64(tot[p][o], _mm256_sad_epu8(acc[p][o], zero));
          acc[p][o] = zero;
        }
      since = 0;
    }
  }
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) {
      tot[p][o] = _mm256_add_epi64(tot[p][o], _mm256_sad_epu8(acc[p][o], zero));
      out[p * ldo + o] = int32_t(hsum_u64(tot[p][o]));
    }
}

template <int M, int K>
void run(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out, int ldo) {
  constexpr int kP = 2, kO = 2;
  const int64_t as = int64_t(K) * lp, ws = int64_t(M) * lp;
  int o = 0;
  for (; o + kO <= noc; o += kO) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile<M, K, kP, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile<M, K, 1, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
  for (; o < noc; ++o) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile<M, K, kP, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile<M, K, 1, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
}

// Nibble-split rows (BgemmVariant::split_nibbles): every byte holds one nibble, so the popcount
// of w AND a is one vpshufb of a LUT pre-scaled by 2^(m+k); 3 ops per plane pair per chunk.
template <int M, int K, int P, int O>
void tile_nib(const uint64_t* a, const uint64_t* w, int lp, int32_t* out, int ldo) {
  constexpr int kMaxPerChunk = 4 * ((1 << M) - 1) * ((1 << K) - 1);
  constexpr int kFlush = 255 / kMaxPerChunk;
  static_assert(kFlush >= 1, "byte counters would overflow");
  __m256i lut[M + K - 1];
  for (int sft = 0; sft < M + K - 1; ++sft)
    lut[sft] = _mm256_slli_epi16(_mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0,
                                                  1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4),
                                 sft);  // bytes <= 4 << sft < 256: no bits cross into the next byte
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
    for (int o = 0; o < O; ++o)
      for (int m = 0; m < M; ++m) {
        const __m256i wv =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + (o * M + m) * lp) + c);
        for (int p = 0; p < P; ++p)
          for (int k = 0; k < K; ++k)
            acc[p][o] = _mm256_add_epi8(
                acc[p][o], _mm256_shuffle_epi8(lut[m + k], _mm256_and_si256(wv, av[p][k])));
      }
    if (++since == kFlush) {
      for (int p = 0; p < P; ++p)
        for (int o = 0; o < O; ++o) {
          tot[p][o] = _mm256_add_epi64(tot[p][o], _mm256_sad_epu8(acc[p][o], zero));
          acc[p][o] = zero;
        }
      since = 0;
    }
  }
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) {
      tot[p][o] = _mm256_add_epi64(tot[p][o], _mm256_sad_epu8(acc[p][o], zero));
      out[p * ldo + o] = int32_t(hsum_u64(tot[p][o]));
    }
}

template <int M, int K>
void run_nib(const uint64_t* a, int npix, const uint64_t* w, int noc, int lp, int32_t* out,
             int ldo) {
  constexpr int kP = 2, kO = 3;
  const int64_t as = int64_t(K) * lp, ws = int64_t(M) * lp;
  int o = 0;
  for (; o + kO <= noc; o += kO) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile_nib<M, K, kP, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile_nib<M, K, 1, kO>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
  for (; o < noc; ++o) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile_nib<M, K, kP, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile_nib<M, K, 1, 1>(a + p * as, w + o * ws, lp, out + int64_t(p) * ldo + o, ldo);
  }
}

}  // namespace

void bgemm__avx2_nib(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits,
                     int m_bits, int lp, int32_t* out, int ldo) {
  switch (m_bits * 16 + k_bits) {
    case 0x11:
      return run_nib<1, 1>(a, npix, w, noc, lp, out, ldo);
    case 0x12:
      return run_nib<1, 2>(a, npix, w, noc, lp, out, ldo);
    case 0x13:
      return run_nib<1, 3>(a, npix, w, noc, lp, out, ldo);
    case 0x14:
      return run_nib<1, 4>(a, npix, w, noc, lp, out, ldo);
    case 0x21:
      return run_nib<2, 1>(a, npix, w, noc, lp, out, ldo);
    case 0x22:
      return run_nib<2, 2>(a, npix, w, noc, lp, out, ldo);
    case 0x23:
      return run_nib<2, 3>(a, npix, w, noc, lp, out, ldo);
    case 0x24:
      return run_nib<2, 4>(a, npix, w, noc, lp, out, ldo);
    default:  // popcounts of split rows equal those of the original rows
      return bgemm__avx2_popcnt(a, npix, w, noc, k_bits, m_bits, lp, out, ldo);
  }
}

void requant_pack__avx2(const int32_t* p, int n, int32_t corr, const float* mul, const float* add,
                        const float* res, int bits, uint64_t* out) {
  const int cw = (n + 63) / 64;
  const __m256i vcorr = _mm256_set1_epi32(corr);
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 levels = _mm256_set1_ps(float((1 << bits) - 1));
  for (int wi = 0; wi < cw; ++wi) {
    uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int m = n - wi * 64 < 64 ? n - wi * 64 : 64;
    for (int b8 = 0; b8 < m; b8 += 8) {
      const int o = wi * 64 + b8;
      // channel tail: the same vector arithmetic on zero-padded copies (zero lanes give q = 0)
      alignas(32) int32_t pt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      alignas(32) float mt[8] = {0, 0, 0, 0, 0, 0, 0, 0}, at[8] = {0, 0, 0, 0, 0, 0, 0, 0},
                        rt[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int32_t* pp = p + o;
      const float *mp = mul + o, *ap = add + o, *rp = res ? res + o : nullptr;
      if (b8 + 8 > m) {
        for (int i = 0; i < m - b8; ++i) {
          pt[i] = p[o + i];
          mt[i] = mul[o + i];
          at[i] = add[o + i];
          if (res) rt[i] = res[o + i];
        }
        pp = pt;
        mp = mt;
        ap = at;
        if (res) rp = rt;
      }
      const __m256i pv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(pp));
      const __m256i iv = _mm256_sub_epi32(_mm256_add_epi32(pv, pv), vcorr);
      __m256 v = _mm256_add_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(iv), _mm256_loadu_ps(mp)),
                               _mm256_loadu_ps(ap));
      if (rp) v = _mm256_add_ps(v, _mm256_loadu_ps(rp));
      v = _mm256_mul_ps(_mm256_min_ps(_mm256_max_ps(v, zero), one), levels);  // NaN -> 0
      const __m256i qi =
          _mm256_cvtps_epi32(_mm256_round_ps(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
      for (int k = 0; k < bits; ++k) {
        const int mask = _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_slli_epi32(qi, 31 - k)));
        planes[k] |= uint64_t(unsigned(mask)) << b8;
      }
    }
    for (int k = 0; k < bits; ++k) out[k * cw + wi] = planes[k];
  }
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
    default:  // wider planes would overflow byte counters: scalar popcnt
      return bgemm__avx2_popcnt(a, npix, w, noc, k_bits, m_bits, lp, out, ldo);
  }
}

}  // namespace bfcn
