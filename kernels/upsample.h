// Bilinear resize kernels for NCHW planes, with PyTorch's source-index formulas
// (align_corners true: src = dst*(in-1)/(out-1); false: src = max(0, (dst+0.5)*in/out - 0.5)).
// Any output size, up or down. OpenMP over planes; backward scatters within one plane only.
#pragma once

#include <cstdint>

namespace bfcn {

void upsample_bilinear_forward(const float* x, float* y, int64_t planes, int64_t h, int64_t w,
                               int64_t out_h, int64_t out_w, bool align_corners);
// dx [planes,h,w] is overwritten.
void upsample_bilinear_backward(const float* dy, float* dx, int64_t planes, int64_t h, int64_t w,
                                int64_t out_h, int64_t out_w, bool align_corners);

}  // namespace bfcn
