// The stem convolution in 8-bit integers (the runtime's opt-in int8 stem, docs/runtime.md): the
// image as unsigned bytes, the weights per output channel as 15-bit integers split into two signed
// bytes (hi * 128 + lo), and VPDPBUSD sums four byte products per 32-bit lane, the high bytes'
// pass then, after a shift by 7, the low bytes' (or, faster and coarser, 8-bit weights in one
// pass). Each output is
//   v = (float(acc - corr[o]) - corr_frac[o]) * scale[o] + bias[o]
// (corr + corr_frac = the zero points' share, scale = the weight step) and goes through the same
// quantizing epilogue as the FP32 stem. The integer sums are exact, so every variant gives the
// same codes.
//
// What differs from the FP32 stem is rounding, and little of it:
// - An image of 8-bit levels (any image decoded from a file) is taken on its own levels, q = 255 x,
//   with the zero point 255 mean, not rounded: exact. Other images are quantized over their range.
// - The padding bytes are the zero point rounded; each window over the border gets the difference
//   back as an integer fix per (row range, column range) of its taps inside the image.
// - The weights round to 15 bits: the outputs are within ~1e-4 of the FP32 stem's, relative.
//   With 8-bit weights, ~1e-2.
//
// Layout: the quantized image is planar [C][HP][WP] with the padding filled with each channel's
// rounded zero point; for an output pixel, kernel row ky of channel c is K consecutive bytes
// (stride `stride` between pixels), read as ceil(K/4) 32-bit groups whose bytes past K have zero
// weight.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/conv_stem.h"

namespace bfcn {

// The image's 8-bit form: x_n = (x - mean[c]) * inv_std[c] ~= (q - zero[c]) * step[c], zero in
// [0, 255] (not rounded).
struct StemInputQuant {
  float step[4] = {1, 1, 1, 1};
  float zero[4] = {0, 0, 0, 0};
};

// Per channel. An image of 8-bit levels (every x in [0, 1] a multiple of 1/255, as decoded from a
// PNG, JPEG or video frame; 0 <= mean <= 1, inv_std > 0): its own levels, q = 255 x, so the
// quantization is exact (step = inv_std / 255, zero = 255 mean). Otherwise the range of x_n over
// the image (NaN ignored), widened to contain 0, in 255 steps. x [C][H][W] planar (C <= 4);
// mean/inv_std may be null (0 / 1).
StemInputQuant stem_input_quant(const float* x, int c, int64_t pixels, const float* mean,
                                const float* inv_std);

// The stem on the planar image x [C][H][W] normalized as x_n = (x - mean[c]) * inv_std[c]
// (mean/inv_std may be null); w [OC][K][K][C] and the epilogue as in conv_stem_forward (e.bias
// required; e.out_f32, e.out_q or e.out_packed). weight_bits: 15 (two passes) or 8 (one pass, twice
// as fast, ~1e-2 off). Dilation 1 and C <= 4 only (checked).
void conv_stem_int8_forward(const ConvStemShape& s, const float* x_planar, const float* mean,
                            const float* inv_std, const float* w, const ConvStemEpilogue& e,
                            int weight_bits = 15);

// Microkernel: per pass, the sum over rows r < nrows and groups g < groups of the four products
// a[i*lda + row_off[r] + 4*g + b] (unsigned) * bp[p*ps + (((pass*nrows + r)*groups + g)*16 + j)*4
// + b] (signed); c[i*ldc + 16*p + j] = the passes' sums s_0 * 128^(passes-1) + ... + s_last, for
// pixels i < 6, panels p < NP, channels j < 16; ps = passes*nrows*groups*64 bytes. Always writes
// the whole 6 x 16*NP tile.
using ConvStemInt8Ukernel = void (*)(const uint8_t* a, int64_t lda, const int64_t* row_off,
                                     int nrows, int groups, int passes, const int8_t* bp,
                                     int32_t* c, int64_t ldc);
void conv_stem_int8_ukernel_6x16__ref(const uint8_t* a, int64_t lda, const int64_t* row_off,
                                      int nrows, int groups, int passes, const int8_t* bp,
                                      int32_t* c, int64_t ldc);
template <int NP>
void conv_stem_int8_ukernel__avx512vnni(const uint8_t* a, int64_t lda, const int64_t* row_off,
                                        int nrows, int groups, int passes, const int8_t* bp,
                                        int32_t* c, int64_t ldc);

// Epilogue over acc [m][ldc] -> q [m][oc]: v = (float(acc - corr) - corr_frac) * scale + bias;
// relu: max(v, 0); v = v*mul (if mul); v = v + add (if add); q = quantize_level(v, 2^bits - 1).
// No FMA. The zero points' share corr + corr_frac (|corr_frac| <= 1/2) is taken off in integers
// first: acc and corr are both up to ~2^29 with 15-bit weights, where a float has no units left.
// That is non-decreasing in acc when every mul >= 0 (scale > 0), so q is then the number of
// thresholds acc reaches: with `thresholds` set ([2^bits - 1][oc], stem_int8_thresholds) the
// epilogue counts compares instead of running the float operations; the codes are the same.
struct StemInt8Dequant {
  const int32_t* corr;
  const float* corr_frac;
  const float* scale;
  const float* bias;
  bool relu;
  const float* mul;
  const float* add;
  int bits;
  const int32_t* thresholds = nullptr;
};
// The float epilogue's code for one sum (the definition every variant matches).
uint8_t stem_int8_code(int32_t acc, int o, const StemInt8Dequant& d);
// t[(k-1)*oc + o] = the least acc whose code is >= k (INT32_MIN: all, INT32_MAX: none), for
// k = 1..2^bits-1, exact for sums in [-2^30, 2^30] (a stem's are below 2^24); false (t untouched)
// when a mul < 0 makes the code non-monotone.
bool stem_int8_thresholds(const StemInt8Dequant& d, int oc, std::vector<int32_t>& t);
using ConvStemInt8EpilogueFn = void (*)(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                        const StemInt8Dequant& d, uint8_t* q);
void conv_stem_int8_epilogue__ref(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                  const StemInt8Dequant& d, uint8_t* q);
void conv_stem_int8_epilogue__avx512vnni(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                         const StemInt8Dequant& d, uint8_t* q);
// The float form (e.out_f32): y [m][oc] = v after the bias and the ReLU (mul/add/bits unused).
using ConvStemInt8DequantFn = void (*)(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                       const StemInt8Dequant& d, float* y);
void conv_stem_int8_dequant__ref(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                 const StemInt8Dequant& d, float* y);
void conv_stem_int8_dequant__avx512vnni(const int32_t* acc, int64_t m, int oc, int64_t ldc,
                                        const StemInt8Dequant& d, float* y);

// The image side. range: *mn / *mx = the least / greatest of x[0..n), *off_grid = the greatest
// |255 x - nearbyint(255 x)| (NaN ignored; +inf / -inf / 0 when none). quantize_row: q[i] =
// clamp(nearbyint((x[i] - mu) * inv * rstep + zf), 0, 255) with rstep = 1 / step, zf = zero
// (NaN -> 0), the operation conv_stem_int8_forward applies.
using StemInt8RangeFn = void (*)(const float* x, int64_t n, float* mn, float* mx, float* off_grid);
using StemInt8QuantizeRowFn = void (*)(const float* x, int64_t n, float mu, float inv, float rstep,
                                       float zf, uint8_t* q);
void stem_int8_range__ref(const float* x, int64_t n, float* mn, float* mx, float* off_grid);
void stem_int8_range__avx512vnni(const float* x, int64_t n, float* mn, float* mx, float* off_grid);
void stem_int8_quantize_row__ref(const float* x, int64_t n, float mu, float inv, float rstep,
                                 float zf, uint8_t* q);
void stem_int8_quantize_row__avx512vnni(const float* x, int64_t n, float mu, float inv, float rstep,
                                        float zf, uint8_t* q);

// The int8 stem variants (ref first; kernels/variant.h).
struct ConvStemInt8Variant {
  Isa isa;
  const char* name;                  // "conv_stem_int8__avx512vnni"
  ConvStemInt8Ukernel by_panels[4];  // n consecutive 16-channel panels, n <= max_panels
  int max_panels;
  ConvStemInt8EpilogueFn epilogue;
  ConvStemInt8DequantFn dequant;
  StemInt8RangeFn range;
  StemInt8QuantizeRowFn quantize_row;
};
std::span<const ConvStemInt8Variant> conv_stem_int8_variants();
// best_variant(conv_stem_int8_variants()) unless a test chose another (conv_stem_int8_use_variant:
// process-wide, not thread-safe, nullptr = back to the dispatched one; returns the previous one).
const ConvStemInt8Variant& conv_stem_int8_active();
const ConvStemInt8Variant* conv_stem_int8_use_variant(const ConvStemInt8Variant* v);

}  // namespace bfcn
