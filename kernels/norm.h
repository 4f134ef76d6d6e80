// Batch-norm kernels over NCHW (raw pointers). Per-channel statistics and gradient sums are
// accumulated in double, one OpenMP task per channel, so they are exact-order deterministic;
// elementwise passes run one task per (n, c) plane.
#pragma once

#include <cstdint>

namespace bfcn {

// mean[c] and biased var[c] of x [n,c,hw] over n*hw (two passes, double).
void bn_channel_stats(const float* x, int64_t n, int64_t c, int64_t hw, double* mean, double* var);
// y = x*scale[c] + shift[c] (shift may be null: 0).
void bn_apply(const float* x, const float* scale, const float* shift, float* y, int64_t n,
              int64_t c, int64_t hw);
// sum_dy[c] = Σ dy and sum_dy_xhat[c] = Σ dy*(x-mean[c])*invstd[c].
void bn_grad_sums(const float* dy, const float* x, const float* mean, const float* invstd,
                  int64_t n, int64_t c, int64_t hw, double* sum_dy, double* sum_dy_xhat);
// Training-mode input gradient:
//   dx = gamma*invstd * (dy - sum_dy/M - xhat*sum_dy_xhat/M), M = n*hw; gamma may be null (1).
void bn_backward_input_train(const float* dy, const float* x, const float* mean,
                             const float* invstd, const float* gamma, const double* sum_dy,
                             const double* sum_dy_xhat, int64_t n, int64_t c, int64_t hw,
                             float* dx);

}  // namespace bfcn
