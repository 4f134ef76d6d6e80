// ReLU and QuantAct (see layers/activation.h).
#include "layers/activation.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/quant.h"

namespace bfcn {

Var ReLU::forward(const Var& x) { return relu(x); }

QuantAct::QuantAct(int a_bits, int g_bits, uint64_t seed, bool learned_clip)
    : Module("QuantAct"), a_bits_(a_bits), g_bits_(g_bits), rng_(seed) {
  check_bits(a_bits, "a_bits", "");
  check_bits(g_bits, "g_bits", "");
  if (learned_clip && a_bits < 32) clip_ = register_parameter("clip", Tensor::full(Shape{1}, 1.0f));
}

float QuantAct::clip_value() const { return clip_.defined() ? clip_.value().f32()[0] : 1.0f; }

Var QuantAct::forward(const Var& x) {
  if (calibrating_) {
    // Record a strided subsample (at most ~16k values per call) of what the quantizer will see.
    const Tensor& v = x.value();
    const int64_t n = v.numel(), step = std::max<int64_t>(1, n / 16384);
    for (int64_t i = 0; i < n; i += step) samples_.push_back(v.f32()[i]);
    return relu(x);
  }
  // DoReFa's activate(): ReLU at full precision, clip[0,1] + k-bit quantize otherwise; with a
  // learned clip, clip[0,alpha] and levels alpha*j/n.
  Var y = a_bits_ == 32     ? relu(x)
          : clip_.defined() ? pact_quantize(x, clip_, a_bits_)
                            : quantize_activation(x, a_bits_);
  if (observer_ && a_bits_ < 32) {
    Tensor out = y.value();  // shallow: edits reach y
    observer_(x.value(), out);
  }
  return quantize_gradient(y, g_bits_, rng_);
}

void QuantAct::begin_calibration() {
  calibrating_ = clip_.defined();
  samples_.clear();
}

float QuantAct::end_calibration() {
  if (!calibrating_) return clip_value();
  calibrating_ = false;
  const float a = mse_optimal_clip(samples_, a_bits_);
  samples_.clear();
  samples_.shrink_to_fit();
  clip_.mutable_value().f32()[0] = a;
  return a;
}

float mse_optimal_clip(const std::vector<float>& x, int k) {
  float mx = 0.0f;
  for (float v : x) mx = std::max(mx, v);
  if (!(mx > 0.0f)) return 1.0f;
  const float n = static_cast<float>((1 << k) - 1);
  float best = mx;
  double best_err = -1.0;
  for (int g = 1; g <= 100; ++g) {
    const float a = mx * static_cast<float>(g) / 100.0f;
    double err = 0.0;
    for (float v : x) {
      if (v <= 0.0f) continue;
      const float q = a * std::nearbyint(std::min(1.0f, v / a) * n) / n;
      err += double(v - q) * double(v - q);
    }
    if (best_err < 0.0 || err < best_err) {
      best_err = err;
      best = a;
    }
  }
  return best;
}

}  // namespace bfcn
