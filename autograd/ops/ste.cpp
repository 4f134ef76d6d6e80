// Straight-through estimators: round_ste and sign_ste, the two primitives DoReFa quantizers use.
// Forward is the true (piecewise-constant) function; backward is the identity. See the Note below.
#include "autograd/ops.h"
#include "autograd/ops/op_util.h"
#include "kernels/elementwise.h"

namespace bfcn {

using ops_detail::empty_like;
using ops_detail::f32_value;

// Note [Straight-through estimators]
// round() and sign() have zero gradient almost everywhere, so a network whose weights pass through
// them could not learn. DoReFa-Net (see /work/shared/research/paper.md) replaces their backward by
// the identity: forward q = round(x) (or sign(x)), backward dL/dx = dL/dq. The clipping that makes
// this sensible (x in [0,1] for activations, tanh-normalised weights) is NOT part of these ops: the
// quantizers compose clamp (inclusive mask), tanh, abs, max_all, ... around them, so the surrogate
// gradient of a whole quantizer is the product of those exact gradients and an identity here.
// Conventions fixed here (and pinned by tests/autograd): round is round-half-to-even
// (std::nearbyint: round(0.5)=0, round(1.5)=2, round(-0.5)=-0), matching torch.round, and
// sign(0)=+1 so binary weights are never 0. Because these ops are not differentiable in the usual
// sense they are tested against this declared surrogate, not by finite differences.

namespace {
// dy belongs to this node alone and is freed after its closure runs, so it is handed on as is.
std::vector<Tensor> identity_backward(const Tensor& dy, const GradMask&) { return {dy}; }
}  // namespace

Var round_ste(const Var& x) {
  const Tensor& xv = f32_value(x, "round_ste", "x");
  Tensor y = empty_like(xv);
  round_half_even_f32(xv.f32(), y.f32(), y.numel());
  return make_op("round_ste", y, {x}, identity_backward);
}

Var sign_ste(const Var& x) {
  const Tensor& xv = f32_value(x, "sign_ste", "x");
  Tensor y = empty_like(xv);
  sign_f32(xv.f32(), y.f32(), y.numel());
  return make_op("sign_ste", y, {x}, identity_backward);
}

}  // namespace bfcn
