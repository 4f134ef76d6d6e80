// Elementwise f32 kernels over raw pointers (OpenMP over large arrays). No Tensor, no exceptions.
#pragma once

#include <cstdint>

namespace bfcn {

void add_inplace_f32(float* y, const float* x, int64_t n);    // y += x
void axpy_f32(float* y, float a, const float* x, int64_t n);  // y += a*x
void scale_inplace_f32(float* y, float a, int64_t n);         // y *= a

}  // namespace bfcn
