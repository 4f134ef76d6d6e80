// The activation quantizer's float steps on 16 lanes, shared by the AVX-512 kernels that end in
// codes (bitpack, the bit-conv float epilogue, both stems): the operations of quantize_level
// (kernels/bitpack.h) in its order, so every variant agrees with the scalar one bit for bit.
// Zero-masked forms throughout: GCC 12 warns (maybe-uninitialized) on the undefined pass-through
// of the plain max/min/round/convert. Include only from *__avx512*.cpp files: they are compiled
// with -mavx512f... (CMakeLists.txt).
#pragma once

#include <immintrin.h>

#include <cstdint>

namespace bfcn::avx512 {

// v*mul, then + add, each when its pointer is set (lanes outside k read 0); the asm barrier keeps
// GCC from contracting the two into an FMA.
inline __m512 affine16(__m512 v, const float* mul, const float* add, __mmask16 k) {
  if (mul) {
    v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(k, mul));
    asm("" : "+v"(v));
  }
  if (add) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, add));
  return v;
}

// round-half-even(clip(v, 0, 1) * levels) as int32 lanes, NaN -> 0.
inline __m512i level16(__m512 v, __m512 levels) {
  const __mmask16 all = 0xffff;
  v = _mm512_mul_ps(_mm512_maskz_min_ps(all, _mm512_maskz_max_ps(all, v, _mm512_setzero_ps()),
                                        _mm512_set1_ps(1.0f)),
                    levels);
  asm("" : "+v"(v));
  return _mm512_maskz_cvtps_epi32(
      all, _mm512_maskz_roundscale_ps(all, v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
}

// Bit b of each lane's level (lanes outside k: 0) into bits [j, j+16) of planes[b], b < bits.
inline void or_planes(__m512i q, __mmask16 k, int bits, int j, uint64_t* planes) {
  for (int b = 0; b < bits; ++b)
    planes[b] |= uint64_t(_mm512_mask_test_epi32_mask(k, q, _mm512_set1_epi32(1 << b))) << j;
}

}  // namespace bfcn::avx512
