// 2-D pooling kernels over NCHW planes (raw pointers, OpenMP over the N*C planes).
// Geometry follows PyTorch exactly: pooling_output_size() below, windows clipped to the padded
// input, max ignores padding, avg divides by the padded (count_include_pad) or valid window size.
#pragma once

#include <cstdint>

namespace bfcn {

struct PoolGeom {
  int64_t planes = 0;  // N*C
  int64_t h = 0, w = 0, out_h = 0, out_w = 0;
  int kh = 2, kw = 2, sh = 2, sw = 2, ph = 0, pw = 0;
  bool count_include_pad = true;
};

// PyTorch's pooling_output_shape: floor/ceil((in + 2p - k)/s) + 1, and in ceil mode the last window
// must start inside the input or the left padding.
int64_t pooling_output_size(int64_t in, int k, int s, int p, bool ceil_mode);

// y [planes,out_h,out_w]; argmax [planes,out_h*out_w] holds the flat index (h*w) of the first max.
void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const PoolGeom& g);
// dx [planes,h,w] is overwritten.
void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const PoolGeom& g);

void avg_pool2d_forward(const float* x, float* y, const PoolGeom& g);
void avg_pool2d_backward(const float* dy, float* dx, const PoolGeom& g);  // dx overwritten

// Mean of each plane: x [planes, hw] → y [planes].
void plane_mean_forward(const float* x, float* y, int64_t planes, int64_t hw);
void plane_mean_backward(const float* dy, float* dx, int64_t planes, int64_t hw);

}  // namespace bfcn
