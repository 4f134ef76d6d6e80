// AVX-512 VNNI microkernel of the int8 stem: 6 pixels x 64 channels (four 16-channel panels, one
// zmm of int32 sums each: 24 accumulators). Per 4-byte group of a kernel row: four weight loads,
// 6 broadcasts of the pixels' 4 input bytes, 24 VPDPBUSD (4 u8 x s8 products per lane); between
// weight passes the sums shift left by 7 (times 128). Integer sums: the result equals the
// reference bit for bit, whatever the order.
#include <immintrin.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "kernels/conv_stem_int8.h"
#include "kernels/quantize__avx512.h"

namespace bfcn {

template <int NP>
void conv_stem_int8_ukernel__avx512vnni(const uint8_t* a, int64_t lda, const int64_t* row_off,
                                        int nrows, int groups, int passes, const int8_t* bp,
                                        int32_t* c, int64_t ldc) {
  const int64_t ps = int64_t(passes) * nrows * groups * 64;  // bytes between consecutive panels
  __m512i acc[6][NP];
#pragma GCC unroll 8
  for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_si512();
  for (int pass = 0; pass < passes; ++pass) {
    if (pass > 0) {  // the sums so far are of the high bytes: times 128
#pragma GCC unroll 8
      for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_maskz_slli_epi32(0xffff, acc[i][j], 7);
    }
    for (int r = 0; r < nrows; ++r) {
      const uint8_t* ar = a + row_off[r];
      for (int g = 0; g < groups; ++g, bp += 64) {
        __m512i b[NP];
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) b[j] = _mm512_loadu_si512(bp + j * ps);
#pragma GCC unroll 8
        for (int i = 0; i < 6; ++i) {
          int32_t four;
          std::memcpy(&four, ar + i * lda + 4 * g, 4);
          const __m512i av = _mm512_set1_epi32(four);
#pragma GCC unroll 4
          for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_dpbusd_epi32(acc[i][j], av, b[j]);
        }
      }
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) _mm512_storeu_si512(c + i * ldc + j * 16, acc[i][j]);
}

// The widths the variant table names (kernels/conv_stem_int8.cpp).
template std::remove_pointer_t<ConvStemInt8Ukernel> conv_stem_int8_ukernel__avx512vnni<1>;
template std::remove_pointer_t<ConvStemInt8Ukernel> conv_stem_int8_ukernel__avx512vnni<2>;
template std::remove_pointer_t<ConvStemInt8Ukernel> conv_stem_int8_ukernel__avx512vnni<3>;
template std::remove_pointer_t<ConvStemInt8Ukernel> conv_stem_int8_ukernel__avx512vnni<4>;

namespace {

constexpr __mmask16 kAll = 0xffff;

// The first `left` of 16 lanes (all when left >= 16).
inline __mmask16 lanes(int64_t left) { return left >= 16 ? kAll : __mmask16((1u << left) - 1); }

// Lanes k of v (each in 0..255) as bytes to q. The register form of the narrow: the memory form
// is several times slower on Zen 4/5.
inline void store_bytes(uint8_t* q, __mmask16 k, __m512i v) {
  const __m128i b = _mm512_maskz_cvtepi32_epi8(kAll, v);
  if (k == kAll)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(q), b);
  else
    _mm_mask_storeu_epi8(q, k, b);
}

// Channels o.. (lanes k) of one pixel: (float(acc - corr) - corr_frac) * scale + bias, then the
// ReLU, in the reference's order (the asm barrier keeps GCC from contracting the mul and add into
// an FMA; MAXPS returns its second operand, 0, for NaN as the reference's v > 0 ? v : 0 does).
inline __m512 dequant16(const int32_t* acc, int o, __mmask16 k, const StemInt8Dequant& d) {
  const __m512i centred = _mm512_maskz_sub_epi32(kAll, _mm512_maskz_loadu_epi32(k, acc + o),
                                                 _mm512_maskz_loadu_epi32(k, d.corr + o));
  const __m512 s = _mm512_sub_ps(_mm512_maskz_cvtepi32_ps(kAll, centred),
                                 _mm512_maskz_loadu_ps(k, d.corr_frac + o));
  __m512 v = _mm512_mul_ps(s, _mm512_maskz_loadu_ps(k, d.scale + o));
  asm("" : "+v"(v));
  v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, d.bias + o));
  return d.relu ? _mm512_maskz_max_ps(kAll, v, _mm512_setzero_ps()) : v;
}

}  // namespace

// 16 channels per step, masked tail. With thresholds: the count of those reached. Else the
// float operations of conv_stem_int8_epilogue__ref in its order, round to nearest even.
// Zero-masked forms throughout: see conv_stem_quantize__avx512.
void conv_stem_int8_epilogue__avx512vnni(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                         const StemInt8Dequant& d, uint8_t* q) {
  const int levels = (1 << d.bits) - 1;
  if (d.thresholds && oc == 64 && levels <= 3) {  // the RGB stem: thresholds held in registers
    const __m512i one = _mm512_set1_epi32(1);
    __m512i t[3][4];
    for (int l = 0; l < 3; ++l)
      for (int j = 0; j < 4; ++j)  // levels < 3: INT32_MAX is never reached
        t[l][j] = l < levels ? _mm512_loadu_si512(d.thresholds + l * 64 + 16 * j)
                             : _mm512_set1_epi32(INT32_MAX);
    // packus 32 -> 16 -> 8 bits interleaves the four vectors per 128-bit lane; this puts every
    // 4-channel dword back in channel order.
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (int64_t i = 0; i < m; ++i, acc += ldc, q += 64) {
      __m512i code[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const __m512i a = _mm512_loadu_si512(acc + 16 * j);
        code[j] = _mm512_maskz_mov_epi32(_mm512_cmpge_epi32_mask(a, t[0][j]), one);
        code[j] = _mm512_mask_add_epi32(code[j], _mm512_cmpge_epi32_mask(a, t[1][j]), code[j], one);
        code[j] = _mm512_mask_add_epi32(code[j], _mm512_cmpge_epi32_mask(a, t[2][j]), code[j], one);
      }
      const __m512i w = _mm512_packus_epi16(_mm512_packus_epi32(code[0], code[1]),
                                            _mm512_packus_epi32(code[2], code[3]));
      _mm512_storeu_si512(q, _mm512_maskz_permutexvar_epi32(0xffff, order, w));
    }
    return;
  }
  if (d.thresholds) {
    const __m512i one = _mm512_set1_epi32(1);
    for (int64_t i = 0; i < m; ++i, acc += ldc, q += oc)
      for (int o = 0; o < oc; o += 16) {
        const __mmask16 k = lanes(oc - o);
        const __m512i a = _mm512_maskz_loadu_epi32(k, acc + o);
        __m512i code = _mm512_setzero_si512();
        for (int l = 0; l < levels; ++l) {
          const __mmask16 ge =
              _mm512_cmpge_epi32_mask(a, _mm512_maskz_loadu_epi32(k, d.thresholds + l * oc + o));
          code = _mm512_mask_add_epi32(code, ge, code, one);
        }
        store_bytes(q + o, k, code);
      }
    return;
  }
  const __m512 top = _mm512_set1_ps(float(levels));
  for (int64_t i = 0; i < m; ++i, acc += ldc, q += oc)
    for (int o = 0; o < oc; o += 16) {
      const __mmask16 k = lanes(oc - o);
      const __m512 v = avx512::affine16(dequant16(acc, o, k, d), d.mul ? d.mul + o : nullptr,
                                        d.add ? d.add + o : nullptr, k);
      store_bytes(q + o, k, avx512::level16(v, top));
    }
}

// conv_stem_int8_dequant__ref, 16 channels per step.
void conv_stem_int8_dequant__avx512vnni(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                        const StemInt8Dequant& d, float* y) {
  for (int64_t i = 0; i < m; ++i, acc += ldc, y += oc)
    for (int o = 0; o < oc; o += 16) {
      const __mmask16 k = lanes(oc - o);
      _mm512_mask_storeu_ps(y + o, k, dequant16(acc, o, k, d));
    }
}

// Lane-wise min/max with the scalar loop's NaN rule (a NaN x keeps the running value: the second
// operand of MINPS/MAXPS is returned when either is NaN), then across lanes; the distance of 255 x
// from its nearest integer the same way (an infinite x gives NaN there: ignored, as the
// reference's d > dev is false).
void stem_int8_range__avx512vnni(const float* x, int64_t n, float* mn, float* mx, float* off_grid) {
  __m512 lo = _mm512_set1_ps(std::numeric_limits<float>::infinity()),
         hi = _mm512_set1_ps(-std::numeric_limits<float>::infinity()), dev = _mm512_setzero_ps();
  const __m512 k255 = _mm512_set1_ps(255.0f);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    lo = _mm512_maskz_min_ps(0xffff, v, lo);
    hi = _mm512_maskz_max_ps(0xffff, v, hi);
    const __m512 t = _mm512_mul_ps(v, k255);
    const __m512 d = _mm512_abs_ps(_mm512_sub_ps(
        t, _mm512_maskz_roundscale_ps(0xffff, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
    dev = _mm512_maskz_max_ps(0xffff, d, dev);
  }
  alignas(64) float l[16], h[16], g[16];
  _mm512_store_ps(l, lo);
  _mm512_store_ps(h, hi);
  _mm512_store_ps(g, dev);
  float a = l[0], b = h[0], e = g[0];
  for (int j = 1; j < 16; ++j) {
    a = l[j] < a ? l[j] : a;
    b = h[j] > b ? h[j] : b;
    e = g[j] > e ? g[j] : e;
  }
  for (; i < n; ++i) {
    a = x[i] < a ? x[i] : a;
    b = x[i] > b ? x[i] : b;
    const float t = x[i] * 255.0f, d = std::fabs(t - std::nearbyint(t));
    e = d > e ? d : e;
  }
  *mn = a;
  *mx = b;
  *off_grid = e;
}

// 16 pixels per step, masked tail: the reference's float operations in its order (asm barriers
// against FMA contraction), clamp (NaN -> 0), round to nearest even, narrow to bytes.
void stem_int8_quantize_row__avx512vnni(const float* x, int64_t n, float mu, float inv, float rstep,
                                        float zf, uint8_t* q) {
  const __m512 vmu = _mm512_set1_ps(mu), vinv = _mm512_set1_ps(inv), vr = _mm512_set1_ps(rstep);
  const __m512 vz = _mm512_set1_ps(zf), zero = _mm512_setzero_ps(), top = _mm512_set1_ps(255.0f);
  for (int64_t i = 0; i < n; i += 16) {
    const __mmask16 k = lanes(n - i);
    __m512 t = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vmu), vinv);
    asm("" : "+v"(t));
    t = _mm512_mul_ps(t, vr);
    asm("" : "+v"(t));
    t = _mm512_add_ps(t, vz);
    t = _mm512_maskz_min_ps(kAll, _mm512_maskz_max_ps(kAll, t, zero), top);  // NaN -> 0
    store_bytes(q + i, k,
                _mm512_maskz_cvtps_epi32(
                    kAll, _mm512_maskz_roundscale_ps(
                              kAll, t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)));
  }
}

}  // namespace bfcn
