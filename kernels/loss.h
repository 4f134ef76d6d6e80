// Softmax cross-entropy kernels over NCHW logits x [n,c,hw] and labels [n,hw] (i32 or u8).
// Work is split into fixed pixel blocks (one OpenMP task each) whose double partial sums are
// combined in block order: deterministic for any thread count. Labels must be pre-validated
// (each in [0,c) or == ignore_index); class_w may be null (all 1).
#pragma once

#include <cstdint>

namespace bfcn {

struct XentSums {
  double loss = 0.0;    // Σ w[t]*(lse - x_t) over non-ignored pixels
  double weight = 0.0;  // Σ w[t] over non-ignored pixels
};

// Also writes lse [n,hw] (log-sum-exp per pixel) for the backward pass.
XentSums softmax_xent_forward(const float* x, const int32_t* labels, const float* class_w,
                              int64_t n, int64_t c, int64_t hw, int ignore_index, float* lse);
XentSums softmax_xent_forward(const float* x, const uint8_t* labels, const float* class_w,
                              int64_t n, int64_t c, int64_t hw, int ignore_index, float* lse);

// dx = scale * w[t] * (softmax(x) - onehot(t)) per pixel, 0 on ignored pixels (dx overwritten).
void softmax_xent_backward(const float* x, const int32_t* labels, const float* class_w,
                           const float* lse, int64_t n, int64_t c, int64_t hw, int ignore_index,
                           float scale, float* dx);
void softmax_xent_backward(const float* x, const uint8_t* labels, const float* class_w,
                           const float* lse, int64_t n, int64_t c, int64_t hw, int ignore_index,
                           float scale, float* dx);

}  // namespace bfcn
