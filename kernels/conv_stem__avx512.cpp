// AVX-512 FMA direct-convolution microkernel for the stem: 6 pixels x 64 channels (four 16-column
// panels, one zmm each: 24 accumulators, per k four B loads and 6 broadcasts for 24 FMAs), A rows
// read straight from the zero-padded NHWC image as in the AVX2 6x16 kernel. Each output is summed
// from zero in (row, p) order with FMA, the same order as the AVX2 kernel. A second form quantizes
// the sums in registers (conv_stem_ukernel_q__avx512): the stem head's codes without a float row
// stored and read back (that pass took ~7 % of the stem's time).
#include <immintrin.h>

#include <algorithm>
#include <limits>
#include <type_traits>

#include "kernels/conv_stem.h"
#include "kernels/quantize__avx512.h"

namespace bfcn {

namespace {

// acc = the 6 x 16*NP sums (see conv_stem_ukernel__avx512).
template <int NP>
[[gnu::always_inline]] inline void stem_sums(const float* a, int64_t lda, int64_t rs, int rows,
                                             int run, const float* bp, __m512 (&acc)[6][NP]) {
  const int64_t ps = int64_t(rows) * run * 16;  // floats between consecutive panels
#pragma GCC unroll 8
  for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_setzero_ps();
  for (int r = 0; r < rows; ++r) {
    const float* ar = a + r * rs;
    for (int p = 0; p < run; ++p, bp += 16) {
      __m512 b[NP];
#pragma GCC unroll 4
      for (int j = 0; j < NP; ++j) b[j] = _mm512_load_ps(bp + j * ps);
#pragma GCC unroll 8
      for (int i = 0; i < 6; ++i) {
        const __m512 av = _mm512_set1_ps(ar[i * lda + p]);
#pragma GCC unroll 4
        for (int j = 0; j < NP; ++j) acc[i][j] = _mm512_fmadd_ps(av, b[j], acc[i][j]);
      }
    }
  }
}

// conv_stem_quantize's operations on 16 sums of channels [o, o+16) (lanes outside k: zero
// parameters, their codes never stored): bias, ReLU, then the activation quantizer's steps
// (kernels/quantize__avx512.h), the same float operations in the same order as
// conv_stem_quantize__avx2.
inline __m512i stem_level(__m512 v, __mmask16 k, const float* bias, bool relu, const float* mul,
                          const float* add, __m512 levels) {
  v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(k, bias));
  if (relu) v = _mm512_maskz_max_ps(0xffff, v, _mm512_setzero_ps());  // (v > 0 ? v : 0): NaN -> 0
  return avx512::level16(avx512::affine16(v, mul, add, k), levels);
}

}  // namespace

template <int NP>
void conv_stem_ukernel__avx512(const float* a, int64_t lda, int64_t rs, int rows, int run,
                               const float* bp, float* c, int64_t ldc) {
  __m512 acc[6][NP];
  stem_sums<NP>(a, lda, rs, rows, run, bp, acc);
#pragma GCC unroll 8
  for (int i = 0; i < 6; ++i)
#pragma GCC unroll 4
    for (int j = 0; j < NP; ++j) _mm512_storeu_ps(c + i * ldc + j * 16, acc[i][j]);
}

template <int NP>
void conv_stem_ukernel_q__avx512(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                 const float* bp, const StemQuantTile& t, uint8_t* q, int64_t ldq) {
  __m512 acc[6][NP];
  stem_sums<NP>(a, lda, rs, rows, run, bp, acc);
  const __m512 levels = _mm512_set1_ps(float((1 << t.bits) - 1));
#pragma GCC unroll 4
  for (int j = 0; j < NP; ++j) {
    const int left = t.valid - 16 * j;
    const __mmask16 k = left >= 16 ? __mmask16(0xffff) : __mmask16((1u << std::max(left, 0)) - 1);
    const int o = 16 * j;
#pragma GCC unroll 8
    for (int i = 0; i < 6; ++i) {
      if (i >= t.npix) break;
      const __m512i qi = stem_level(acc[i][j], k, t.bias + o, t.relu, t.mul ? t.mul + o : nullptr,
                                    t.add ? t.add + o : nullptr, levels);
      _mm512_mask_cvtusepi32_storeu_epi8(q + i * ldq + o, k, qi);
    }
  }
}

// The widths the variant table names (kernels/conv_stem.cpp).
template std::remove_pointer_t<ConvStemUkernel> conv_stem_ukernel__avx512<1>;
template std::remove_pointer_t<ConvStemUkernel> conv_stem_ukernel__avx512<2>;
template std::remove_pointer_t<ConvStemUkernel> conv_stem_ukernel__avx512<3>;
template std::remove_pointer_t<ConvStemUkernel> conv_stem_ukernel__avx512<4>;
template std::remove_pointer_t<ConvStemQuantUkernel> conv_stem_ukernel_q__avx512<1>;
template std::remove_pointer_t<ConvStemQuantUkernel> conv_stem_ukernel_q__avx512<2>;
template std::remove_pointer_t<ConvStemQuantUkernel> conv_stem_ukernel_q__avx512<3>;
template std::remove_pointer_t<ConvStemQuantUkernel> conv_stem_ukernel_q__avx512<4>;

}  // namespace bfcn

namespace bfcn {

// 16 channels per step, masked tail (stem_level), then a saturating narrow to bytes.
void conv_stem_quantize__avx512(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                                const float* mul, const float* add, int bits, uint8_t* q) {
  const __m512 levels = _mm512_set1_ps(float((1 << bits) - 1));
  for (int64_t i = 0; i < m; ++i, acc += oc, q += oc)
    for (int o = 0; o < oc; o += 16) {
      const __mmask16 k = oc - o >= 16 ? __mmask16(0xffff) : __mmask16((1u << (oc - o)) - 1);
      const __m512i qi = stem_level(_mm512_maskz_loadu_ps(k, acc + o), k, bias + o, relu,
                                    mul ? mul + o : nullptr, add ? add + o : nullptr, levels);
      _mm512_mask_cvtusepi32_storeu_epi8(q + o, k, qi);
    }
}

// Per pooled pixel, 64 channels (4 zmm, masked tail) held in registers over the whole window:
// each tap is one load and one max per 16 channels (the tap first: VMAXPS returns its second
// operand for a NaN, so a NaN tap is skipped as in the reference), then the bias and ReLU, the
// output stored once.
void stem_pool_row__avx512(const float* const* rows, int nrows, int ow, int oc, int kernel,
                           int stride, int pad, int pw, const float* bias, bool relu, float* out) {
  const __mmask16 all = 0xffff;
  for (int px = 0; px < pw; ++px) {
    const int x0 = std::max(0, px * stride - pad), x1 = std::min(ow, px * stride - pad + kernel);
    for (int o = 0; o < oc; o += 64) {
      __m512 m[4];
      __mmask16 k[4];
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        const int left = oc - o - 16 * j;
        k[j] = left >= 16 ? all : left > 0 ? __mmask16((1u << left) - 1) : __mmask16(0);
        m[j] = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
      }
      for (int r = 0; r < nrows; ++r)
        for (int ix = x0; ix < x1; ++ix) {
          const float* src = rows[r] + int64_t(ix) * oc + o;
#pragma GCC unroll 4
          for (int j = 0; j < 4; ++j)
            m[j] = _mm512_mask_max_ps(m[j], k[j], _mm512_maskz_loadu_ps(k[j], src + 16 * j), m[j]);
        }
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j) {
        if (bias != nullptr) {
          m[j] = _mm512_add_ps(m[j], _mm512_maskz_loadu_ps(k[j], bias + o + 16 * j));
          if (relu) m[j] = _mm512_maskz_max_ps(0xffff, m[j], _mm512_setzero_ps());  // v > 0 ? v : 0
        }
        _mm512_mask_storeu_ps(out + int64_t(px) * oc + o + 16 * j, k[j], m[j]);
      }
    }
  }
}

}  // namespace bfcn
