// AVX2 fused DoReFa fake-quantization: clamp, scale, round-half-even (vroundps) and divide in
// registers, plus the clamp's byte mask from a compare's movemask through a 256-entry table, and
// the masked gradient select.
// Same float operations as quantize_levels_f32__ref, so results are bit-identical.
#include <immintrin.h>

#include <array>
#include <cstdint>
#include <cstring>

#include "kernels/elementwise.h"

namespace bfcn {

namespace {
// kBytes[m] holds the 8 bytes (bit j of m) for j = 0..7, little-endian.
constexpr std::array<uint64_t, 256> make_bytes() {
  std::array<uint64_t, 256> t{};
  for (int m = 0; m < 256; ++m)
    for (int j = 0; j < 8; ++j)
      if ((m >> j) & 1) t[static_cast<size_t>(m)] |= uint64_t{1} << (8 * j);
  return t;
}
constexpr std::array<uint64_t, 256> kBytes = make_bytes();
}  // namespace

void quantize_levels_f32__avx2(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                               int64_t n) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.0f);
  const __m256 lv = _mm256_set1_ps(levels);
  const bool want_mask = clip && mask != nullptr;
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    __m256 c = v;
    if (clip) {
      // max_ps(a, b) = a > b ? a : b and min_ps(a, b) = a < b ? a : b (b when either is NaN):
      // exactly v < 0 ? 0 : (v > 1 ? 1 : v), NaN and -0 kept as clamp_f32 keeps them.
      c = _mm256_min_ps(one, _mm256_max_ps(zero, v));
    }
    const __m256 r =
        _mm256_round_ps(_mm256_mul_ps(c, lv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    _mm256_storeu_ps(y + i, _mm256_div_ps(r, lv));
    if (want_mask) {
      const __m256 in =
          _mm256_and_ps(_mm256_cmp_ps(v, zero, _CMP_GE_OQ), _mm256_cmp_ps(v, one, _CMP_LE_OQ));
      const uint64_t bytes = kBytes[static_cast<size_t>(_mm256_movemask_ps(in))];
      std::memcpy(mask + i, &bytes, 8);
    }
  }
  if (i < n)
    quantize_levels_f32__ref(x + i, levels, clip, y + i, want_mask ? mask + i : nullptr, n - i);
}

void mask_select_f32__avx2(const float* dy, const uint8_t* mask, float* dx, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    int64_t m8;
    std::memcpy(&m8, mask + i, 8);
    const __m256i m = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128(m8));
    const __m256 keep = _mm256_castsi256_ps(_mm256_cmpgt_epi32(m, _mm256_setzero_si256()));
    _mm256_storeu_ps(dx + i, _mm256_and_ps(keep, _mm256_loadu_ps(dy + i)));
  }
  for (; i < n; ++i) dx[i] = mask[i] != 0 ? dy[i] : 0.0f;
}

}  // namespace bfcn
