// f32 2-D convolution kernels over raw NCHW pointers: forward, backward-input, backward-weight and
// backward-bias, each with a direct `__ref` twin used by the tests. The fast path lowers to GEMM
// per (image, group) on column chunks of a bounded im2col buffer (1x1/stride-1/no-pad convs use
// the input itself), so memory stays small even for the 7x7 stem at 512x512. Outputs are
// overwritten (not accumulated); no Tensor, no exceptions, preconditions are asserts.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

struct ConvGeom {
  int64_t n = 1, c = 1, h = 1, w = 1;  // input x [n,c,h,w]
  int64_t k = 1, kh = 1, kw = 1;       // weight [k, c/groups, kh, kw]
  int64_t stride_h = 1, stride_w = 1;
  int64_t pad_h = 0, pad_w = 0;
  int64_t dilation_h = 1, dilation_w = 1;
  int64_t groups = 1;

  int64_t out_h() const { return (h + 2 * pad_h - dilation_h * (kh - 1) - 1) / stride_h + 1; }
  int64_t out_w() const { return (w + 2 * pad_w - dilation_w * (kw - 1) - 1) / stride_w + 1; }
  // Multiply-adds of one forward pass.
  int64_t macs() const { return n * k * out_h() * out_w() * (c / groups) * kh * kw; }
  // True when the sizes are consistent (positive, divisible by groups, non-empty output).
  bool valid() const;
};

// y [n,k,Ho,Wo] = conv(x [n,c,h,w], w [k,c/g,kh,kw]) + bias [k] (bias may be null).
void conv2d_forward(const ConvGeom& g, const float* x, const float* w, const float* bias, float* y);
// dx [n,c,h,w] from dy [n,k,Ho,Wo] and w.
void conv2d_backward_input(const ConvGeom& g, const float* dy, const float* w, float* dx);
// dw [k,c/g,kh,kw] from x and dy (summed over the batch).
void conv2d_backward_weight(const ConvGeom& g, const float* x, const float* dy, float* dw);
// db [k] = sum of dy over n, Ho, Wo.
void conv2d_backward_bias(const ConvGeom& g, const float* dy, float* db);

// Sets the im2col chunk budget in floats (default 1<<21; the backward passes use 1/8 of it) and
// returns the old one. Not thread-safe: for tests, which use a tiny budget to exercise the chunked
// paths.
int64_t conv2d_set_col_budget(int64_t floats);

// The stride-2 row copies of im2col / col2im (dst[i] = src[2i]; dst[2i] += src[i], i < n), one
// variant per ISA level (ref first; kernels/variant.h): the drivers run the best one active_isa()
// allows (the GEMM they call has its own table, kernels/gemm.h), tests compare each with the ref
// one exactly.
using ConvRowFn = void (*)(const float* src, float* dst, int64_t n);
// Direct backward-data rows for few input channels and stride 2 along the width (the RGB stem):
// dx rows [ih0, ih1) of one (image, group), dx [Cg,h,w] overwritten, from dy [Kg,Ho,Wo] and the
// weights packed as wp[((ki*kw + kj)*Kg + k)*Cg + c]. Dilation 1, Cg <= kConvDgradMaxC,
// kw <= kConvDgradMaxKw.
using ConvDgradRowsFn = void (*)(const ConvGeom& g, const float* dy, const float* wp, int64_t ih0,
                                 int64_t ih1, float* dx);
constexpr int64_t kConvDgradMaxC = 4;
constexpr int64_t kConvDgradMaxKw = 33;
// One register tile of a direct 3x3, stride-1 convolution on a zero-padded input: for i < 6*MP,
// j < 16*NP, c[i*ldc + j] (+)= the sum over channels ch < nch, then taps t = 3*ki + kj < 9, of
// a[i*a_rs + ch*a_cs + t'] * b[ch*b_cs + ki*b_rs + kj + (j/16)*b_next + j%16], with t' = t (FLIP:
// 8 - t), summed from zero in that order with FMA, then added to C when accumulate.
using ConvTile3x3Fn = void (*)(int64_t nch, const float* a, int64_t a_rs, int64_t a_cs,
                               const float* b, int64_t b_cs, int64_t b_rs, int64_t b_next, float* c,
                               int64_t ldc, bool accumulate);
// One backward-weight tile of the same convolution: for i < 3*NCH, j < 16*NP,
// c[i*ldc + (j/16)*c_next + j%16] (+)= the
// sum over rows r < nrows, then columns ow < wo, of a[(i/3)*a_cs + r*lda + ow + i%3] *
// b[(r*wo + ow)*16 + (j/16)*b_next + j%16] (a: NCH channels of the padded input at one row tap, b:
// dY^T in 16-column panels), from zero in that order with FMA, then added to C when accumulate.
using ConvWgradTile3x3Fn = void (*)(int64_t nrows, int64_t wo, const float* a, int64_t a_cs,
                                    int64_t lda, const float* b, int64_t b_next, float* c,
                                    int64_t ldc, int64_t c_next, bool accumulate);
// The backward-weight tiles' 32-column accumulator block into dW: acc[((ki*C + c)*3 + kj)*32 + k]
// to dw[k*ldw + c*9 + ki*3 + kj] for k < nk <= 32 (acc readable for all 32 columns).
using ConvWgradStoreFn = void (*)(const float* acc, int64_t c, int64_t nk, float* dw, int64_t ldw);
// One forward register tile of a conv whose input rows are split into column phases (stride s
// along the width: phase ph of a padded row holds its columns s*j + ph): for i < mr <= 6*MP and
// j < nr <= 32, c[i*ldc + j] = the sum over ki < kh, kj < kw, ch < nc (in that order, from zero,
// with FMA) of ap[((ki*kw + kj)*nc + ch)*6*MP + i] * b[ki*b_rs + ch*cs + koff[kj] + j], then
// + bias[i] (if bias). For column tap kj: koff = ((kj*dw) % s)*ldp + (kj*dw) / s (its phase row and
// column offset). Reads all 32 columns of b; writes only rows < mr and columns < nr.
struct ConvPhaseGeom {
  int64_t kh, kw, nc, b_rs, cs;
  const int64_t* koff;  // [kw]
};
using ConvFwdPhaseTileFn = void (*)(const ConvPhaseGeom& pg, const float* ap, const float* b,
                                    const float* bias, int64_t mr, int64_t nr, float* c,
                                    int64_t ldc);
struct ConvRowVariant {
  Isa isa;
  const char* name;  // "conv_rows__avx512"
  ConvRowFn gather_stride2;
  ConvRowFn scatter_add_stride2;
  ConvDgradRowsFn dgrad_rows_w2 = nullptr;  // nullptr: GEMM + col2im
  // [FLIP][MP-1][NP-1]; nullptr: the 3x3 convs of narrow rows lower to GEMM (kernels/conv.cpp).
  ConvTile3x3Fn tile3x3[2][2][2] = {};
  ConvWgradTile3x3Fn wgrad3x3[2][2] = {};  // [NCH/2 - 1][NP-1]
  ConvWgradStoreFn wgrad3x3_store = nullptr;
  ConvFwdPhaseTileFn fwd_phase[2] = {};  // [MP-1]; nullptr: the gathered band + GEMM
};
std::span<const ConvRowVariant> conv_row_variants();
void gather_stride2__ref(const float* src, float* dst, int64_t n);
void scatter_add_stride2__ref(const float* src, float* dst, int64_t n);
void gather_stride2__avx2(const float* src, float* dst, int64_t n);
void scatter_add_stride2__avx2(const float* src, float* dst, int64_t n);
// The same with 16 lanes and masked row ends.
void gather_stride2__avx512(const float* src, float* dst, int64_t n);
void scatter_add_stride2__avx512(const float* src, float* dst, int64_t n);
template <int MP, int NP, bool FLIP>
void conv3x3_tile__avx512(int64_t nch, const float* a, int64_t a_rs, int64_t a_cs, const float* b,
                          int64_t b_cs, int64_t b_rs, int64_t b_next, float* c, int64_t ldc,
                          bool accumulate);
template <int NCH, int NP>
void conv3x3_wgrad_tile__avx512(int64_t nrows, int64_t wo, const float* a, int64_t a_cs,
                                int64_t lda, const float* b, int64_t b_next, float* c, int64_t ldc,
                                int64_t c_next, bool accumulate);
template <int MP>
void conv_fwd_phase_tile__avx512(const ConvPhaseGeom& pg, const float* ap, const float* b,
                                 const float* bias, int64_t mr, int64_t nr, float* c, int64_t ldc);
void conv3x3_wgrad_store__avx512(const float* acc, int64_t c, int64_t nk, float* dw, int64_t ldw);
void conv2d_dgrad_rows_w2__avx512(const ConvGeom& g, const float* dy, const float* wp, int64_t ih0,
                                  int64_t ih1, float* dx);

// Direct seven-loop references (double accumulation).
void conv2d_forward__ref(const ConvGeom& g, const float* x, const float* w, const float* bias,
                         float* y);
void conv2d_backward_input__ref(const ConvGeom& g, const float* dy, const float* w, float* dx);
void conv2d_backward_weight__ref(const ConvGeom& g, const float* x, const float* dy, float* dw);
void conv2d_backward_bias__ref(const ConvGeom& g, const float* dy, float* db);

}  // namespace bfcn
