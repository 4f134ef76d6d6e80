// Conv2d / QConv2d / QuantAct / init: QConv2d's forward equals conv2d of independently (by hand)
// quantized weights and activations, its master-weight gradient is the STE one, init statistics.
#include "layers/conv.h"

#include <cmath>

#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/init.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::all_close;
using bfcn::test::random_tensor;

namespace {

// DoReFa by hand on raw floats (double where it matters), independent of autograd/quant.cpp.
Tensor hand_activation(const Tensor& x, int k) {
  const float n = float((1 << k) - 1);
  Tensor y = x.clone();
  for (float& v : y.span<float>()) v = std::nearbyint(std::min(1.0f, std::max(0.0f, v)) * n) / n;
  return y;
}

Tensor hand_weight(const Tensor& w, int k, bool per_channel) {
  Tensor y = w.clone();
  const int64_t K = w.dim(0), per = w.numel() / K;
  if (k == 1) {
    double total = 0;
    for (float v : w.to_vector()) total += std::fabs(v);
    for (int64_t c = 0; c < K; ++c) {
      double s = 0;
      for (int64_t i = 0; i < per; ++i) s += std::fabs(w.f32()[c * per + i]);
      const float e = static_cast<float>(per_channel ? s / double(per) : total / double(w.numel()));
      for (int64_t i = 0; i < per; ++i) y.f32()[c * per + i] = w.f32()[c * per + i] >= 0 ? e : -e;
    }
    return y;
  }
  const double n = double((1 << k) - 1);
  double m = 0;
  for (float v : w.to_vector()) m = std::max(m, std::fabs(std::tanh(double(v))));
  for (float& v : y.span<float>())
    v = static_cast<float>(2.0 * std::nearbyint((std::tanh(double(v)) / m * 0.5 + 0.5) * n) / n -
                           1.0);
  return y;
}

}  // namespace

TEST_CASE("Conv2d: torchvision parameter names, shapes and options", "[layers]") {
  Rng rng(1);
  Conv2d plain(Conv2dOptions{4, 6, 3, 2, 1}, rng);
  REQUIRE(plain.named_parameters().size() == 1);
  CHECK(plain.named_parameters()[0].first == "weight");
  CHECK(plain.weight().shape() == Shape{6, 4, 3, 3});
  CHECK_FALSE(plain.bias().defined());
  CHECK(plain.weight().requires_grad());
  Conv2d grouped(Conv2dOptions{4, 6, 3, 1, 1, 1, 2, true}, rng);
  REQUIRE(grouped.named_parameters().size() == 2);
  CHECK(grouped.named_parameters()[1].first == "bias");
  CHECK(grouped.weight().shape() == Shape{6, 2, 3, 3});
  CHECK(grouped.bias().shape() == Shape{6});
  const Var y = grouped.forward(Var(random_tensor({2, 4, 7, 7}, rng)));
  CHECK(y.shape() == Shape{2, 6, 7, 7});
  CHECK(plain.forward(Var(random_tensor({1, 4, 7, 7}, rng))).shape() == Shape{1, 6, 4, 4});

  auto message = [&](Conv2dOptions o) {
    try {
      Conv2d c(o, rng);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message({3, 4, 3, 1, 0, 1, 2}) == "Conv2d: groups (2) must divide in_channels (3)");
  CHECK(message({0, 4}) == "Conv2d: in_channels must be > 0, got 0");
  CHECK(message({2, 4, 3, 0}) == "Conv2d: stride must be > 0, got 0");
}

TEST_CASE("init: kaiming-normal fan_out weights, PyTorch-uniform bias, seeded", "[layers]") {
  Rng rng(2);
  Conv2d c(Conv2dOptions{32, 64, 3, 1, 1, 1, 1, true}, rng);
  const std::vector<float> w = c.weight().value().to_vector();
  double s = 0, s2 = 0;
  for (float v : w) {
    s += v;
    s2 += double(v) * v;
  }
  const double mean = s / double(w.size()), std = std::sqrt(s2 / double(w.size()) - mean * mean);
  CHECK(std::fabs(mean) < 0.005);
  CHECK(std == Approx(std::sqrt(2.0 / (64 * 9))).epsilon(0.03));
  const double bound = 1.0 / std::sqrt(32.0 * 9);
  double bmax = 0;
  for (float v : c.bias().value().to_vector()) bmax = std::max(bmax, double(std::fabs(v)));
  CHECK(bmax <= bound);
  CHECK(bmax > 0.5 * bound);
  CHECK(conv_fan_in(Shape{64, 16, 3, 3}) == 144);
  CHECK(conv_fan_out(Shape{64, 16, 3, 3}) == 576);
  // The same seed gives the same weights; another seed different ones.
  Rng a(7), b(7), d(8);
  Conv2d ca(Conv2dOptions{3, 4}, a), cb(Conv2dOptions{3, 4}, b), cd(Conv2dOptions{3, 4}, d);
  CHECK(ca.weight().value().to_vector() == cb.weight().value().to_vector());
  CHECK(ca.weight().value().to_vector() != cd.weight().value().to_vector());
}

TEST_CASE("QConv2d forward equals conv2d of hand-quantized weights and activations", "[layers]") {
  struct Case {
    QuantSpec q;
    Conv2dOptions o;
  };
  const Case cases[] = {
      {{1, 2, 32, false}, {4, 5, 3, 1, 1}},
      {{1, 2, 32, true}, {4, 5, 3, 1, 1}},
      {{2, 2, 32, false}, {4, 6, 3, 2, 1, 1, 2, true}},
      {{3, 4, 32, false}, {4, 3, 1, 1, 0}},
      {{1, 1, 32, false}, {4, 4, 3, 1, 2, 2}},
  };
  for (const Case& c : cases) {
    Rng rng(3);
    QuantAct act(c.q.a_bits);
    QConv2d conv(c.o, c.q, rng);
    CHECK(conv.quant() == c.q);
    CHECK(conv.type() == "QConv2d");
    const Tensor xt = random_tensor({2, 4, 6, 6}, rng, -0.5f, 1.5f);
    const Var y = conv.forward(act.forward(Var(xt)));
    const Tensor xq = hand_activation(xt, c.q.a_bits);
    const Tensor wq = hand_weight(conv.weight().value(), c.q.w_bits, c.q.w_scale_channel);
    INFO("w_bits " << c.q.w_bits << " a_bits " << c.q.a_bits << " channel " << c.q.w_scale_channel);
    CHECK(act.forward(Var(xt)).value().to_vector() == xq.to_vector());
    CHECK(all_close(conv.quantized_weight().value(), wq, 1e-6f, 1e-6f));
    const Var bias = c.o.bias ? Var(conv.bias().value()) : Var();
    const Tensor want = conv2d(Var(xq), Var(wq), bias, c.o.args()).value();
    CHECK(all_close(y.value(), want, 1e-5f, 1e-5f));
    if (c.q.w_bits == 1) CHECK(y.value().to_vector() == want.to_vector());  // same inputs exactly
  }
}

TEST_CASE("QConv2d: master weights stay FP32 and get the straight-through gradient", "[layers]") {
  Rng rng(4);
  const Conv2dOptions o{3, 4, 3, 1, 1};
  QConv2d conv(o, QuantSpec{1, 2}, rng);
  const Tensor w0 = conv.weight().value().clone();
  const Tensor xt = random_tensor({2, 3, 5, 5}, rng, 0.0f, 1.0f);
  const Tensor seed = random_tensor({2, 4, 5, 5}, rng);
  conv.forward(Var(xt)).backward(seed);
  CHECK(conv.weight().value().to_vector() == w0.to_vector());  // not overwritten by levels
  // Reference: d/dWq of conv2d(x, Wq), which the 1-bit STE passes to W unchanged.
  const Var wq(hand_weight(w0, 1, false), true);
  conv2d(Var(xt), wq, Var(), o.args()).backward(seed);
  CHECK(conv.weight().grad().to_vector() == wq.grad().to_vector());

  // w_bits 32 is exactly Conv2d with the same initial weights.
  Rng r1(5), r2(5);
  Conv2d fp(o, r1);
  QConv2d q32(o, QuantSpec{32, 32}, r2);
  CHECK(q32.forward(Var(xt)).value().to_vector() == fp.forward(Var(xt)).value().to_vector());
  CHECK_THROWS_AS(QConv2d(o, QuantSpec{0, 2}, rng), ConfigError);
  CHECK_THROWS_AS(QConv2d(o, QuantSpec{1, 2, 12}, rng), ConfigError);
}

TEST_CASE("QConv2d with g_bits quantizes the gradient at its output, deterministically",
          "[layers]") {
  auto run = [](uint64_t seed) {
    Rng rng(seed);
    QConv2d conv(Conv2dOptions{3, 4, 3, 1, 1}, QuantSpec{1, 2, 4}, rng);
    Rng data(9);
    const Var x(random_tensor({2, 3, 5, 5}, data, 0.0f, 1.0f), true);
    conv.forward(x).backward(random_tensor({2, 4, 5, 5}, data));
    return std::make_pair(conv.weight().grad().to_vector(), x.grad().to_vector());
  };
  const auto a = run(1), b = run(1);
  CHECK(a == b);
  // Against the unquantized gradient: close in aggregate (dithered 4-bit), but not equal.
  Rng rng(1);
  QConv2d plain(Conv2dOptions{3, 4, 3, 1, 1}, QuantSpec{1, 2, 32}, rng);
  Rng data(9);
  const Var x(random_tensor({2, 3, 5, 5}, data, 0.0f, 1.0f), true);
  plain.forward(x).backward(random_tensor({2, 4, 5, 5}, data));
  const std::vector<float> ref = plain.weight().grad().to_vector();
  CHECK(ref != a.first);
  double err = 0, norm = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    err += (ref[i] - a.first[i]) * (ref[i] - a.first[i]);
    norm += ref[i] * ref[i];
  }
  CHECK(std::sqrt(err / norm) < 0.2);
}

TEST_CASE("QuantAct: ReLU at 32 bits, clip + k-bit levels otherwise", "[layers]") {
  const Var x(Tensor::from_vector({6}, {-1.0f, 0.0f, 0.2f, 0.5f, 0.9f, 2.0f}), true);
  QuantAct fp(32);
  CHECK(fp.a_bits() == 32);
  CHECK(fp.forward(x).value().to_vector() == std::vector<float>{0, 0, 0.2f, 0.5f, 0.9f, 2.0f});
  QuantAct q2(2);
  CHECK(q2.forward(x).value().to_vector() ==
        std::vector<float>{0, 0, 1.0f / 3, 2.0f / 3, 1.0f, 1.0f});
  ReLU relu_mod;
  CHECK(relu_mod.forward(x).value().to_vector() == fp.forward(x).value().to_vector());
  CHECK_THROWS_AS(QuantAct(0), ConfigError);
  CHECK_THROWS_AS(QuantAct(2, 9), ConfigError);
  CHECK(q2.named_parameters().empty());
}

TEST_CASE("QuantAct with a learned clip: parameter, calibration from samples, levels", "[layers]") {
  QuantAct q(2, 32, 0, /*learned_clip=*/true);
  REQUIRE(q.learned_clip());
  REQUIRE(q.named_parameters().size() == 1);
  CHECK(q.named_parameters()[0].first == "clip");
  CHECK(q.clip_value() == 1.0f);  // DoReFa's clip until calibrated
  // Calibration: forward is the FP ReLU while recording; the clip then fits the data's range.
  Rng rng(3);
  const Tensor big = test::random_tensor(Shape{1, 4, 16, 16}, rng, -3.0f, 3.0f);
  q.begin_calibration();
  const Tensor during = q.forward(Var(big)).value();
  for (int64_t i = 0; i < big.numel(); ++i) CHECK(during.f32()[i] == std::max(0.0f, big.f32()[i]));
  const float a = q.end_calibration();
  CHECK(a == q.clip_value());
  CHECK(a > 1.5f);  // uniform on [0,3]: the MSE-optimal 2-bit clip is well above DoReFa's 1
  CHECK(a <= 3.0f);
  // After calibration the levels are a*j/3.
  const Tensor y = q.forward(Var(big)).value();
  for (int64_t i = 0; i < y.numel(); ++i) {
    const float j = y.f32()[i] * 3.0f / a;
    CHECK(std::fabs(j - std::nearbyint(j)) < 1e-4f);
  }
  // The fixed-clip QuantAct has nothing to calibrate.
  QuantAct fixed(2);
  fixed.begin_calibration();
  CHECK_FALSE(fixed.calibrating());
  CHECK(fixed.end_calibration() == 1.0f);
}

TEST_CASE("mse_optimal_clip scales with the data and prefers the bulk over outliers", "[layers]") {
  std::vector<float> x;
  Rng rng(9);
  for (int i = 0; i < 20000; ++i) x.push_back(rng.uniform(0.0f, 1.0f));
  const float a1 = mse_optimal_clip(x, 2);
  std::vector<float> x3;
  for (float v : x) x3.push_back(3.0f * v);
  CHECK(mse_optimal_clip(x3, 2) == Approx(3.0f * a1).epsilon(0.02));
  // One outlier whose squared error (49^2) is below the bulk's (~20000/3 at a clip of 50) must
  // not stretch the clip to 50; a grid of max/100 steps gives 0.5 or 1 here.
  x.push_back(50.0f);
  CHECK(mse_optimal_clip(x, 2) <= 1.0f);
  CHECK(mse_optimal_clip({-1.0f, -2.0f}, 2) == 1.0f);  // no positive value: DoReFa's clip
}

TEST_CASE("QuantAct observer sees input and output, may overwrite the output, and can be removed",
          "[layers]") {
  const Var x(Tensor::from_vector({4}, {-1.0f, 0.2f, 0.5f, 0.9f}), false);
  QuantAct q(2);
  int calls = 0;
  std::vector<float> seen_in, seen_out;
  q.set_observer([&](const Tensor& in, Tensor& out) {
    ++calls;
    seen_in = in.to_vector();
    seen_out = out.to_vector();
    out.f32()[1] = 1.0f;  // the code the caller wants instead of round(0.2*3)/3 = 1/3
  });
  const std::vector<float> y = q.forward(x).value().to_vector();
  CHECK(calls == 1);
  CHECK(seen_in == std::vector<float>{-1.0f, 0.2f, 0.5f, 0.9f});
  CHECK(seen_out == std::vector<float>{0.0f, 1.0f / 3, 2.0f / 3, 1.0f});
  CHECK(y == std::vector<float>{0.0f, 1.0f, 2.0f / 3, 1.0f});
  q.set_observer({});
  CHECK(q.forward(x).value().to_vector() == seen_out);
  CHECK(calls == 1);
  // A 32-bit QuantAct is a ReLU with no quantizer: nothing to observe.
  QuantAct fp(32);
  fp.set_observer([&](const Tensor&, Tensor&) { ++calls; });
  (void)fp.forward(x);
  CHECK(calls == 1);
}
