// Elementwise f32 kernels over raw pointers (OpenMP over large arrays). No Tensor, no exceptions.
// Reductions split the array into fixed-size blocks summed in double and combined in block order,
// so their result does not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>

#include "kernels/cpu_features.h"

namespace bfcn {

void add_inplace_f32(float* y, const float* x, int64_t n);    // y += x
void axpy_f32(float* y, float a, const float* x, int64_t n);  // y += a*x
void scale_inplace_f32(float* y, float a, int64_t n);         // y *= a

// ---- binary ops: y = a (op) b, where b has n elements or, when b_scalar, one ----
enum class BinaryOp : uint8_t { add, sub, mul, div };
void binary_f32(BinaryOp op, const float* a, const float* b, bool b_scalar, float* y, int64_t n);

void scale_f32(const float* x, float s, float* y, int64_t n);       // y = s*x
void add_scalar_f32(const float* x, float c, float* y, int64_t n);  // y = x + c
void neg_f32(const float* x, float* y, int64_t n);                  // y = -x
void mul_f32(const float* a, const float* b, float* y, int64_t n);  // y = a*b
// y = -dy*a/b^2 (the gradient of a/b w.r.t. b); b_scalar as in binary_f32.
void div_grad_b_f32(const float* dy, const float* a, const float* b, bool b_scalar, float* y,
                    int64_t n);

// ---- unary ops and their backward ----
void relu_f32(const float* x, float* y, int64_t n);
void relu_backward_f32(const float* dy, const float* y, float* dx, int64_t n);  // dy*(y>0)
void clamp_f32(const float* x, float lo, float hi, float* y, int64_t n);
// dx = dy where lo <= x <= hi (inclusive), else 0.
void clamp_backward_f32(const float* dy, const float* x, float lo, float hi, float* dx, int64_t n);
void tanh_f32(const float* x, float* y, int64_t n);
void tanh_backward_f32(const float* dy, const float* y, float* dx, int64_t n);  // dy*(1-y^2)
void abs_f32(const float* x, float* y, int64_t n);
void abs_backward_f32(const float* dy, const float* x, float* dx, int64_t n);  // dy*sign(x), 0 at 0
void round_half_even_f32(const float* x, float* y, int64_t n);                 // std::nearbyint
void sign_f32(const float* x, float* y, int64_t n);                            // +1 for x >= 0

// ---- fused DoReFa fake-quantization (one pass instead of clamp, scale, round, divide) ----
// y = round_half_even(c*levels)/levels with c = clamp(x,0,1) when clip, else c = x: the same float
// operations in the same order as the composed ops, so the result is bit-identical. When clip and
// mask is not null, mask[i] = 1 if 0 <= x[i] <= 1 else 0 (the clamp's gradient mask; NaN -> 0).
void quantize_levels_f32(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                         int64_t n);
void quantize_levels_f32__ref(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                              int64_t n);
void quantize_levels_f32__avx2(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                               int64_t n);
// dx = mask ? dy : 0 (mask bytes 0 or 1; dx may be dy).
void mask_select_f32(const float* dy, const uint8_t* mask, float* dx, int64_t n);
void mask_select_f32__ref(const float* dy, const uint8_t* mask, float* dx, int64_t n);
void mask_select_f32__avx2(const float* dy, const uint8_t* mask, float* dx, int64_t n);
// The single-threaded bodies quantize_levels_f32 and mask_select_f32 run on each block, one variant
// per ISA level (ref first; kernels/variant.h): dispatch takes the best one active_isa() allows,
// tests compare each with the ref one bit for bit.
using QuantizeLevelsFn = void (*)(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                                  int64_t n);
using MaskSelectFn = void (*)(const float* dy, const uint8_t* mask, float* dx, int64_t n);
struct ElementwiseVariant {
  Isa isa;
  const char* name;  // "elementwise__avx2"
  QuantizeLevelsFn quantize_levels;
  MaskSelectFn mask_select;
};
std::span<const ElementwiseVariant> elementwise_variants();
// y [K,per] = e[c] * sign(w [K,per]) with sign(0) = +1 (1-bit DoReFa weights, E per row).
void scaled_sign_f32(const float* w, const float* e, int64_t rows, int64_t per, float* y);

// ---- deterministic reductions (double accumulation) ----
double sum_f64(const float* x, int64_t n);
double dot_f64(const float* a, const float* b, int64_t n);
// Index of the first maximal element (n >= 1). NaN is treated as smaller than everything.
int64_t argmax_first_f32(const float* x, int64_t n);

}  // namespace bfcn
