// DoReFa quantizers (tensorpack semantics, see docs/quantization.md and research/paper.md §6),
// built on the op set in autograd/ops.h: the fused STE ops (quantize_levels_ste, clip_quantize_
// levels_ste with the 1[0 <= x <= 1] mask, scaled_sign_ste) carry the straight-through estimators,
// and tanh/abs/max_all/div carry the k >= 2 weight normalisation. The gradient quantizer fg, whose
// forward is the identity and whose backward is not any derivative, is a small make_op op.
// Bit width 32 means "identity" everywhere; the other accepted widths are 1..8.
#pragma once

#include <string>

#include "autograd/var.h"
#include "core/rng.h"

namespace bfcn {

// Bit widths of one layer: weights, activations after it, gradients (32 = full precision).
// w_scale_channel: 1-bit weights get one E = mean|W| per output channel instead of per layer.
// w_symmetric: the weights use quantize_weight_symmetric (per-channel max scale, kept) instead of
// DoReFa's fw; set by the "w8" downsample/score policies, which have no JSON key of their own.
// w_scaled: k >= 2 weights use quantize_weight_scaled (uniform levels over [-a_o, a_o] with a
// per-channel scale from the weights' statistics) instead of DoReFa's tanh/max fw; the JSON
// "w_quantizer": "scaled". Ignored for k = 1 (E*sign(w)) and k = 32.
struct QuantSpec {
  int w_bits = 32;
  int a_bits = 32;
  int g_bits = 32;
  bool w_scale_channel = false;
  bool w_symmetric = false;
  bool w_scaled = false;
  bool operator==(const QuantSpec&) const = default;
};

// Throws ConfigError "layer '<layer>': <key> must be 1..8 or 32, got <bits>" (no layer part when
// `layer` is empty) unless bits is 1..8 or 32.
void check_bits(int bits, const char* key, const std::string& layer);

// n = 2^k - 1; round_ste(x*n)/n (round half to even, identity gradient). k = 32: x unchanged.
// x is expected in [0,1]; quantize_k itself does not clip.
Var quantize_k(const Var& x, int k);

// DoReFa fw on a weight w [K,...]:
//   k = 1:  E*sign(w), sign(0) = +1, E = mean|w| over the whole tensor (per output channel when
//           per_channel), a constant taken from w.value(); gradient dL/dw = dL/dy exactly.
//   k >= 2: 2*quantize_k(tanh(w)/(2*max|tanh(w)|) + 0.5) - 1, in {2j/(2^k-1) - 1}; gradient through
//           tanh and the max (as tensorpack, no stop-gradient). per_channel is ignored (no scale).
//   k = 32: w unchanged.
Var quantize_weight(const Var& w, int k, bool per_channel = false);

// Symmetric max-scaled k-bit weights (k = 2..8), one scale per output channel o of w [K,...]:
//   s_o = max|w_o| / (2^(k-1) - 1),  y = round(w / s_o) * s_o  (round half to even),
// so y keeps w's scale (unlike DoReFa's k >= 2 fw, whose values are in [-1,1]) and its levels are
// the integers -(2^(k-1)-1)..2^(k-1)-1 times s_o. An all-zero channel stays 0. s is a constant
// taken from w.value() (stop-gradient, as E for k = 1) and |w/s| never exceeds the top level, so
// nothing is clipped and the STE gradient is exactly dL/dw = dL/dy. k = 32: w unchanged.
Var quantize_weight_symmetric(const Var& w, int k);
// s_o of quantize_weight_symmetric as [K].
Tensor symmetric_weight_scale(const Tensor& w, int k);

// Scaled uniform k-bit weights (k = 2..8), one scale per output channel o of w [K,...]:
//   a_o = c_k * mean|w_o|,  y = scaled_levels_ste(w, a, k) = a_o*(2j/(2^k-1) - 1), j = 0..2^k-1
// the same level set as DoReFa's fw times a_o, so it exports to the same bit planes with a_o in
// the channel's multiplier. c_k is the clip of the mean-squared-error optimal uniform 2^k-level
// quantizer of a Gaussian (k = 2: 1.87 mean|w| = 1.49 sigma). DoReFa's fw scales by the max of
// tanh(w), so one outlier pushes almost every weight onto the two inner levels (k = 2: 0.5-4 % of
// a trained W2A2 model's weights use the outer ones): its squared error is about that of 1-bit
// weights. a is a constant taken from w.value() (stop-gradient, as E for k = 1); the gradient is
// dL/dy where |w_o| <= a_o, else 0. An all-zero channel gets a_o = 1. k = 32: w unchanged.
Var quantize_weight_scaled(const Var& w, int k);
// a_o of quantize_weight_scaled as [K].
Tensor scaled_weight_scale(const Tensor& w, int k);

// The weight quantizer of a layer: quantize_weight_symmetric when q.w_symmetric, else
// quantize_weight_scaled when q.w_scaled and q.w_bits >= 2, else
// quantize_weight(w, q.w_bits, q.w_scale_channel).
Var quantize_weight(const Var& w, const QuantSpec& q);

// The differentiable (non-STE) part of the k >= 2 weight quantizer: tanh(w)/(2*max|tanh(w)|) + 0.5,
// in [0,1]. Exposed so it can be finite-difference checked; quantize_weight rounds its result.
Var tanh_normalize(const Var& w);

// DoReFa activation: quantize_k(clamp(x,0,1), k), gradient masked to 0 <= x <= 1.
// k = 32: x unchanged (the caller applies ReLU; see QuantAct).
Var quantize_activation(const Var& x, int k);

// DoReFa fg: forward identity; backward, for each sample b of g [N,...]:
//   m = max|g_b|, u = clip(g_b/(2m) + 0.5 + U(-0.5/n, 0.5/n), 0, 1), g'_b = (round(u*n)/n - 0.5)*2m
// (samples with m = 0 pass zeros). The noise is drawn from `rng` when backward runs, so rng must
// outlive the graph. k = 32: x unchanged.
Var quantize_gradient(const Var& x, int k, Rng& rng);

// Tensor helpers shared with export and tests (no graph).
// E = mean|w| as [1], or per output channel as [K] when per_channel. w [K,...].
Tensor weight_scale(const Tensor& w, bool per_channel);
// Forward value of quantize_weight(w, k, per_channel), computed without autograd.
Tensor quantize_weight_value(const Tensor& w, int k, bool per_channel = false);
// Forward value of quantize_weight(w, q): exactly what a QConv2d with spec q convolves with (the
// export writes these values, so training and runtime use bit-identical weights).
Tensor quantize_weight_value(const Tensor& w, const QuantSpec& q);

}  // namespace bfcn
