// DoReFa quantizers: exact level sets, ties, sign(0), k = 32 identity, STE gradient masks, the
// exact identity gradient of the 1-bit weight quantizer, the symmetric max-scaled ("w8") weight
// quantizer's values and identity gradient, the statistics-scaled k-bit weight quantizer's levels
// and clip mask, finite differences of the tanh/max normalisation, the gradient quantizer fg, and
// bit-width validation.
#include "autograd/quant.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/error.h"
#include "kernels/bitpack.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::random_tensor;

namespace {

Var leaf(const Shape& s, const std::vector<float>& v) {
  return Var(Tensor::from_vector(s, v), /*requires_grad=*/true);
}

// Runs backward from y with the given seed and returns x's gradient.
Tensor grad_of(const Var& x, const Var& y, const Tensor& seed) {
  y.backward(seed);
  return x.grad();
}

bool in_levels(float v, const std::vector<float>& levels, float tol) {
  for (float l : levels)
    if (std::fabs(v - l) <= tol) return true;
  return false;
}

}  // namespace

TEST_CASE("quantize_k maps [0,1] onto j/(2^k-1) with half-to-even ties", "[quant]") {
  // k=2, n=3: 0.5*3 = 1.5 ties to 2; k=1, n=1: 0.5 ties to 0; k=3, n=7: 0.5*7 = 3.5 ties to 4.
  const Var x = leaf({6}, {0.0f, 0.25f, 0.5f, 0.75f, 0.9f, 1.0f});
  CHECK(quantize_k(x, 2).value().to_vector() ==
        std::vector<float>{0.0f, 1.0f / 3, 2.0f / 3, 2.0f / 3, 1.0f, 1.0f});
  CHECK(quantize_k(x, 1).value().to_vector() ==
        std::vector<float>{0.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f});
  CHECK(quantize_k(x, 3).value().to_vector() ==
        std::vector<float>{0.0f, 2.0f / 7, 4.0f / 7, 5.0f / 7, 6.0f / 7, 1.0f});
  // Exact k=8 levels: j/255 for every j.
  std::vector<float> all(256);
  for (int j = 0; j < 256; ++j) all[size_t(j)] = float(j) / 255.0f;
  CHECK(quantize_k(leaf({256}, all), 8).value().to_vector() == all);
}

TEST_CASE("k = 32 is the identity for every quantizer", "[quant]") {
  Rng rng(1);
  const Var w(random_tensor({4, 3, 3, 3}, rng, -2, 2), true);
  Rng grng(2);
  CHECK(quantize_k(w, 32).node() == w.node());
  CHECK(quantize_weight(w, 32).node() == w.node());
  CHECK(quantize_weight(w, 32, true).node() == w.node());
  CHECK(quantize_activation(w, 32).node() == w.node());
  CHECK(quantize_gradient(w, 32, grng).node() == w.node());
}

TEST_CASE("2-bit activations are in {0,1/3,2/3,1} and clip outside [0,1]", "[quant]") {
  Rng rng(3);
  const Tensor xt = random_tensor({2, 3, 7, 5}, rng, -0.5f, 1.5f);
  const Tensor y = quantize_activation(Var(xt), 2).value();
  const std::vector<float> levels = {0.0f, 1.0f / 3, 2.0f / 3, 1.0f};
  std::set<float> seen;
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float x = xt.f32()[i], v = y.f32()[i];
    const float want = std::nearbyint(std::min(1.0f, std::max(0.0f, x)) * 3.0f) / 3.0f;
    INFO("x = " << x);
    REQUIRE(v == want);
    REQUIRE(in_levels(v, levels, 0.0f));
    seen.insert(v);
  }
  CHECK(seen.size() == 4);
  // Out of range, boundaries and a tie (0.5*3 = 1.5 -> 2).
  const Var e = leaf({7}, {-3.0f, -0.1f, 0.0f, 0.5f, 1.0f, 1.1f, 7.0f});
  CHECK(quantize_activation(e, 2).value().to_vector() ==
        std::vector<float>{0.0f, 0.0f, 0.0f, 2.0f / 3, 1.0f, 1.0f, 1.0f});
  // 4-bit levels are j/15.
  const Tensor y4 = quantize_activation(Var(xt), 4).value();
  for (float v : y4.to_vector()) REQUIRE(std::fabs(v * 15.0f - std::nearbyint(v * 15.0f)) < 1e-5f);
}

TEST_CASE("activation gradient is masked to 0 <= x <= 1 (inclusive)", "[quant]") {
  for (int k : {1, 2, 4}) {
    const Var x = leaf({5}, {-0.1f, 0.0f, 0.5f, 1.0f, 1.1f});
    const Tensor g =
        grad_of(x, quantize_activation(x, k), Tensor::from_vector({5}, {1, 2, 3, 4, 5}));
    const std::vector<float> gv = g.to_vector();
    INFO("k = " << k);
    CHECK(gv[0] == 0.0f);
    CHECK(gv[1] == Approx(2.0f).epsilon(1e-6));
    CHECK(gv[2] == Approx(3.0f).epsilon(1e-6));
    CHECK(gv[3] == Approx(4.0f).epsilon(1e-6));
    CHECK(gv[4] == 0.0f);
  }
}

TEST_CASE("1-bit weights are exactly +-E with E = mean|W| and sign(0) = +1", "[quant]") {
  Rng rng(4);
  Tensor wt = random_tensor({4, 3, 3, 3}, rng, -1, 1);
  wt.f32()[0] = 0.0f;
  wt.f32()[5] = -0.0f;
  wt.f32()[40] = 0.0f;
  double s = 0;
  for (float v : wt.to_vector()) s += std::fabs(v);
  const float e = static_cast<float>(s / double(wt.numel()));
  CHECK(weight_scale(wt, false).item() == e);
  const Tensor y = quantize_weight(Var(wt, true), 1).value();
  for (int64_t i = 0; i < y.numel(); ++i) {
    INFO("i = " << i << " w = " << wt.f32()[i]);
    REQUIRE(y.f32()[i] == (wt.f32()[i] >= 0.0f ? e : -e));
  }
  CHECK(y.f32()[0] == e);
  CHECK(y.f32()[5] == e);
  CHECK(quantize_weight_value(wt, 1).to_vector() == y.to_vector());
}

TEST_CASE("1-bit weights with per-channel scale use one E per output channel", "[quant]") {
  Rng rng(5);
  Tensor wt = random_tensor({3, 2, 3, 3}, rng, -1, 1);
  for (int64_t i = 0; i < 18; ++i) wt.f32()[18 + i] *= 5.0f;  // channel 1 is 5x larger
  const Tensor y = quantize_weight(Var(wt, true), 1, true).value();
  const Tensor es = weight_scale(wt, true);
  REQUIRE(es.numel() == 3);
  for (int c = 0; c < 3; ++c) {
    double s = 0;
    for (int i = 0; i < 18; ++i) s += std::fabs(wt.f32()[c * 18 + i]);
    const float e = static_cast<float>(s / 18.0);
    CHECK(es.f32()[c] == e);
    for (int i = 0; i < 18; ++i) {
      const float w = wt.f32()[c * 18 + i];
      REQUIRE(y.f32()[c * 18 + i] == (w >= 0 ? e : -e));
    }
  }
  CHECK(es.f32()[1] > 3.0f * es.f32()[0]);
}

TEST_CASE("the gradient through the 1-bit weight quantizer equals the upstream gradient",
          "[quant]") {
  for (bool per_channel : {false, true}) {
    Rng rng(6);
    const Var w(random_tensor({4, 3, 3, 3}, rng, -3, 3), true);  // includes |w| > 1: no clip
    const Tensor seed = random_tensor(w.shape(), rng, -2, 2);
    const Tensor g = grad_of(w, quantize_weight(w, 1, per_channel), seed);
    INFO("per_channel = " << per_channel);
    CHECK(g.to_vector() == seed.to_vector());  // bit-exact
  }
}

TEST_CASE("k-bit weights take the 2j/(2^k-1) - 1 levels", "[quant]") {
  Rng rng(7);
  const Tensor wt = random_tensor({8, 4, 3, 3}, rng, -2, 2);
  for (int k : {2, 3, 4}) {
    const float n = float((1 << k) - 1);
    std::vector<float> levels;
    for (int j = 0; j <= int(n); ++j) levels.push_back(2.0f * float(j) / n - 1.0f);
    const Tensor y = quantize_weight(Var(wt, true), k).value();
    double m = 0;
    for (float v : wt.to_vector()) m = std::max(m, std::fabs(std::tanh(double(v))));
    std::set<int> seen;
    for (int64_t i = 0; i < y.numel(); ++i) {
      const double u = std::tanh(double(wt.f32()[i])) / m * 0.5 + 0.5;
      const double want = 2.0 * std::nearbyint(u * n) / n - 1.0;
      INFO("k = " << k << " w = " << wt.f32()[i]);
      REQUIRE(y.f32()[i] == Approx(want).margin(1e-6));
      REQUIRE(in_levels(y.f32()[i], levels, 1e-6f));
      seen.insert(int(std::lround((y.f32()[i] + 1.0f) * n / 2.0f)));
    }
    CHECK(int(seen.size()) == int(n) + 1);  // every level is used by this spread of weights
  }
  // 2-bit explicitly: {-1,-1/3,1/3,1}; the largest |w| maps to +-1.
  const Var w2 = leaf({5}, {-2.0f, -0.1f, 0.1f, 0.3f, 2.0f});
  const std::vector<float> y2 = quantize_weight(w2, 2).value().to_vector();
  CHECK(y2[0] == Approx(-1.0f));
  CHECK(y2[1] == Approx(-1.0f / 3));
  CHECK(y2[2] == Approx(1.0f / 3));
  CHECK(y2[3] == Approx(1.0f / 3));
  CHECK(y2[4] == Approx(1.0f));
}

TEST_CASE("k-bit weights of an all-zero tensor stay finite", "[quant]") {
  const Var w(Tensor::zeros({2, 2, 1, 1}), true);
  const Tensor y = quantize_weight(w, 2).value();
  for (float v : y.to_vector()) CHECK(v == Approx(1.0f / 3));  // u = 0.5 -> 1.5 ties to 2
  const Tensor g = grad_of(w, quantize_weight(w, 2), Tensor::ones(w.shape()));
  for (float v : g.to_vector()) CHECK(std::isfinite(v));
  // 1-bit: E = 0, so the weights are exactly 0 but the gradient still passes.
  CHECK(quantize_weight_value(Tensor::zeros({2, 2, 1, 1}), 1).to_vector() ==
        std::vector<float>(4, 0.0f));
}

TEST_CASE("symmetric 8-bit weights are round(w/s)*s with s = max|w_o|/127 per output channel",
          "[quant]") {
  Rng rng(21);
  Tensor wt = random_tensor({4, 3, 3, 3}, rng, -0.05f, 0.05f);
  for (int64_t i = 0; i < 27; ++i) wt.f32()[27 + i] *= 40.0f;  // channel 1 is 40x larger
  for (int64_t i = 0; i < 27; ++i) wt.f32()[81 + i] = 0.0f;    // channel 3 is all zero
  wt.f32()[3] = 0.05f;                                         // channel 0's max is hit exactly
  const Tensor s = symmetric_weight_scale(wt, 8);
  REQUIRE(s.numel() == 4);
  const Tensor y = quantize_weight_symmetric(Var(wt, true), 8).value();
  for (int64_t o = 0; o < 4; ++o) {
    float m = 0.0f;
    for (int64_t i = 0; i < 27; ++i) m = std::max(m, std::fabs(wt.f32()[o * 27 + i]));
    CHECK(s.f32()[o] == m / 127.0f);
    std::set<int> codes;
    for (int64_t i = 0; i < 27; ++i) {
      const float w = wt.f32()[o * 27 + i], v = y.f32()[o * 27 + i];
      INFO("o = " << o << " w = " << w);
      if (o == 3) {
        REQUIRE(v == 0.0f);
        continue;
      }
      const float q = std::nearbyint(w / s.f32()[o]);
      REQUIRE(v == q * s.f32()[o]);  // exact, with the scale kept (not normalised to [-1,1])
      REQUIRE(std::fabs(q) <= 127.0f);
      REQUIRE(std::fabs(v - w) <= 0.5f * s.f32()[o] * (1.0f + 1e-6f));
      codes.insert(int(q));
    }
    if (o != 3) CHECK((codes.count(127) || codes.count(-127)));  // the max |w| is a level
  }
  // Ties round half to even: s = 1 (max 127), w = 2.5 -> 2, 3.5 -> 4, -0.5 -> -0.
  const Var t = leaf({1, 5}, {127.0f, 2.5f, 3.5f, -0.5f, -127.0f});
  CHECK(quantize_weight_symmetric(t, 8).value().to_vector() ==
        std::vector<float>{127.0f, 2.0f, 4.0f, -0.0f, -127.0f});
  // The spec dispatch and the value helper give the same values (what export writes).
  QuantSpec q;
  q.w_bits = 8;
  q.w_symmetric = true;
  CHECK(quantize_weight_value(wt, q).to_vector() == y.to_vector());
  CHECK(quantize_weight(Var(wt), q).value().to_vector() == y.to_vector());
  q.w_symmetric = false;  // DoReFa's fw: values in [-1,1], the scale is dropped
  CHECK(quantize_weight_value(wt, q).to_vector() == quantize_weight_value(wt, 8).to_vector());
  // Other widths: 2^(k-1)-1 levels per sign.
  const Tensor y4 = quantize_weight_symmetric(Var(wt), 4).value();
  const Tensor s4 = symmetric_weight_scale(wt, 4);
  for (int64_t i = 0; i < 27; ++i)
    REQUIRE(y4.f32()[27 + i] == std::nearbyint(wt.f32()[27 + i] / s4.f32()[1]) * s4.f32()[1]);
  CHECK(s4.f32()[1] == Approx(s.f32()[1] * 127.0f / 7.0f));
  CHECK(quantize_weight_symmetric(Var(wt), 32).value().to_vector() == wt.to_vector());
  CHECK_THROWS_WITH(quantize_weight_symmetric(Var(wt), 1), Catch::Contains("2..8 or 32"));
}

TEST_CASE("the gradient through the symmetric weight quantizer equals the upstream gradient",
          "[quant]") {
  // STE with a constant (stop-gradient) scale; |w/s| <= 127 so no element is clipped and the
  // gradient is dL/dy for every weight, including the arg-max and an all-zero channel.
  Rng rng(22);
  Tensor wt = random_tensor({3, 4, 3, 3}, rng, -3, 3);
  for (int64_t i = 0; i < 36; ++i) wt.f32()[72 + i] = 0.0f;
  const Var w(wt, true);
  const Tensor seed = random_tensor(w.shape(), rng, -2, 2);
  const Tensor g = grad_of(w, quantize_weight_symmetric(w, 8), seed);
  CHECK(g.to_vector() == seed.to_vector());  // bit-exact
}

TEST_CASE("scaled k-bit weights are a_o*(2j/(2^k-1) - 1) with a_o = c_k*mean|w_o|", "[quant]") {
  Rng rng(23);
  Tensor wt = random_tensor({4, 3, 3, 3}, rng, -0.05f, 0.05f);
  for (int64_t i = 0; i < 27; ++i) wt.f32()[27 + i] *= 40.0f;  // channel 1 is 40x larger
  for (int64_t i = 0; i < 27; ++i) wt.f32()[81 + i] = 0.0f;    // channel 3 is all zero
  // c_k: (2^k-1)/2 * (the Gaussian MSE-optimal step) * sqrt(pi/2); k = 2: 1.5*0.9957*1.2533.
  const std::vector<std::pair<int, double>> c = {{2, 1.8718}, {3, 2.5705}, {4, 3.1509}};
  for (const auto& [k, ck] : c) {
    INFO("k = " << k);
    const Tensor a = scaled_weight_scale(wt, k);
    REQUIRE(a.numel() == 4);
    const float n = float((1 << k) - 1);
    const Tensor y = quantize_weight_scaled(Var(wt, true), k).value();
    for (int64_t o = 0; o < 4; ++o) {
      double m = 0.0;
      for (int64_t i = 0; i < 27; ++i) m += std::fabs(double(wt.f32()[o * 27 + i]));
      if (o == 3)
        CHECK(a.f32()[o] == 1.0f);  // an all-zero channel: scale 1, not 0
      else
        CHECK(a.f32()[o] == Approx(ck * m / 27.0).epsilon(2e-4));
      std::set<int> codes;
      for (int64_t i = 0; i < 27; ++i) {
        const float w = wt.f32()[o * 27 + i], v = y.f32()[o * 27 + i], s = a.f32()[o];
        const float u = std::min(1.0f, std::max(0.0f, (w / s + 1.0f) * 0.5f));
        const float j = std::nearbyint(u * n);
        REQUIRE(v == s * (2.0f * (j / n) - 1.0f));  // exact: the level set of fw, times a_o
        // nearest level (clipped to [-a, a]): within half a step of clip(w)
        const float wc = std::min(s, std::max(-s, w));
        REQUIRE(std::fabs(v - wc) <= s / n * (1.0f + 1e-5f));
        codes.insert(int(j));
      }
      // unlike DoReFa's max-normalised fw, the outer levels are used on Gaussian-like weights
      if (o < 3 && k == 2) CHECK((codes.count(0) || codes.count(3)));
    }
  }
  // Ties round half to even (scale 1, k = 2: w = 0 -> u = 0.5 -> 1.5 -> 2 -> +1/3), the clip
  // saturates at +-a, and k = 32 is the identity.
  const Var t = leaf({1, 5}, {0.0f, 5.0f, -5.0f, 1.0f / 3.0f, -1.0f});
  const Tensor one = Tensor::full({1}, 1.0f);
  const std::vector<float> got = scaled_levels_ste(t, one, 2).value().to_vector();
  CHECK(got[0] == 2.0f * (2.0f / 3.0f) - 1.0f);  // level j = 2 of {0..3}: +1/3
  CHECK(got[1] == 1.0f);
  CHECK(got[2] == -1.0f);
  CHECK(got[4] == -1.0f);
  CHECK(quantize_weight_scaled(Var(wt), 32).value().to_vector() == wt.to_vector());
  CHECK_THROWS_WITH(quantize_weight_scaled(Var(wt), 1), Catch::Contains("2..8 or 32"));
  CHECK_THROWS_WITH(scaled_levels_ste(t, Tensor::full({1}, 0.0f), 2), Catch::Contains("> 0"));
  CHECK_THROWS_WITH(scaled_levels_ste(t, Tensor::full({3}, 1.0f), 2),
                    Catch::Contains("one per output channel"));
  // The spec dispatch: w_scaled picks it for k >= 2 (what QConv2d and export use); k = 1 keeps
  // E*sign(w); w_symmetric wins over w_scaled.
  QuantSpec q;
  q.w_bits = 2;
  q.w_scaled = true;
  const Tensor y2 = quantize_weight_scaled(Var(wt), 2).value();
  CHECK(quantize_weight_value(wt, q).to_vector() == y2.to_vector());
  q.w_bits = 1;
  CHECK(quantize_weight_value(wt, q).to_vector() == quantize_weight_value(wt, 1).to_vector());
  q.w_bits = 8;
  q.w_symmetric = true;
  CHECK(quantize_weight_value(wt, q).to_vector() ==
        quantize_weight_symmetric(Var(wt), 8).value().to_vector());
}

TEST_CASE("the gradient through the scaled weight quantizer is dL/dy inside [-a_o, a_o], else 0",
          "[quant]") {
  Rng rng(24);
  Tensor wt = random_tensor({3, 4, 3, 3}, rng, -0.1f, 0.1f);
  wt.f32()[5] = 3.0f;    // far outside channel 0's clip
  wt.f32()[40] = -3.0f;  // and channel 1's
  const Var w(wt, true);
  const Tensor a = scaled_weight_scale(wt, 2);
  wt.f32()[80] = a.f32()[2];  // exactly on channel 2's clip: inclusive, so it passes
  const Var w2(wt, true);
  const Tensor seed = random_tensor(w2.shape(), rng, -2, 2);
  const Tensor g = grad_of(w2, quantize_weight_scaled(w2, 2), seed);
  int masked = 0;
  for (int64_t i = 0; i < wt.numel(); ++i) {
    const float s = a.f32()[i / 36];
    const bool inside = std::fabs(wt.f32()[i]) <= s;
    REQUIRE(g.f32()[i] == (inside ? seed.f32()[i] : 0.0f));  // bit-exact
    masked += !inside;
  }
  CHECK(masked >= 2);
  CHECK(g.f32()[80] == seed.f32()[80]);
}

TEST_CASE("tanh/max normalisation matches finite differences, incl. the max path",
          "[quant][grad]") {
  Rng rng(8);
  // Keep the arg-max of |tanh w| unique and well separated so the max is differentiable.
  Tensor wt = random_tensor({3, 2, 2, 2}, rng, -1, 1);
  wt.f32()[7] = 1.6f;
  const Tensor r = random_tensor({3, 2, 2, 2}, rng, -1, 1);
  GradcheckOptions opt;
  opt.eps = 1e-3;
  const GradcheckResult res =
      gradcheck([](const std::vector<Var>& in) { return tanh_normalize(in[0]); }, {wt}, opt);
  INFO(res.message());
  CHECK(res.ok);
  const Var w(wt, true);
  const Tensor g = grad_of(w, tanh_normalize(w), r);
  // The arg-max element gets a gradient through the max as well as through tanh: it differs from
  // the tanh-only term 0.5*tanh'(w)/m * r.
  const double m = std::tanh(1.6);
  const double tanh_only = 0.5 * (1 - m * m) / m * r.f32()[7];
  CHECK(std::fabs(g.f32()[7] - tanh_only) > 1e-3);

  // quantize_weight's gradient is 2x the normalisation's (round is identity, scale(2)).
  const Var w2(wt, true);
  const Tensor gq = grad_of(w2, quantize_weight(w2, 2), r);
  for (int64_t i = 0; i < wt.numel(); ++i)
    CHECK(gq.f32()[i] == Approx(2.0f * g.f32()[i]).margin(1e-6).epsilon(1e-5));
}

TEST_CASE("gradient quantizer: identity forward, k-bit per-sample backward, seeded", "[quant]") {
  Rng data(9);
  const Tensor xt = random_tensor({3, 2, 4, 4}, data, -1, 1);
  Tensor seed = random_tensor({3, 2, 4, 4}, data, -1, 1);
  for (int64_t i = 0; i < 32; ++i) seed.f32()[32 + i] *= 100.0f;  // sample 1: larger scale
  for (int64_t i = 0; i < 32; ++i) seed.f32()[64 + i] = 0.0f;     // sample 2: all zero

  auto run = [&](int k, uint64_t s) {
    Rng rng(s);
    const Var x(xt, true);
    const Var y = quantize_gradient(x, k, rng);
    CHECK(y.value().to_vector() == xt.to_vector());
    return grad_of(x, y, seed);
  };
  for (int k : {2, 4, 8}) {
    const Tensor g = run(k, 11);
    const float n = float((1 << k) - 1);
    for (int b = 0; b < 3; ++b) {
      float m = 0;
      for (int i = 0; i < 32; ++i) m = std::max(m, std::fabs(seed.f32()[b * 32 + i]));
      for (int i = 0; i < 32; ++i) {
        const float v = g.f32()[b * 32 + i];
        if (m == 0) {
          REQUIRE(v == 0.0f);
          continue;
        }
        // v = (j/n - 0.5)*2m for an integer j in [0,n]; dithering moves it at most one level.
        const float j = (v / (2 * m) + 0.5f) * n;
        INFO("k = " << k << " b = " << b << " v = " << v << " m = " << m);
        REQUIRE(std::fabs(j - std::nearbyint(j)) < 1e-3f);
        REQUIRE(j > -1e-3f);
        REQUIRE(j < n + 1e-3f);
        REQUIRE(std::fabs(v - seed.f32()[b * 32 + i]) <= 2 * m / n * 1.0001f + 1e-6f);
      }
    }
    CHECK(run(k, 11).to_vector() == g.to_vector());  // deterministic for a seed
    CHECK(run(k, 12).to_vector() != g.to_vector());  // and the noise depends on it
  }
}

TEST_CASE("gradient quantizer is unbiased on average (dithering)", "[quant]") {
  const Tensor xt = Tensor::zeros({1, 4});
  const Tensor seed = Tensor::from_vector({1, 4}, {1.0f, 0.3f, -0.55f, 0.1f});
  Rng rng(13);
  std::vector<double> acc(4, 0.0);
  const int trials = 4000;
  for (int t = 0; t < trials; ++t) {
    const Var x(xt, true);
    const Tensor g = grad_of(x, quantize_gradient(x, 2, rng), seed);
    for (int i = 0; i < 4; ++i) acc[size_t(i)] += g.f32()[i];
  }
  for (int i = 0; i < 4; ++i) CHECK(acc[size_t(i)] / trials == Approx(seed.f32()[i]).margin(0.03));
}

TEST_CASE("bit widths must be 1..8 or 32", "[quant][config]") {
  for (int b : {1, 2, 3, 4, 5, 6, 7, 8, 32}) CHECK_NOTHROW(check_bits(b, "w_bits", "conv1"));
  auto message = [](int b, const std::string& layer) {
    try {
      check_bits(b, "w_bits", layer);
    } catch (const ConfigError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message(0, "layer2.0.conv1") == "layer 'layer2.0.conv1': w_bits must be 1..8 or 32, got 0");
  CHECK(message(9, "x") == "layer 'x': w_bits must be 1..8 or 32, got 9");
  CHECK(message(16, "") == "w_bits must be 1..8 or 32, got 16");
  CHECK(message(-1, "") == "w_bits must be 1..8 or 32, got -1");
  Rng rng(1);
  const Var w(random_tensor({2, 2}, rng), true);
  CHECK_THROWS_AS(quantize_weight(w, 0), ConfigError);
  CHECK_THROWS_AS(quantize_activation(w, 9), ConfigError);
  CHECK_THROWS_AS(quantize_gradient(w, 33, rng), ConfigError);
}

TEST_CASE("pact_quantize: levels alpha*j/3, x mask, and the LSQ-style alpha gradient", "[quant]") {
  // alpha = 2, k = 2: levels {0, 2/3, 4/3, 2}.
  Var x = leaf(Shape{6}, {-0.5f, 0.0f, 0.5f, 0.9f, 2.0f, 3.0f});
  Var a(Tensor::full(Shape{1}, 2.0f), /*requires_grad=*/true);
  Var y = pact_quantize(x, a, 2);
  const std::vector<float> expect = {0.0f, 0.0f, 2.0f / 3.0f, 2.0f / 3.0f, 2.0f, 2.0f};
  for (int i = 0; i < 6; ++i) CHECK(y.value().f32()[i] == Approx(expect[size_t(i)]).epsilon(1e-6));
  Var loss = sum(y);
  loss.backward();
  // dx: 1 on [0, alpha] inclusive.
  const std::vector<float> dx = {0, 1, 1, 1, 1, 0};
  for (int i = 0; i < 6; ++i) CHECK(x.grad().f32()[i] == dx[size_t(i)]);
  // dalpha: q - x/alpha inside, 1 above, 0 below; q = normalised level.
  double da = 0;
  da += 0.0 - 0.0;         // x = 0: q = 0
  da += 1.0 / 3.0 - 0.25;  // x = 0.5: q = 1/3
  da += 1.0 / 3.0 - 0.45;  // x = 0.9: q = 1/3
  da += 1.0 - 1.0;         // x = 2 = alpha: q = 1
  da += 1.0;               // x = 3 > alpha
  CHECK(a.grad().f32()[0] == Approx(da).epsilon(1e-5));
}

TEST_CASE("pact_quantize with alpha 1 equals DoReFa's activation quantizer", "[quant]") {
  Rng rng(5);
  const Tensor t = random_tensor(Shape{2, 3, 4, 4}, rng, -0.5f, 1.5f);
  NoGradGuard g;
  const Tensor p = pact_quantize(Var(t), Var(Tensor::full(Shape{1}, 1.0f)), 2).value();
  const Tensor d = quantize_activation(Var(t), 2).value();
  for (int64_t i = 0; i < t.numel(); ++i) CHECK(p.f32()[i] == d.f32()[i]);
}

TEST_CASE("pact_quantize rounds exactly as the runtime's quantizer with the export's 1/alpha",
          "[quant]") {
  // The export writes a learned-clip quantizer as mul = 1/alpha (train/export.cpp) and the runtime
  // computes x*mul; x/alpha can round to the other side of a tie. Scan values a few ulps around
  // every tie alpha*(j+1/2)/3 for several alphas: every code must match.
  std::vector<float> xs;
  const std::vector<float> alphas = {0.7f, 1.3f, 2.9f, 3.7f, 5.3f, 6.1f, 7.7f};
  for (float alpha : alphas)
    for (int j = 0; j < 3; ++j) {
      float x = alpha * (float(j) + 0.5f) / 3.0f;
      for (int k = 0; k < 24; ++k) x = std::nextafter(x, 0.0f);
      for (int k = 0; k < 48; ++k, x = std::nextafter(x, 100.0f)) xs.push_back(x);
    }
  const int64_t per = int64_t(xs.size() / alphas.size());
  int64_t division_differs = 0;
  for (size_t ai = 0; ai < alphas.size(); ++ai) {
    const float alpha = alphas[ai], mul = 1.0f / alpha;
    const std::vector<float> x(xs.begin() + int64_t(ai) * per, xs.begin() + int64_t(ai + 1) * per);
    NoGradGuard g;
    const Tensor t = Tensor::from_vector(Shape{int64_t(x.size())}, x);
    const Tensor y = pact_quantize(Var(t), Var(Tensor::full(Shape{1}, alpha)), 2).value();
    std::vector<uint64_t> packed(x.size() * 2);
    // One channel per pixel: codes [pixels][2 bits][1 word].
    quantize_pack_act(x.data(), int64_t(x.size()), 1, 2, &mul, nullptr, packed.data());
    std::vector<uint8_t> rt(x.size());
    unpack_act_q(packed.data(), int64_t(x.size()), 1, 2, rt.data());
    for (size_t i = 0; i < x.size(); ++i) {
      const int mine = int(std::lround(y.f32()[i] / alpha * 3.0f));
      INFO("alpha " << alpha << " x " << x[i]);
      CHECK(mine == int(rt[i]));
      const float by_division = std::nearbyint(std::min(1.0f, x[i] / alpha) * 3.0f);
      division_differs += by_division != float(rt[i]);
    }
  }
  // The scan does reach values where x/alpha would have disagreed (the test can fail).
  CHECK(division_differs > 0);
}

TEST_CASE("pact_quantize rejects a non-positive clip and bad bit widths", "[quant]") {
  const Var x(Tensor::full(Shape{2}, 0.5f));
  CHECK_THROWS_WITH(pact_quantize(x, Var(Tensor::full(Shape{1}, 0.0f)), 2),
                    Catch::Contains("alpha must be > 0"));
  CHECK_THROWS_WITH(pact_quantize(x, Var(Tensor::full(Shape{1}, 1.0f)), 9),
                    Catch::Contains("bits must be 1..8 or 32"));
}
