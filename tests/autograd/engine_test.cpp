// Engine semantics of Var/backward: accumulation, no-grad mode, closure freeing, seeding rules,
// repeated backward calls and the need-mask.
#include <algorithm>

#include "autograd/ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {
Var leaf(std::vector<float> v, bool rg = true) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Var(Tensor::from_vector(Shape{n}, v), rg);
}
}  // namespace

TEST_CASE("a value used twice gets the sum of both gradients", "[engine]") {
  Var x = leaf({1.0f, -2.0f, 3.0f});
  Var y = mul(x, x);  // dy/dx = 2x through both operands
  sum(add(y, x)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{3.0f, -3.0f, 7.0f});
}

TEST_CASE("a gradient handed to two inputs is not aliased", "[engine]") {
  // add() gives dy to both a and b; later accumulation into a must not change b's gradient.
  Var a = leaf({1.0f, 2.0f});
  Var b = leaf({3.0f, 4.0f});
  Var s = add(a, b);
  sum(add(s, scale(a, 2.0f))).backward();
  CHECK(a.grad().to_vector() == std::vector<float>{3.0f, 3.0f});
  CHECK(b.grad().to_vector() == std::vector<float>{1.0f, 1.0f});
}

TEST_CASE("NoGradGuard records nothing", "[engine]") {
  Var x = leaf({1.0f, 2.0f});
  Var y;
  {
    NoGradGuard guard;
    CHECK_FALSE(grad_enabled());
    y = relu(mul(x, x));
  }
  CHECK(grad_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.node()->inputs.empty());
  CHECK_FALSE(static_cast<bool>(y.node()->backward));
  CHECK(y.value().to_vector() == std::vector<float>{1.0f, 4.0f});
  CHECK_THROWS_AS(sum(y).backward(), Error);
}

TEST_CASE("backward frees closures and edges of the graph", "[engine]") {
  Var x = leaf({1.0f, 2.0f});
  Var h = tanh(x);
  Var y = sum(h);
  REQUIRE(static_cast<bool>(h.node()->backward));
  y.backward();
  CHECK_FALSE(static_cast<bool>(h.node()->backward));
  CHECK_FALSE(static_cast<bool>(y.node()->backward));
  CHECK(h.node()->inputs.empty());
  CHECK_FALSE(h.grad().defined());  // intermediate gradients are not kept
  CHECK(x.grad().defined());
}

TEST_CASE("backward of a non-scalar needs a seed", "[engine]") {
  Var x = leaf({1.0f, 2.0f});
  Var y = scale(x, 3.0f);
  CHECK_THROWS_WITH(y.backward(), Catch::Contains("needs a scalar"));
  y.backward(Tensor::from_vector(Shape{2}, {1.0f, 10.0f}));
  CHECK(x.grad().to_vector() == std::vector<float>{3.0f, 30.0f});
}

TEST_CASE("leaves accumulate across two backward calls until zero_grad", "[engine]") {
  Var x = leaf({1.0f, 2.0f});
  sum(scale(x, 2.0f)).backward();
  sum(scale(x, 5.0f)).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{7.0f, 7.0f});
  x.zero_grad();
  CHECK_FALSE(x.grad().defined());
  sum(x).backward();
  CHECK(x.grad().to_vector() == std::vector<float>{1.0f, 1.0f});
}

TEST_CASE("the need-mask skips inputs that do not require grad", "[engine]") {
  Var a = leaf({1.0f, 2.0f}, true);
  Var b = leaf({3.0f, 4.0f}, false);
  sum(mul(a, b)).backward();
  CHECK(a.grad().to_vector() == std::vector<float>{3.0f, 4.0f});
  CHECK_FALSE(b.grad().defined());

  // A closure sees need[i] exactly as the inputs' requires_grad.
  GradMask seen;
  Var c = leaf({1.0f}, false);
  Var y = make_op("probe", Tensor::full(Shape{1}, 0.0f), {c, a},
                  [&seen](const Tensor& dy, const GradMask& need) {
                    seen = need;
                    return std::vector<Tensor>{Tensor(), Tensor::full(Shape{2}, dy.item())};
                  });
  y.backward();
  CHECK(seen == GradMask{false, true});
}

TEST_CASE("an op whose inputs need no grad returns a plain leaf", "[engine]") {
  Var x = leaf({1.0f}, false);
  Var y = tanh(x);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.node()->inputs.empty());
}

TEST_CASE("in-place backward closures leave the seed and sibling gradients intact", "[engine]") {
  // relu, clamp and batch_norm2d overwrite their own dy; the caller's seed and a value feeding
  // several such ops must still get exact gradients.
  const Tensor xt = Tensor::from_vector({4}, {-1.0f, 0.25f, 0.5f, 2.0f});
  Var x(xt, true);
  const Tensor seed = Tensor::from_vector({4}, {1.0f, 2.0f, 3.0f, 4.0f});
  Var y = add(relu(x), clamp(x, 0.0f, 1.0f));
  y.backward(seed);
  CHECK(seed.to_vector() == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
  // relu passes where x > 0, clamp where 0 <= x <= 1.
  CHECK(x.grad().to_vector() == std::vector<float>{0.0f, 4.0f, 6.0f, 4.0f});
  Var r = relu(x);
  r.backward(seed);  // a second pass accumulates into x.grad
  CHECK(x.grad().to_vector() == std::vector<float>{0.0f, 6.0f, 9.0f, 8.0f});
  CHECK(seed.to_vector() == std::vector<float>{1.0f, 2.0f, 3.0f, 4.0f});
}

TEST_CASE("backward reports each leaf gradient once, as soon as it is final", "[engine]") {
  // Three "layers" (w1 first, w3 last); w1 is also used by the last op, so its gradient is only
  // final once the first layer's op has run; x needs no gradient and u is not in the graph.
  Var x = leaf({1.0f, -2.0f}, false);
  Var w1 = leaf({0.5f, 2.0f}), w2 = leaf({-1.0f, 3.0f}), w3 = leaf({2.0f, 0.25f}),
      b3 = leaf({0.1f, 0.2f}), u = leaf({7.0f, 7.0f});
  Var h1 = relu(mul(x, w1));
  Var h2 = mul(h1, w2);
  Var out = sum(add(add(mul(h2, w3), b3), scale(w1, 3.0f)));
  std::vector<Node*> order;
  std::vector<Tensor> at_report;
  out.backward([&](Node& leaf) {
    order.push_back(&leaf);
    at_report.push_back(leaf.grad.defined() ? leaf.grad.clone() : Tensor());
  });
  REQUIRE(order.size() == 4);  // w1, w2, w3, b3 (not x, not u)
  auto pos = [&](const Var& v) {
    return std::find(order.begin(), order.end(), v.node().get()) - order.begin();
  };
  for (const Var* v : {&w1, &w2, &w3, &b3}) {
    const auto p = pos(*v);
    REQUIRE(p < 4);
    CHECK(at_report[size_t(p)].to_vector() == v->grad().to_vector());  // final when reported
  }
  CHECK(pos(w3) < pos(w2));  // reverse layer order
  CHECK(pos(b3) < pos(w2));
  CHECK(pos(w2) < pos(w1));
  CHECK(pos(u) == 4);
  // The gradients are those of a pass without the hook: w1 gets x*w2*w3 (relu open at x=1 only)
  // plus 3 from the last op.
  CHECK(w1.grad().to_vector() == std::vector<float>{1.0f * -1.0f * 2.0f + 3.0f, 3.0f});

  // Backward from a leaf reports that leaf; a leaf used twice by one op is reported once.
  Var w = leaf({1.0f, 2.0f});
  int reports = 0;
  w.backward(Tensor::full(Shape{2}, 1.0f), [&](Node& leaf) {
    CHECK(&leaf == w.node().get());
    ++reports;
  });
  CHECK(reports == 1);
  Var z = leaf({-1.0f, 2.0f});
  reports = 0;
  sum(mul(z, z)).backward([&](Node& leaf) {
    CHECK(&leaf == z.node().get());
    CHECK(leaf.grad.to_vector() == std::vector<float>{-2.0f, 4.0f});  // both operands' parts
    ++reports;
  });
  CHECK(reports == 1);
}
