// Byte-counter popcounts, written once for the AVX2 bit-GEMMs (bitconv__avx2.cpp,
// bitconv__avx2_ocv.cpp). AVX2 has no vector popcount: bits are counted per nibble by a vpshufb
// lookup into 8-bit counters, which vpsadbw widens into 64-bit lane sums before any can overflow.
// Include only from *__avx2*.cpp files: they are compiled with -mavx2 (CMakeLists.txt).
#pragma once

#include <immintrin.h>

namespace bfcn::avx2 {

// Set bits of each nibble value 0..15, in both 128-bit lanes (vpshufb looks up within a lane).
[[gnu::always_inline]] inline __m256i nibble_popcount_lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3, 1,
                          2, 2, 3, 2, 3, 3, 4);
}

// lut[s] = the nibble popcounts times 2^s, for nibble-split rows whose plane pair (m, k) is
// weighted 2^(m+k) by the lookup itself.
template <int N>
[[gnu::always_inline]] inline void scaled_popcount_luts(__m256i (&lut)[N]) {
  static_assert(N <= 6, "bytes <= 4 << s < 256: no bits cross into the next byte");
#pragma GCC unroll 8
  for (int s = 0; s < N; ++s) lut[s] = _mm256_slli_epi16(nibble_popcount_lut(), s);
}

// Popcount of each byte of x (low: 0x0f in every byte).
[[gnu::always_inline]] inline __m256i popcount_bytes(__m256i x, __m256i lut, __m256i low) {
  const __m256i lo = _mm256_and_si256(x, low);
  const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
  return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// A byte counter widened: the sum of its 8 bytes in each 64-bit lane (vpsadbw).
[[gnu::always_inline]] inline __m256i lane_sums(__m256i bytes) {
  return _mm256_sad_epu8(bytes, _mm256_setzero_si256());
}

// How many steps, each adding at most per_step to a byte counter, it takes before a flush.
constexpr int steps_per_flush(int per_step) { return 255 / per_step; }

// R x C byte counters flushed into their 64-bit lane totals: tot += lane_sums(acc), acc = 0.
template <int R, int C>
[[gnu::always_inline]] inline void flush_byte_counters(__m256i (&acc)[R][C], __m256i (&tot)[R][C]) {
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int c = 0; c < C; ++c) {
      tot[r][c] = _mm256_add_epi64(tot[r][c], lane_sums(acc[r][c]));
      acc[r][c] = _mm256_setzero_si256();
    }
}

}  // namespace bfcn::avx2
