// DoReFa quantizers (see autograd/quant.h for the maths): the STE parts run as the fused ops of
// autograd/ops/ste.cpp, the k >= 2 weight normalisation is composed from the op set, and fg is a
// hand-written op whose backward deliberately ignores the derivative of its (identity) forward.
#include "autograd/quant.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "core/error.h"

namespace bfcn {

namespace {
float levels(int k) { return static_cast<float>((1 << k) - 1); }  // n = 2^k - 1
}  // namespace

void check_bits(int bits, const char* key, const std::string& layer) {
  if ((bits >= 1 && bits <= 8) || bits == 32) return;
  if (layer.empty()) throw ConfigError(detail::concat(key, " must be 1..8 or 32, got ", bits));
  throw ConfigError(
      detail::concat("layer '", layer, "': ", key, " must be 1..8 or 32, got ", bits));
}

Var quantize_k(const Var& x, int k) {
  check_bits(k, "bits", "");
  if (k == 32) return x;
  // One fused op (autograd/ops/ste.cpp): round(x*n)/n dividing (not multiplying by 1/n) so the
  // levels are the correctly rounded j/n, as tf.round(x*n)/n; identity gradient.
  return quantize_levels_ste(x, k);
}

Tensor weight_scale(const Tensor& w, bool per_channel) {
  BFCN_CHECK(w.ndim() >= 1 && w.numel() > 0, "weight_scale: expected a non-empty weight, got ",
             w.shape());
  const int64_t K = per_channel ? w.dim(0) : 1;
  const int64_t per = w.numel() / K;
  Tensor e = Tensor::empty({K});
  const float* p = w.f32();
  for (int64_t c = 0; c < K; ++c) {
    double s = 0.0;
    for (int64_t i = 0; i < per; ++i) s += std::fabs(p[c * per + i]);
    e.f32()[c] = static_cast<float>(s / static_cast<double>(per));
  }
  return e;
}

Var quantize_weight(const Var& w, int k, bool per_channel) {
  check_bits(k, "w_bits", "");
  if (k == 32) return w;
  if (k == 1) {
    // y = E*sign(w). E is a constant (tensorpack's stop_gradient) and the whole quantizer has an
    // identity STE, including the multiplication by E: one fused op whose gradient is dL/dy.
    return scaled_sign_ste(w, weight_scale(w.value(), per_channel));
  }
  // y = 2*quantize_k(u) - 1 with u = tanh_normalize(w) in [0,1].
  const Var u = tanh_normalize(w);
  return add_scalar(scale(quantize_k(u, k), 2.0f), -1.0f);
}

Tensor symmetric_weight_scale(const Tensor& w, int k) {
  BFCN_CHECK(k >= 2 && k <= 8, "symmetric_weight_scale: bits must be 2..8, got ", k);
  BFCN_CHECK(w.ndim() >= 1 && w.numel() > 0,
             "symmetric_weight_scale: expected a non-empty weight, got ", w.shape());
  const int64_t K = w.dim(0), per = w.numel() / K;
  const float top = static_cast<float>((1 << (k - 1)) - 1);
  Tensor s = Tensor::empty({K});
  const float* p = w.f32();
  for (int64_t o = 0; o < K; ++o) {
    float m = 0.0f;
    for (int64_t i = 0; i < per; ++i) m = std::max(m, std::fabs(p[o * per + i]));
    s.f32()[o] = m / top;
  }
  return s;
}

Var quantize_weight_symmetric(const Var& w, int k) {
  BFCN_CHECK((k >= 2 && k <= 8) || k == 32,
             "quantize_weight_symmetric: bits must be 2..8 or 32, got ", k);
  if (k == 32) return w;
  const Tensor& wv = w.value();
  BFCN_CHECK(wv.dtype() == DType::f32, "quantize_weight_symmetric: expected an f32 weight");
  const Tensor s = symmetric_weight_scale(wv, k);
  const int64_t K = wv.dim(0), per = wv.numel() / K;
  Tensor y = Tensor::empty(wv.shape());
  const float* p = wv.f32();
  float* o = y.f32();
  for (int64_t c = 0; c < K; ++c) {
    const float sc = s.f32()[c];
    for (int64_t i = 0; i < per; ++i)
      o[c * per + i] = sc > 0.0f ? std::nearbyint(p[c * per + i] / sc) * sc : 0.0f;
  }
  // Identity STE: nothing is clipped (|w/s| <= 2^(k-1)-1) and s is a constant.
  return make_op("quantize_weight_symmetric", y, {w},
                 [](const Tensor& dy, const GradMask&) -> std::vector<Tensor> { return {dy}; });
}

Tensor scaled_weight_scale(const Tensor& w, int k) {
  BFCN_CHECK(k >= 2 && k <= 8, "scaled_weight_scale: bits must be 2..8, got ", k);
  BFCN_CHECK(w.ndim() >= 1 && w.numel() > 0,
             "scaled_weight_scale: expected a non-empty weight, got ", w.shape());
  // c_k = (2^k-1)/2 * D_k * sqrt(pi/2): D_k the MSE-optimal step of a uniform 2^k-level
  // quantizer for a unit Gaussian (Max 1960), sqrt(pi/2) = sigma / mean|w| for a Gaussian.
  static constexpr double kStep[9] = {0, 0, 0.9957, 0.5860, 0.3352, 0.1881, 0.1041, 0.0569, 0.0308};
  const double c = ((1 << k) - 1) / 2.0 * kStep[k] * std::sqrt(std::acos(-1.0) / 2.0);
  Tensor a = weight_scale(w, /*per_channel=*/true);  // mean|w_o|, as the 1-bit E
  for (int64_t o = 0; o < a.numel(); ++o) {
    const float v = static_cast<float>(c * double(a.f32()[o]));
    a.f32()[o] = v > 0.0f && std::isfinite(v) ? v : 1.0f;
  }
  return a;
}

Var quantize_weight_scaled(const Var& w, int k) {
  BFCN_CHECK((k >= 2 && k <= 8) || k == 32, "quantize_weight_scaled: bits must be 2..8 or 32, got ",
             k);
  if (k == 32) return w;
  return scaled_levels_ste(w, scaled_weight_scale(w.value(), k), k);
}

Var quantize_weight(const Var& w, const QuantSpec& q) {
  if (q.w_symmetric) return quantize_weight_symmetric(w, q.w_bits);
  if (q.w_scaled && q.w_bits >= 2) return quantize_weight_scaled(w, q.w_bits);
  return quantize_weight(w, q.w_bits, q.w_scale_channel);
}

Tensor quantize_weight_value(const Tensor& w, const QuantSpec& q) {
  NoGradGuard no_grad;
  return quantize_weight(Var(w), q).value();
}

Var tanh_normalize(const Var& w) {
  // u = tanh(w)/max|tanh(w)| * 0.5 + 0.5 (tensorpack's order). The max is a graph node (not
  // stop-gradient), as in tensorpack, so a sliver of gradient reaches the arg-max element.
  const Var t = tanh(w);
  Var m = max_all(abs(t));
  // All-zero weights: tanh(w) = 0 everywhere; divide by 1 instead of 0 (u = 0.5, finite grads).
  if (m.value().item() == 0.0f) m = add_scalar(m, 1.0f);
  return add_scalar(scale(div(t, m), 0.5f), 0.5f);
}

Tensor quantize_weight_value(const Tensor& w, int k, bool per_channel) {
  NoGradGuard no_grad;
  return quantize_weight(Var(w), k, per_channel).value();
}

Var quantize_activation(const Var& x, int k) {
  check_bits(k, "a_bits", "");
  if (k == 32) return x;
  // Fused clamp + quantize_k: same values, gradient masked to 0 <= x <= 1, one saved byte mask.
  return clip_quantize_levels_ste(x, k);
}

Var quantize_gradient(const Var& x, int k, Rng& rng) {
  check_bits(k, "g_bits", "");
  if (k == 32) return x;
  // Not composed: the forward is the identity but the backward is DoReFa's stochastic requantizer
  // of the incoming gradient, which is no op's derivative. The output shares x's storage.
  Rng* r = &rng;
  return make_op("quantize_gradient", x.value(), {x},
                 [k, r](const Tensor& dy, const GradMask& need) -> std::vector<Tensor> {
                   if (!need[0]) return {Tensor()};
                   const float n = levels(k);
                   const int64_t N = dy.dim(0), per = dy.numel() / std::max<int64_t>(N, 1);
                   Tensor g = Tensor::empty(dy.shape());
                   const float* d = dy.f32();
                   float* o = g.f32();
                   for (int64_t b = 0; b < N; ++b) {
                     const float* db = d + b * per;
                     float* ob = o + b * per;
                     float m = 0.0f;  // per-sample max |g|
                     for (int64_t i = 0; i < per; ++i) m = std::max(m, std::fabs(db[i]));
                     if (m == 0.0f) {
                       for (int64_t i = 0; i < per; ++i) ob[i] = 0.0f;
                       continue;
                     }
                     for (int64_t i = 0; i < per; ++i) {
                       float u = db[i] / m * 0.5f + 0.5f + r->uniform(-0.5f / n, 0.5f / n);
                       u = std::min(1.0f, std::max(0.0f, u));
                       const float q = std::nearbyint(u * n) / n;
                       ob[i] = (q - 0.5f) * m * 2.0f;
                     }
                   }
                   return {g};
                 });
}

}  // namespace bfcn
