// Initialisers (see layers/init.h): element order is fixed so a seed reproduces the weights.
#include "layers/init.h"

#include <cmath>

#include "core/error.h"

namespace bfcn {

namespace {
int64_t receptive(const Shape& w) {
  int64_t r = 1;
  for (int i = 2; i < w.ndim(); ++i) r *= w[i];
  return r;
}
}  // namespace

int64_t conv_fan_in(const Shape& w) {
  BFCN_CHECK(w.ndim() >= 2, "conv_fan_in: expected a weight [K,C,...], got ", w);
  return w[1] * receptive(w);
}

int64_t conv_fan_out(const Shape& w) {
  BFCN_CHECK(w.ndim() >= 2, "conv_fan_out: expected a weight [K,C,...], got ", w);
  return w[0] * receptive(w);
}

void kaiming_normal_fan_out(Tensor& w, Rng& rng) {
  const float std = std::sqrt(2.0f / static_cast<float>(conv_fan_out(w.shape())));
  for (float& v : w.span<float>()) v = rng.normal(0.0f, std);
}

void uniform_init(Tensor& t, float bound, Rng& rng) {
  for (float& v : t.span<float>()) v = rng.uniform(-bound, bound);
}

void conv_bias_init(Tensor& bias, int64_t fan_in, Rng& rng) {
  BFCN_CHECK(fan_in > 0, "conv_bias_init: fan_in must be > 0, got ", fan_in);
  uniform_init(bias, 1.0f / std::sqrt(static_cast<float>(fan_in)), rng);
}

}  // namespace bfcn
