// Straight-through estimators: round_ste and sign_ste, the two primitives DoReFa quantizers use.
// Forward is the true (piecewise-constant) function; backward is the identity. See the Note below.
#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"
#include "core/error.h"
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

// Note [Fused fake-quantizers]
// quantize_activation = quantize_k(clamp(x,0,1)) composed from clamp, scale, round_ste and div
// makes four nodes whose values all stay alive until backward, and four memory passes each way.
// The fused ops below run the same float operations in one kernel (bit-identical forward; the
// quant tests pin the levels) and apply the composed surrogate gradient directly: the product of
// clamp's inclusive mask, scale's n, round_ste's identity and div's 1/n. That product is taken as
// exactly the mask (dy*n/n can differ from dy in the last bit; DoReFa's STE is the identity).

namespace {
float levels_of(int k, const char* op) {
  BFCN_CHECK(k >= 1 && k <= 8, op, ": bits must be 1..8, got ", k);
  return static_cast<float>((1 << k) - 1);
}
}  // namespace

Var quantize_levels_ste(const Var& x, int k) {
  const float n = levels_of(k, "quantize_levels_ste");
  const Tensor& xv = f32_value(x, "quantize_levels_ste", "x");
  Tensor y = empty_like(xv);
  quantize_levels_f32(xv.f32(), n, false, y.f32(), nullptr, y.numel());
  return make_op("quantize_levels_ste", y, {x}, identity_backward);
}

Var clip_quantize_levels_ste(const Var& x, int k) {
  const float n = levels_of(k, "clip_quantize_levels_ste");
  const Tensor& xv = f32_value(x, "clip_quantize_levels_ste", "x");
  Tensor y = empty_like(xv);
  if (!x.requires_grad() || !grad_enabled()) {
    quantize_levels_f32(xv.f32(), n, true, y.f32(), nullptr, y.numel());
    return make_op("clip_quantize_levels_ste", y, {x}, identity_backward);  // a leaf: no closure
  }
  Tensor mask = Tensor::empty(xv.shape(), DType::u8);
  quantize_levels_f32(xv.f32(), n, true, y.f32(), mask.data<uint8_t>(), y.numel());
  return make_op("clip_quantize_levels_ste", y, {x},
                 [mask](const Tensor& dy, const GradMask&) -> std::vector<Tensor> {
                   Tensor dx = dy;  // in place: see Note [Gradient ownership]
                   mask_select_f32(dy.f32(), mask.data<uint8_t>(), dx.f32(), dx.numel());
                   return {dx};
                 });
}

Var scaled_sign_ste(const Var& w, const Tensor& e) {
  const Tensor& wv = f32_value(w, "scaled_sign_ste", "w");
  BFCN_CHECK(wv.ndim() >= 1 && wv.numel() > 0, "scaled_sign_ste: expected a non-empty weight, got ",
             wv.shape());
  BFCN_CHECK(e.dtype() == DType::f32 && (e.numel() == 1 || e.numel() == wv.dim(0)),
             "scaled_sign_ste: expected an f32 scale of 1 or ", wv.dim(0),
             " (one per output channel) elements, got ", dtype_name(e.dtype()), " ", e.shape());
  Tensor y = empty_like(wv);
  const int64_t rows = e.numel();
  scaled_sign_f32(wv.f32(), e.f32(), rows, wv.numel() / rows, y.f32());
  return make_op("scaled_sign_ste", y, {w}, identity_backward);
}

Var scaled_levels_ste(const Var& w, const Tensor& a, int k) {
  const float n = levels_of(k, "scaled_levels_ste");
  const Tensor& wv = f32_value(w, "scaled_levels_ste", "w");
  BFCN_CHECK(wv.ndim() >= 1 && wv.numel() > 0,
             "scaled_levels_ste: expected a non-empty weight, got ", wv.shape());
  BFCN_CHECK(a.dtype() == DType::f32 && (a.numel() == 1 || a.numel() == wv.dim(0)),
             "scaled_levels_ste: expected an f32 scale of 1 or ", wv.dim(0),
             " (one per output channel) elements, got ", dtype_name(a.dtype()), " ", a.shape());
  const int64_t rows = a.numel(), per = wv.numel() / rows;
  const float* ap = a.f32();
  for (int64_t r = 0; r < rows; ++r)
    BFCN_CHECK(std::isfinite(ap[r]) && ap[r] > 0.0f,
               "scaled_levels_ste: scales must be finite and > 0, got ", ap[r], " at ", r);
  const bool keep_mask = w.requires_grad() && grad_enabled();
  Tensor y = empty_like(wv);
  Tensor mask = keep_mask ? Tensor::empty(wv.shape(), DType::u8) : Tensor();
  const float* wp = wv.f32();
  float* yp = y.f32();
  uint8_t* mp = keep_mask ? mask.data<uint8_t>() : nullptr;
#pragma omp parallel for schedule(static) if (rows * per > (1 << 16))
  for (int64_t r = 0; r < rows; ++r) {
    const float s = ap[r];
    for (int64_t i = r * per; i < (r + 1) * per; ++i) {
      const float u = (wp[i] / s + 1.0f) * 0.5f;
      const float q = std::nearbyint(std::min(1.0f, std::max(0.0f, u)) * n) / n;
      yp[i] = s * (2.0f * q - 1.0f);
      if (mp) mp[i] = u >= 0.0f && u <= 1.0f;
    }
  }
  if (!keep_mask) return make_op("scaled_levels_ste", y, {w}, identity_backward);  // a leaf
  return make_op("scaled_levels_ste", y, {w},
                 [mask](const Tensor& dy, const GradMask&) -> std::vector<Tensor> {
                   Tensor dw = dy;  // in place: see Note [Gradient ownership]
                   mask_select_f32(dy.f32(), mask.data<uint8_t>(), dw.f32(), dw.numel());
                   return {dw};
                 });
}

Var pact_quantize(const Var& x, const Var& alpha, int k) {
  BFCN_CHECK((k >= 1 && k <= 8) || k == 32, "pact_quantize: bits must be 1..8 or 32, got ", k);
  const Tensor& xv = f32_value(x, "pact_quantize", "x");
  const Tensor& av = f32_value(alpha, "pact_quantize", "alpha");
  BFCN_CHECK(av.numel() == 1, "pact_quantize: alpha must have one element, got ", av.shape());
  const float a = av.f32()[0];
  BFCN_CHECK(std::isfinite(a) && a > 0.0f, "pact_quantize: the clip alpha must be > 0, got ", a);
  const float n = k == 32 ? 0.0f : static_cast<float>((1 << k) - 1);
  // x * (1/alpha), not x / alpha: the float steps of the runtime's quantize_pack_act (its mul is
  // the export's 1/alpha), so both engines round the same value the same way.
  const float inv = 1.0f / a;
  const int64_t count = xv.numel();
  Tensor y = empty_like(xv);
  const float* xp = xv.f32();
  float* yp = y.f32();
#pragma omp parallel for schedule(static) if (count > (1 << 16))
  for (int64_t i = 0; i < count; ++i) {
    const float u = std::min(1.0f, std::max(0.0f, xp[i] * inv));
    yp[i] = a * (n > 0.0f ? std::nearbyint(u * n) / n : u);
  }
  Tensor xs = xv;  // kept for backward (shared storage; no graph value is modified in place)
  return make_op("pact_quantize", y, {x, alpha},
                 [xs, a, inv, n](const Tensor& dy, const GradMask& need) -> std::vector<Tensor> {
                   const int64_t m = xs.numel();
                   const float* xq = xs.f32();
                   const float* d = dy.f32();
                   Tensor dx, da;
                   if (need[0]) {
                     dx = Tensor::empty(xs.shape());
                     float* o = dx.f32();
#pragma omp parallel for schedule(static) if (m > (1 << 16))
                     for (int64_t i = 0; i < m; ++i)
                       o[i] = xq[i] >= 0.0f && xq[i] <= a ? d[i] : 0.0f;
                   }
                   if (need[1]) {
                     double s = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : s) if (m > (1 << 16))
                     for (int64_t i = 0; i < m; ++i) {
                       if (xq[i] < 0.0f) continue;
                       if (xq[i] > a) {
                         s += d[i];
                         continue;
                       }
                       const float u = xq[i] * inv;
                       const float q = n > 0.0f ? std::nearbyint(u * n) / n : u;
                       s += static_cast<double>(d[i]) * (q - u);
                     }
                     da = Tensor::full(Shape{1}, static_cast<float>(s));
                   }
                   return {dx, da};
                 });
}

}  // namespace bfcn
