// AVX-512 fused quantize + pack of float NHWC activations (bitpack.h): 16 channels per step, each
// bit plane's 16 bits taken as one test mask and gathered in a register per 64-channel word, so
// every output word is stored once (the AVX2 body ORs each 8-channel piece into memory, a chain
// of store-to-load forwards that made it ~10 cycles per 8 floats). The float operations are those
// of the scalar quantize_level (multiply, then add, no FMA; clip; round half to even), so all
// variants agree bit for bit.
#include <immintrin.h>

#include <algorithm>

#include "kernels/bitpack.h"
#include "kernels/quantize__avx512.h"

namespace bfcn {

namespace {

// Pixels [p0, p1).
void quantize_pack_pixels(const float* x, int64_t p0, int64_t p1, int c, int bits, const float* mul,
                          const float* add, uint64_t* out) {
  const int cw = bit_words(c);
  const __m512 levels = _mm512_set1_ps(float((1 << bits) - 1));
  const __mmask16 all = 0xffff;
  for (int64_t p = p0; p < p1; ++p) {
    const float* src = x + p * c;
    uint64_t* dst = out + p * bits * cw;
    for (int wi = 0; wi < cw; ++wi) {
      uint64_t planes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
      const int m = std::min(64, c - wi * 64);
      for (int j = 0; j < m; j += 16) {
        const int ch = wi * 64 + j;
        const __mmask16 k = m - j >= 16 ? all : __mmask16((1u << (m - j)) - 1);
        const __m512 v = avx512::affine16(_mm512_maskz_loadu_ps(k, src + ch),
                                          mul ? mul + ch : nullptr, add ? add + ch : nullptr, k);
        avx512::or_planes(avx512::level16(v, levels), k, bits, j, planes);
      }
      for (int b = 0; b < bits; ++b) dst[b * cw + wi] = planes[b];
    }
  }
}

}  // namespace

void quantize_pack_act__avx512(const float* x, int64_t pixels, int c, int bits, const float* mul,
                               const float* add, uint64_t* out) {
  // Small maps stay out of OpenMP (the same bound as the other variants; an if(false) region
  // still sets up a team of one per call).
  if (pixels * c <= 65536) return quantize_pack_pixels(x, 0, pixels, c, bits, mul, add, out);
  constexpr int64_t kChunk = 256;
#pragma omp parallel for schedule(static)
  for (int64_t p0 = 0; p0 < pixels; p0 += kChunk)
    quantize_pack_pixels(x, p0, std::min(pixels, p0 + kChunk), c, bits, mul, add, out);
}

}  // namespace bfcn
