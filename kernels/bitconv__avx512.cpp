// AVX-512 VPOPCNTDQ popcount GEMM: AND + vpopcntq + add per 512-bit chunk into 64-bit lanes,
// bit planes weighted by Horner doubling; a row tail of 4 words uses the 256-bit (VL) forms.
// Selected only when the CPU reports avx512vpopcntdq (kernels/cpu_features.h).
#include <immintrin.h>

#include "kernels/bitconv.h"

namespace bfcn {
namespace {

template <int P, int O>
void tile(const uint64_t* a, const uint64_t* w, int M, int K, int lp, int32_t* out, int ldo) {
  const int64_t as = int64_t(K) * lp, ws = int64_t(M) * lp;
  __m512i acc[P][O];
  __m256i acc4[P][O];
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) {
      acc[p][o] = _mm512_setzero_si512();
      acc4[p][o] = _mm256_setzero_si256();
    }
  const int full = lp / 8 * 8;
  for (int i = 0; i < full; i += 8)
    for (int p = 0; p < P; ++p)
      for (int o = 0; o < O; ++o) {
        // Horner: r = sum_m 2^m sum_k 2^k popcnt(w_m & a_k)
        __m512i r = _mm512_setzero_si512();
        for (int m = M - 1; m >= 0; --m) {
          const __m512i wv = _mm512_loadu_si512(w + o * ws + m * lp + i);
          __m512i rk = _mm512_setzero_si512();
          for (int k = K - 1; k >= 0; --k) {
            const __m512i av = _mm512_loadu_si512(a + p * as + k * lp + i);
            rk = _mm512_add_epi64(_mm512_add_epi64(rk, rk),
                                  _mm512_popcnt_epi64(_mm512_and_si512(wv, av)));
          }
          r = _mm512_add_epi64(_mm512_add_epi64(r, r), rk);
        }
        acc[p][o] = _mm512_add_epi64(acc[p][o], r);
      }
  if (full < lp)
    for (int p = 0; p < P; ++p)
      for (int o = 0; o < O; ++o) {
        __m256i r = _mm256_setzero_si256();
        for (int m = M - 1; m >= 0; --m) {
          const __m256i wv =
              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + o * ws + m * lp + full));
          __m256i rk = _mm256_setzero_si256();
          for (int k = K - 1; k >= 0; --k) {
            const __m256i av =
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + p * as + k * lp + full));
            rk = _mm256_add_epi64(_mm256_add_epi64(rk, rk),
                                  _mm256_popcnt_epi64(_mm256_and_si256(wv, av)));
          }
          r = _mm256_add_epi64(_mm256_add_epi64(r, r), rk);
        }
        acc4[p][o] = _mm256_add_epi64(acc4[p][o], r);
      }
  for (int p = 0; p < P; ++p)
    for (int o = 0; o < O; ++o) {
      alignas(64) int64_t lanes[12];
      _mm512_store_si512(lanes, acc[p][o]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(lanes + 8), acc4[p][o]);
      int64_t sum = 0;
      for (int64_t l : lanes) sum += l;
      out[p * ldo + o] = int32_t(sum);
    }
}

}  // namespace

void bgemm__avx512(const uint64_t* a, int npix, const uint64_t* w, int noc, int k_bits, int m_bits,
                   int lp, int32_t* out, int ldo) {
  constexpr int kP = 2, kO = 4;
  const int64_t as = int64_t(k_bits) * lp, ws = int64_t(m_bits) * lp;
  int o = 0;
  for (; o + kO <= noc; o += kO) {
    int p = 0;
    for (; p + kP <= npix; p += kP)
      tile<kP, kO>(a + p * as, w + o * ws, m_bits, k_bits, lp, out + int64_t(p) * ldo + o, ldo);
    for (; p < npix; ++p)
      tile<1, kO>(a + p * as, w + o * ws, m_bits, k_bits, lp, out + int64_t(p) * ldo + o, ldo);
  }
  for (; o < noc; ++o)
    for (int p = 0; p < npix; ++p)
      tile<1, 1>(a + p * as, w + o * ws, m_bits, k_bits, lp, out + int64_t(p) * ldo + o, ldo);
}

}  // namespace bfcn
