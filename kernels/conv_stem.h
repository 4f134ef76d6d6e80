// FP32 convolution for few input channels (the RGB 7x7/2 stem), NHWC, raw pointers. Direct: on a
// zero-padded copy of the image a kernel row of taps is one contiguous K*C run, so a 6x16
// GEMM-style microkernel reads its A rows in place (no im2col) against weights packed once per
// call; the epilogue adds the bias, optional ReLU, and either stores floats or quantizes to k-bit
// codes (the next quantizer's affine fused), so the full-resolution float map never exists. OpenMP
// over output rows.
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

struct ConvStemShape {
  int in_h = 0, in_w = 0, in_c = 3, out_c = 64;
  int kernel = 7, stride = 2, pad = 3, dilation = 1;
  int out_h() const { return (in_h + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1; }
  int out_w() const { return (in_w + 2 * pad - dilation * (kernel - 1) - 1) / stride + 1; }
};

// A max pool fused after the conv (PyTorch semantics: windows of kernel x kernel at stride, the
// padding never the maximum). out_h/out_w: the pooled size.
struct StemMaxPool {
  int kernel = 0, stride = 1, pad = 0, out_h = 0, out_w = 0;
};

// v = conv + bias[o], relu -> max(v, 0). Exactly one output:
//   out_f32 [OH*OW][OC] = v, or with pool.kernel > 0 the max pool of v, [PH*PW][OC]; or
//   out_q   [OH*OW][OC] = nearbyint(clip(v*mul[o] + add[o], 0, 1) * (2^bits-1)) (mul/add may be
//   null for 1/0; bits 1..8); or
//   out_packed [PH*PW][bits][cw(OC)] = those codes max-pooled (pool.kernel > 0) and bit-packed
//   (kernels/bitpack.h layout; bits <= 8), from a few code rows at a time: the full-size code
//   map is never stored.
struct ConvStemEpilogue {
  const float* bias = nullptr;  // [OC], required
  bool relu = false;
  float* out_f32 = nullptr;
  StemMaxPool pool;  // with out_f32 or out_packed
  uint8_t* out_q = nullptr;
  uint64_t* out_packed = nullptr;
  const float* mul = nullptr;
  const float* add = nullptr;
  int bits = 0;
};

// The fused pool's driver, shared by the stems: pooled [PH*PW][OC] from conv rows that
// row(oy, dst) writes on demand ([OW][OC] floats; it may write up to row_pixels >= OW pixels).
// With a bias, pooled = relu(max + bias) per channel: the conv's bias and ReLU after the pool,
// exact because rounding v + b and the ReLU are non-decreasing (a NaN tap is skipped). OpenMP
// over bands of pooled rows; a band keeps its last `kernel` conv rows, so only the rows two
// bands share are computed twice. row is called concurrently from the team's threads.
void stem_pool_rows(int oh, int ow, int oc, const StemMaxPool& pool, float* pooled,
                    const std::function<void(int oy, float* dst)>& row, int row_pixels,
                    const float* bias = nullptr, bool relu = false);
// The same on codes: packed [PH*PW][bits][cw(OC)] (maxpool_pack_q's output) from code rows
// row(oy, dst) writes ([OW][OC] bytes < 2^bits).
void stem_pool_pack_rows(int oh, int ow, int oc, const StemMaxPool& pool, int bits,
                         uint64_t* packed, const std::function<void(int oy, uint8_t* dst)>& row);

// x [H][W][C] float, w [OC][K][K][C]. Dilation 1 runs the direct kernel below on a zero-padded
// copy of x; other dilations use im2col + sgemm. Every output is the bias plus one sum from zero
// in (ky, kx, c) order, the same as the im2col + sgemm path.
void conv_stem_forward(const ConvStemShape& s, const float* x, const float* w,
                       const ConvStemEpilogue& e);

// Direct-conv microkernel: c[i*ldc + j] = sum_{r < rows, p < run} A_i[r*rs + p] * bp[(r*run + p)*16
// + j] for i < 6, j < 16, with A_i = a + i*lda (output pixel i's first kernel row in the padded
// image; lda = stride*C, rs = padded row length, run = K*C). bp is one 32-byte aligned 16-column
// panel (kernels/gemm.h layout). Always writes the whole 6x16 tile.
using ConvStemUkernel = void (*)(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                 const float* bp, float* c, int64_t ldc);
void conv_stem_ukernel_6x16__ref(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                 const float* bp, float* c, int64_t ldc);
void conv_stem_ukernel_6x16__avx2(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                  const float* bp, float* c, int64_t ldc);
// AVX-512 FMA: 6 pixels x 16*NP channels (NP 1..4, instantiated in kernels/conv_stem__avx512.cpp),
// reading NP consecutive 16-column panels of bp (panel stride rows*run*16 floats) and writing
// c[i*ldc + j] for j < 16*NP.
template <int NP>
void conv_stem_ukernel__avx512(const float* a, int64_t lda, int64_t rs, int rows, int run,
                               const float* bp, float* c, int64_t ldc);

// The direct-conv microkernel with the quantizing epilogue (ConvStemQuantizeFn) fused: the 6 x
// 16*NP sums go from registers to codes q[i*ldq + j] for i < npix, j < valid, never stored as
// floats. bias, mul, add (mul, add may be null) at the tile's first channel.
struct StemQuantTile {
  const float* bias = nullptr;
  const float* mul = nullptr;
  const float* add = nullptr;
  bool relu = false;
  int bits = 0, npix = 0, valid = 0;
};
using ConvStemQuantUkernel = void (*)(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                      const float* bp, const StemQuantTile& t, uint8_t* q,
                                      int64_t ldq);
template <int NP>
void conv_stem_ukernel_q__avx512(const float* a, int64_t lda, int64_t rs, int rows, int run,
                                 const float* bp, const StemQuantTile& t, uint8_t* q, int64_t ldq);

// The quantizing epilogue over acc [m][oc] (row stride oc) -> q [m][oc]:
// v = acc + bias; relu: v = max(v, 0); v = v*mul (if mul); v = v + add (if add);
// q = quantize_level(v, 2^bits - 1) — the float operations of quantize_pack_act, no FMA.
using ConvStemQuantizeFn = void (*)(const float* acc, int64_t m, int oc, const float* bias,
                                    bool relu, const float* mul, const float* add, int bits,
                                    uint8_t* q);
void conv_stem_quantize__ref(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                             const float* mul, const float* add, int bits, uint8_t* q);
void conv_stem_quantize__avx2(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                              const float* mul, const float* add, int bits, uint8_t* q);
void conv_stem_quantize__avx512(const float* acc, int64_t m, int oc, const float* bias, bool relu,
                                const float* mul, const float* add, int bits, uint8_t* q);

// One pooled row of the fused max pool: out [pw][oc] = the max over the window of rows[0..nrows)
// (the conv rows of the window inside the map, each [ow][oc] floats) and of columns px*stride -
// pad + kx (kx < kernel) inside [0, ow), NaN taps skipped; then, with a bias, out = out +
// bias[o] and with relu (out > 0 ? out : 0).
using StemPoolRowFn = void (*)(const float* const* rows, int nrows, int ow, int oc, int kernel,
                               int stride, int pad, int pw, const float* bias, bool relu,
                               float* out);
void stem_pool_row__ref(const float* const* rows, int nrows, int ow, int oc, int kernel, int stride,
                        int pad, int pw, const float* bias, bool relu, float* out);
void stem_pool_row__avx512(const float* const* rows, int nrows, int ow, int oc, int kernel,
                           int stride, int pad, int pw, const float* bias, bool relu, float* out);

// The stem variants, one per ISA level (ref first; kernels/variant.h): conv_stem_forward runs the
// best one active_isa() allows, tests compare each with the ref one.
struct ConvStemVariant {
  Isa isa;
  const char* name;  // "conv_stem__avx512"
  // by_panels[n-1] covers n consecutive 16-column panels (n <= max_panels); the driver takes the
  // widest that fits.
  ConvStemUkernel by_panels[4];
  int max_panels;
  ConvStemQuantizeFn quantize;
  StemPoolRowFn pool_row;  // the fused pool (stem_pool_rows; the int8 stem's too)
  // Optional: by_panels with quantize fused (codes out without a float row), same widths.
  ConvStemQuantUkernel by_panels_q[4] = {};
};
std::span<const ConvStemVariant> conv_stem_variants();
// The variant conv_stem_forward runs: best_variant(conv_stem_variants()), unless a test chose
// another with conv_stem_use_variant.
const ConvStemVariant& conv_stem_active();
// Makes conv_stem_forward run v (nullptr: back to the dispatched one) and returns the previous
// choice. Process-wide and not thread-safe: for tests, which must check isa_supported(v.isa) first.
const ConvStemVariant* conv_stem_use_variant(const ConvStemVariant* v);

}  // namespace bfcn
