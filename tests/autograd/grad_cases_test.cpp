// THE gradient-check table: one finite-difference case per op (and per interesting mode), run by
// GENERATE over all cases. Inputs are kept away from kinks: relu/abs away from 0, clamp away from
// its edges, pool windows and max_all without near-ties (distinct values 0.05 apart >> eps).
#include <algorithm>
#include <numeric>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::random_tensor;

namespace {

struct GradCase {
  std::string name;
  std::vector<Tensor> inputs;
  GradcheckFn fn;
  GradcheckOptions options{};
};

// Uniform magnitude in [lo, hi] with a random sign: far from 0.
Tensor away_from_zero(const Shape& s, Rng& rng, float lo = 0.1f, float hi = 1.0f) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>()) v = rng.uniform(lo, hi) * (rng.uniform() < 0.5f ? -1.0f : 1.0f);
  return t;
}

// Distinct values spaced `gap` apart in random order, centred on 0: no ties within eps.
Tensor distinct(const Shape& s, Rng& rng, float gap = 0.05f) {
  const int64_t n = s.numel();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i + 1)]);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = (static_cast<float>(perm[i]) - n / 2.0f) * gap;
  return t;
}

// Uniform in [lo, hi] but never within `margin` of the clamp edges a or b.
Tensor away_from(const Shape& s, Rng& rng, float a, float b, float margin = 0.05f) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>()) {
    do v = rng.uniform(-1.0f, 1.0f);
    while (std::fabs(v - a) < margin || std::fabs(v - b) < margin);
  }
  return t;
}

Tensor labels_i32(const Shape& s, Rng& rng, int classes, float ignore_frac) {
  Tensor t = Tensor::empty(s, DType::i32);
  for (int32_t& v : t.span<int32_t>())
    v = rng.uniform() < ignore_frac ? 255 : static_cast<int32_t>(rng.randint(0, classes));
  return t;
}

std::vector<GradCase> make_cases() {
  Rng rng(1234);
  const Shape s{2, 3, 5, 5};
  std::vector<GradCase> c;
  auto add_case = [&c](std::string name, std::vector<Tensor> in, GradcheckFn fn,
                       GradcheckOptions opt = {}) {
    c.push_back({std::move(name), std::move(in), std::move(fn), opt});
  };
  const Tensor one = Tensor::full(Shape{1}, 0.7f);

  // ---- elementwise ----
  add_case("add", {random_tensor(s, rng), random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return add(v[0], v[1]); });
  add_case("add scalar b", {random_tensor(s, rng), one.clone()},
           [](const std::vector<Var>& v) { return add(v[0], v[1]); });
  add_case("sub", {random_tensor(s, rng), random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return sub(v[0], v[1]); });
  add_case("sub scalar b", {random_tensor(s, rng), one.clone()},
           [](const std::vector<Var>& v) { return sub(v[0], v[1]); });
  add_case("mul", {random_tensor(s, rng), random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return mul(v[0], v[1]); });
  add_case("mul scalar b", {random_tensor(s, rng), one.clone()},
           [](const std::vector<Var>& v) { return mul(v[0], v[1]); });
  add_case("div", {random_tensor(s, rng), away_from_zero(s, rng, 0.5f, 1.5f)},
           [](const std::vector<Var>& v) { return div(v[0], v[1]); });
  add_case("div scalar b", {random_tensor(s, rng), one.clone()},
           [](const std::vector<Var>& v) { return div(v[0], v[1]); });
  add_case("scale", {random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return scale(v[0], -1.7f); });
  add_case("add_scalar", {random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return add_scalar(v[0], 0.3f); });
  add_case("relu", {away_from_zero(s, rng)}, [](const std::vector<Var>& v) { return relu(v[0]); });
  add_case("clamp", {away_from(s, rng, -0.5f, 0.5f)},
           [](const std::vector<Var>& v) { return clamp(v[0], -0.5f, 0.5f); });
  add_case("tanh", {random_tensor(s, rng, -2.0f, 2.0f)},
           [](const std::vector<Var>& v) { return bfcn::tanh(v[0]); });
  add_case("abs", {away_from_zero(s, rng)},
           [](const std::vector<Var>& v) { return bfcn::abs(v[0]); });

  // ---- reductions and shape ----
  add_case("sum", {random_tensor(s, rng)}, [](const std::vector<Var>& v) { return sum(v[0]); });
  add_case("mean", {random_tensor(s, rng)}, [](const std::vector<Var>& v) { return mean(v[0]); });
  add_case("max_all", {distinct(s, rng)}, [](const std::vector<Var>& v) { return max_all(v[0]); });
  add_case("reshape", {random_tensor(s, rng)}, [](const std::vector<Var>& v) {
    return reshape(v[0], Shape{6, 25});
  });
  add_case("concat_channels",
           {random_tensor(s, rng), random_tensor(Shape{2, 1, 5, 5}, rng),
            random_tensor(Shape{2, 2, 5, 5}, rng)},
           [](const std::vector<Var>& v) {
             return concat_channels({v[0], v[1], v[2]});
           });

  // ---- pooling ----
  const auto pool = [](int k, int st, int p, bool ceil, bool include_pad) {
    Pool2dArgs a = Pool2dArgs::square(k, st, p);
    a.ceil_mode = ceil;
    a.count_include_pad = include_pad;
    return a;
  };
  add_case("max_pool2d k2s2", {distinct(s, rng)},
           [](const std::vector<Var>& v) { return max_pool2d(v[0], Pool2dArgs::square(2, 2)); });
  add_case("max_pool2d k3s2p1 ceil", {distinct(s, rng)}, [pool](const std::vector<Var>& v) {
    return max_pool2d(v[0], pool(3, 2, 1, true, true));
  });
  add_case("max_pool2d k3s1 overlapping", {distinct(s, rng)},
           [](const std::vector<Var>& v) { return max_pool2d(v[0], Pool2dArgs::square(3, 1)); });
  add_case("avg_pool2d k2s2 ceil", {random_tensor(s, rng)}, [pool](const std::vector<Var>& v) {
    return avg_pool2d(v[0], pool(2, 2, 0, true, true));
  });
  add_case(
      "avg_pool2d k3s2p1 include_pad", {random_tensor(s, rng)},
      [pool](const std::vector<Var>& v) { return avg_pool2d(v[0], pool(3, 2, 1, false, true)); });
  add_case(
      "avg_pool2d k3s2p1 ceil exclude_pad", {random_tensor(s, rng)},
      [pool](const std::vector<Var>& v) { return avg_pool2d(v[0], pool(3, 2, 1, true, false)); });
  add_case("global_avg_pool", {random_tensor(s, rng)},
           [](const std::vector<Var>& v) { return global_avg_pool(v[0]); });

  // ---- batch norm (running stats are copied per call so every evaluation sees the same) ----
  const Tensor rm = random_tensor(Shape{3}, rng, -0.5f, 0.5f);
  const Tensor rv = random_tensor(Shape{3}, rng, 0.5f, 1.5f);
  const auto bn = [rm, rv](const Var& x, const Var& g, const Var& b, bool training) {
    Tensor m = rm.clone(), v = rv.clone();
    return batch_norm2d(x, g, b, m, v, training);
  };
  add_case("batch_norm2d train",
           {random_tensor(s, rng, -2.0f, 2.0f), random_tensor(Shape{3}, rng, 0.5f, 1.5f),
            random_tensor(Shape{3}, rng)},
           [bn](const std::vector<Var>& v) { return bn(v[0], v[1], v[2], true); });
  add_case("batch_norm2d train no affine", {random_tensor(s, rng, -2.0f, 2.0f)},
           [bn](const std::vector<Var>& v) { return bn(v[0], Var(), Var(), true); });
  add_case("batch_norm2d eval",
           {random_tensor(s, rng, -2.0f, 2.0f), random_tensor(Shape{3}, rng, 0.5f, 1.5f),
            random_tensor(Shape{3}, rng)},
           [bn](const std::vector<Var>& v) { return bn(v[0], v[1], v[2], false); });

  // ---- upsample ----
  for (bool ac : {false, true}) {
    const std::string tag = ac ? " align_corners" : "";
    add_case("upsample_bilinear up 5x5->8x11" + tag, {random_tensor(s, rng)},
             [ac](const std::vector<Var>& v) { return upsample_bilinear(v[0], 8, 11, ac); });
    add_case("upsample_bilinear down 5x5->3x2" + tag, {random_tensor(s, rng)},
             [ac](const std::vector<Var>& v) { return upsample_bilinear(v[0], 3, 2, ac); });
  }

  // ---- dropout (a fresh Rng of the same seed per call: the same mask each time) ----
  add_case("dropout p=0.3", {random_tensor(s, rng)}, [](const std::vector<Var>& v) {
    Rng r(7);
    return dropout(v[0], 0.3f, true, r);
  });

  // ---- loss ----
  const Tensor labels = labels_i32(Shape{2, 5, 5}, rng, 3, 0.2f);
  std::vector<uint8_t> lab_u8(50);
  for (int i = 0; i < 50; ++i) lab_u8[i] = static_cast<uint8_t>(labels.data<int32_t>()[i]);
  const Tensor labels_u8 = Tensor::from_vector_u8(Shape{2, 5, 5}, lab_u8);
  const Tensor weights = Tensor::from_vector(Shape{3}, {0.5f, 2.0f, 1.25f});
  add_case("softmax_cross_entropy ignore", {random_tensor(s, rng, -2.0f, 2.0f)},
           [labels](const std::vector<Var>& v) { return softmax_cross_entropy(v[0], labels); });
  add_case("softmax_cross_entropy u8 weights", {random_tensor(s, rng, -2.0f, 2.0f)},
           [labels_u8, weights](const std::vector<Var>& v) {
             return softmax_cross_entropy(v[0], labels_u8, 255, weights);
           });

  // ---- low-bit recipe ----
  // pact_quantize at k = 32 is clamp(x, 0, alpha) exactly: its x and alpha gradients are true
  // derivatives (x kept away from the kinks at 0 and alpha = 0.6; the STE part is pinned by
  // tests/quant). alpha is the second input, so its gradient (a sum) is checked too.
  add_case("pact_quantize k=32 (x and alpha)",
           {away_from(s, rng, 0.0f, 0.6f), Tensor::full(Shape{1}, 0.6f)},
           [](const std::vector<Var>& v) { return pact_quantize(v[0], v[1], 32); });
  const Tensor teacher = random_tensor(s, rng, -2.0f, 2.0f);
  add_case("distill_kl T=2", {random_tensor(s, rng, -2.0f, 2.0f)},
           [teacher](const std::vector<Var>& v) { return distill_kl(v[0], teacher, 2.0f); });
  add_case("distill_kl T=1", {random_tensor(s, rng, -2.0f, 2.0f)},
           [teacher](const std::vector<Var>& v) { return distill_kl(v[0], teacher, 1.0f); });

  // ---- conv2d (implemented by "conv" in autograd/ops/conv2d.cpp) ----
  const auto conv_case = [&](std::string name, Shape w_shape, bool bias, Conv2dArgs a) {
    std::vector<Tensor> in{random_tensor(s, rng), random_tensor(w_shape, rng)};
    if (bias) in.push_back(random_tensor(Shape{w_shape[0]}, rng));
    add_case(std::move(name), std::move(in), [a, bias](const std::vector<Var>& v) {
      return conv2d(v[0], v[1], bias ? v[2] : Var(), a);
    });
  };
  conv_case("conv2d 3x3 stride 2 pad 1 bias", Shape{4, 3, 3, 3}, true, Conv2dArgs::square(2, 1));
  conv_case("conv2d 3x3 dilation 2 pad 2", Shape{4, 3, 3, 3}, false, Conv2dArgs::square(1, 2, 2));
  conv_case("conv2d groups 3 bias", Shape{6, 1, 3, 3}, true, Conv2dArgs::square(1, 1, 1, 3));
  conv_case("conv2d 1x1 no bias", Shape{5, 3, 1, 1}, false, Conv2dArgs::square(1, 0));
  conv_case("conv2d 2x3 asymmetric stride/pad", Shape{2, 3, 2, 3}, true,
            Conv2dArgs{1, 2, 1, 0, 1, 1, 1});
  return c;
}

const std::vector<GradCase>& cases() {
  static const std::vector<GradCase> all = make_cases();
  return all;
}

}  // namespace

TEST_CASE("gradcheck: every op against central differences", "[gradcheck]") {
  const size_t i = GENERATE(range(size_t{0}, cases().size()));
  const GradCase& gc = cases()[i];
  INFO("case " << i << ": " << gc.name);
  const GradcheckResult r = gradcheck(gc.fn, gc.inputs, gc.options);
  INFO(r.message());
  CHECK(r.ok);
}

TEST_CASE("gradcheck detects a wrong gradient", "[gradcheck]") {
  // A deliberately broken op: forward 2x, backward claims 3x.
  const GradcheckFn broken = [](const std::vector<Var>& v) {
    return make_op("broken", scale(v[0], 2.0f).value(), {v[0]},
                   [](const Tensor& dy, const GradMask&) {
                     Tensor dx = dy.clone();
                     for (float& g : dx.span<float>()) g *= 3.0f;
                     return std::vector<Tensor>{dx};
                   });
  };
  Rng rng(3);
  const GradcheckResult r = gradcheck(broken, {random_tensor(Shape{4}, rng)});
  CHECK_FALSE(r.ok);
  CHECK(r.worst_input == 0);
  CHECK(r.message().find("gradcheck failed") != std::string::npos);
}
