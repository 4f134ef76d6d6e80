// AVX-512 activation counts (ActCountFn, kernels/bitconv.h) for inputs of N = planes x words = 1,
// 2, 4 or 8 words per pixel (up to 512 channels at 1 bit, 256 at 2): 8 pixels per step, VPOPCNTQ
// over their N zmm of words, plane k weighted by a shift of k, then each pixel's N lanes summed
// by a tree of even/odd lane permutes (each level halves the zmm count and the lanes per pixel).
// Other layouts and the last pixels take the scalar POPCNT loop (count_pixels__popcnt), which
// took ~2.5 cycles per word at 2 words per plane (a quarter of a 64x64x128 layer's driver time).
// Exact: integer counts.
#include <immintrin.h>

#include <cstddef>
#include <utility>

#include "kernels/bitconv.h"

namespace bfcn {
namespace {

// Lane pairs of the 16-lane sequence [a, b] summed: lane t = seq[2t] + seq[2t+1].
inline __m512i pair_sums(__m512i a, __m512i b, __m512i even, __m512i odd) {
  return _mm512_add_epi64(_mm512_permutex2var_epi64(a, even, b),
                          _mm512_permutex2var_epi64(a, odd, b));
}

// x[0..M) -> x[0] by levels of pair sums (written out at compile time: no loop annotations,
// which GCC rejects once it has unrolled the outer level itself).
template <int M>
inline void sum_tree(__m512i* x, __m512i even, __m512i odd) {
  if constexpr (M > 1) {
    [&]<size_t... J>(std::index_sequence<J...>) {
      ((x[J] = pair_sums(x[2 * J], x[2 * J + 1], even, odd)), ...);  // x[2J] is read first
    }
    (std::make_index_sequence<M / 2>{});
    sum_tree<M / 2>(x, even, odd);
  }
}

template <int N>
int64_t count_8px(const uint64_t* in, int64_t p, int64_t p1, int cw, int32_t* counts) {
  // word j of a pixel (lane % N: each zmm starts at a pixel) is in plane j / cw
  alignas(64) int64_t sh[8];
  for (int l = 0; l < 8; ++l) sh[l] = (l % N) / cw;
  const __m512i shift = _mm512_load_si512(sh);
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  for (; p + 8 <= p1; p += 8) {
    __m512i x[N];
    [&]<size_t... J>(std::index_sequence<J...>) {
      ((x[J] = _mm512_maskz_sllv_epi64(
            0xff, _mm512_popcnt_epi64(_mm512_loadu_si512(in + p * N + 8 * int(J))), shift)),
       ...);
    }
    (std::make_index_sequence<N>{});
    sum_tree<N>(x, even, odd);
    _mm512_mask_cvtepi64_storeu_epi32(counts + p, 0xff, x[0]);
  }
  return p;
}

}  // namespace

void count_pixels__avx512(const uint64_t* in, int64_t p0, int64_t p1, int kb, int cw,
                          int32_t* counts) {
  int64_t p = p0;
  switch (kb * cw) {
    case 1:
      p = count_8px<1>(in, p, p1, cw, counts);
      break;
    case 2:
      p = count_8px<2>(in, p, p1, cw, counts);
      break;
    case 4:
      p = count_8px<4>(in, p, p1, cw, counts);
      break;
    case 8:
      p = count_8px<8>(in, p, p1, cw, counts);
      break;
    default:
      break;
  }
  count_pixels__popcnt(in, p, p1, kb, cw, counts);
}

}  // namespace bfcn
