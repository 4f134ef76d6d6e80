// THE op list. Every differentiable op of BFCN is declared here; each lives, forward and backward
// side by side, in autograd/ops/<group>.cpp. Everything else (DoReFa quantizers included) is
// composed from these, so its gradient comes for free.
//
// Adding an op: (1) declare it here; (2) add a raw-pointer kernel pair in kernels/ if it is heavy;
// (3) implement it in autograd/ops/<group>.cpp with make_op(); (4) add a double reference forward
// (tests/autograd/reference_ops.h) and 3-shape cases to tests/autograd/grad_cases_test.cpp.
//
// Shapes: images are NCHW [N,C,H,W]; label maps [N,H,W] (i32 or u8). Binary ops take b with the
// same shape as a, or b with one element (a broadcast scalar; its gradient is the sum).
#pragma once

#include <functional>
#include <optional>
#include <vector>

#include "autograd/var.h"
#include "core/rng.h"

namespace bfcn {

// ---- elementwise ----
Var add(const Var& a, const Var& b);
Var sub(const Var& a, const Var& b);
Var mul(const Var& a, const Var& b);
Var div(const Var& a, const Var& b);  // b must be nonzero
Var scale(const Var& x, float s);     // s*x
Var add_scalar(const Var& x, float c);
Var relu(const Var& x);  // gradient 0 at x == 0 (as PyTorch)
// Gradient passes where lo <= x <= hi (inclusive: DoReFa's 1[0 <= x <= 1] mask).
Var clamp(const Var& x, float lo, float hi);
Var tanh(const Var& x);
Var abs(const Var& x);  // gradient sign(x), 0 at 0

// ---- reductions (to one element, shape [1]) ----
Var sum(const Var& x);
Var mean(const Var& x);
Var max_all(const Var& x);  // gradient to the first maximal element

// ---- shape ----
Var reshape(const Var& x, const Shape& shape);
Var concat_channels(const std::vector<Var>& xs);  // NCHW along C

// ---- neural network ----
struct Conv2dArgs {
  int stride_h = 1, stride_w = 1;
  int pad_h = 0, pad_w = 0;
  int dilation_h = 1, dilation_w = 1;
  int groups = 1;
  static Conv2dArgs square(int stride, int pad, int dilation = 1, int groups = 1) {
    return {stride, stride, pad, pad, dilation, dilation, groups};
  }
};
// x [N,C,H,W], w [K,C/groups,kh,kw], bias [K] or undefined Var → [N,K,Ho,Wo].
Var conv2d(const Var& x, const Var& w, const Var& bias, const Conv2dArgs& args);

struct Pool2dArgs {
  int kernel_h = 2, kernel_w = 2;
  int stride_h = 2, stride_w = 2;
  int pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // avg pool only (PyTorch's default)
  static Pool2dArgs square(int kernel, int stride, int pad = 0) {
    return {kernel, kernel, stride, stride, pad, pad, false, true};
  }
};
Var max_pool2d(const Var& x, const Pool2dArgs& args);  // gradient to the first max in a window
Var avg_pool2d(const Var& x, const Pool2dArgs& args);
Var global_avg_pool(const Var& x);  // [N,C,H,W] → [N,C,1,1]

// Training: normalise with batch statistics and update running_mean/running_var in place
// (running = (1-momentum)*running + momentum*batch, unbiased variance, as PyTorch).
// Eval: normalise with the running statistics. gamma/beta [C] (either may be undefined).
Var batch_norm2d(const Var& x, const Var& gamma, const Var& beta, Tensor& running_mean,
                 Tensor& running_var, bool training, float momentum = 0.1f, float eps = 1e-5f);
// Synchronised batch norm for data-parallel training: while a sum is set, training-mode
// batch_norm2d takes its statistics over all replicas. `sum` adds n doubles element-wise across
// replicas in place (an MPI allreduce); forward sums (count, sum x, sum x^2) per channel, backward
// (sum dy, sum dy*xhat) for the input gradient (gamma/beta gradients stay per replica: the
// trainer averages them like every other gradient). Every replica must run the same BN layers in
// the same order. Empty (the default): per-replica statistics.
using ReplicaSum = std::function<void(double* data, size_t n)>;
void set_batch_norm_sync(ReplicaSum sum);

// Bilinear resize of [N,C,H,W] to [N,C,out_h,out_w]; align_corners as in PyTorch.
Var upsample_bilinear(const Var& x, int out_h, int out_w, bool align_corners);

// Inverted dropout: in training zeroes with probability p and scales kept values by 1/(1-p).
Var dropout(const Var& x, float p, bool training, Rng& rng);

// Softmax cross-entropy over NCHW logits [N,C,H,W] and labels [N,H,W] (i32 or u8), mean over
// pixels whose label != ignore_index (weighted mean when class_weights [C] is given, as PyTorch).
// Labels outside [0,C) other than ignore_index are an error naming the value.
Var softmax_cross_entropy(const Var& logits, const Tensor& labels, int ignore_index = 255,
                          const Tensor& class_weights = Tensor());

// Distillation loss on NCHW logits against a constant teacher [N,C,H,W] (same shape), temperature
// T > 0: T^2 * mean over the N*H*W pixels of KL(softmax(teacher/T) || softmax(student/T)) (Hinton
// et al.'s scaling, so the gradient size does not shrink with T). dL/dstudent = T*(p_s - p_t)/P.
Var distill_kl(const Var& student, const Tensor& teacher, float temperature);

// ---- straight-through estimators (see Note [Straight-through estimators] in ops/ste.cpp) ----
Var round_ste(const Var& x);  // forward round-half-to-even, backward identity
Var sign_ste(const Var& x);   // forward sign with sign(0) = +1, backward identity
// Fused DoReFa fake-quantizers, one kernel each way, bit-identical to the composed forms (which
// keep 3-4 full-size intermediates alive until backward; these keep the output and, for the
// clipped one, a 1-byte mask). levels n = 2^k - 1, k in 1..8:
//   quantize_levels_ste(x, k) = round(x*n)/n                   backward identity
//   clip_quantize_levels_ste(x, k) = round(clamp(x,0,1)*n)/n   backward dy*1[0 <= x <= 1]
//   scaled_sign_ste(w, e) = e[c]*sign(w[c,...]), e [1] or [w.dim(0)], a constant; backward identity
Var quantize_levels_ste(const Var& x, int k);
Var clip_quantize_levels_ste(const Var& x, int k);
Var scaled_sign_ste(const Var& w, const Tensor& e);
//   scaled_levels_ste(w, a, k) = a[c]*(2*round(clamp((w/a[c]+1)/2, 0, 1)*n)/n - 1), a [1] or
//   [w.dim(0)], a constant > 0: 2^k uniform levels spanning [-a[c], a[c]]; backward
//   dy*1[-a[c] <= w <= a[c]] (the clamp's inclusive mask)
Var scaled_levels_ste(const Var& w, const Tensor& a, int k);
// Learned-clip activation quantizer (PACT's clip with LSQ's step gradient), alpha [1] > 0:
//   y = alpha * round(clamp(x/alpha, 0, 1) * n)/n, n = 2^k - 1 (k 1..8; k = 32: no rounding, so
//   y = clamp(x, 0, alpha) exactly, which is what the finite-difference check differentiates)
//   dL/dx = dy * 1[0 <= x <= alpha]
//   dL/dalpha = sum dy * (1 if x > alpha; q - x/alpha if 0 <= x <= alpha; 0 if x < 0), q the
//   normalised level round(x/alpha*n)/n: the derivative of alpha*round_ste(clamp(x/alpha)).
Var pact_quantize(const Var& x, const Var& alpha, int k);

// ---- non-differentiable helpers ----
// argmax over C of [N,C,H,W] → i32 [N,H,W] (first maximal class on ties).
Tensor argmax_channels(const Tensor& logits);

}  // namespace bfcn
