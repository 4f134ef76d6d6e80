// Module tree: torchvision-style parameter/buffer names and order, train/eval propagation,
// parameter_count, zero_grad and shallow handles.
#include "layers/module.h"

#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/conv.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

// A ResNet-like basic block: conv1 -> bn1 -> act -> conv2 -> bn2 (+ downsample.0/1).
class Block : public Module {
 public:
  Block(int c_in, int c_out, Rng& rng, bool down) : Module("Block") {
    conv1 = register_module("conv1", std::make_shared<QConv2d>(Conv2dOptions{c_in, c_out, 3, 1, 1},
                                                               QuantSpec{1, 2}, rng));
    bn1 = register_module("bn1", std::make_shared<BatchNorm2d>(c_out));
    act = register_module("act", std::make_shared<QuantAct>(2));
    conv2 = register_module("conv2",
                            std::make_shared<Conv2d>(Conv2dOptions{c_out, c_out, 3, 1, 1}, rng));
    bn2 = register_module("bn2", std::make_shared<BatchNorm2d>(c_out));
    if (down) {
      auto seq = register_module("downsample", std::make_shared<Holder>());
      seq->add("0", std::make_shared<Conv2d>(Conv2dOptions{c_in, c_out, 1}, rng));
      seq->add("1", std::make_shared<BatchNorm2d>(c_out));
    }
  }
  Var forward(const Var& x) override {
    return bn2->forward(conv2->forward(act->forward(bn1->forward(conv1->forward(x)))));
  }
  std::shared_ptr<QConv2d> conv1;
  std::shared_ptr<BatchNorm2d> bn1, bn2;
  std::shared_ptr<QuantAct> act;
  std::shared_ptr<Conv2d> conv2;

  class Holder : public Module {
   public:
    Holder() : Module("Holder") {}
    void add(const std::string& n, std::shared_ptr<Module> m) { register_module(n, std::move(m)); }
    Var forward(const Var& x) override { return x; }
  };
};

class Net : public Module {
 public:
  explicit Net(Rng& rng) : Module("Net") {
    stem = register_module("conv1",
                           std::make_shared<Conv2d>(Conv2dOptions{3, 4, 3, 1, 1, 1, 1, true}, rng));
    auto layer1 = register_module("layer1", std::make_shared<Block::Holder>());
    b0 = std::make_shared<Block>(4, 6, rng, true);
    layer1->add("0", b0);
  }
  Var forward(const Var& x) override { return b0->forward(stem->forward(x)); }
  std::shared_ptr<Conv2d> stem;
  std::shared_ptr<Block> b0;
};

std::vector<std::string> names_of(const auto& items) {
  std::vector<std::string> out;
  for (const auto& [n, v] : items) out.push_back(n);
  return out;
}

}  // namespace

TEST_CASE("named_parameters and named_buffers use dotted torchvision names in order", "[layers]") {
  Rng rng(1);
  Net net(rng);
  CHECK(names_of(net.named_parameters()) ==
        std::vector<std::string>{"conv1.weight", "conv1.bias", "layer1.0.conv1.weight",
                                 "layer1.0.bn1.weight", "layer1.0.bn1.bias",
                                 "layer1.0.conv2.weight", "layer1.0.bn2.weight",
                                 "layer1.0.bn2.bias", "layer1.0.downsample.0.weight",
                                 "layer1.0.downsample.1.weight", "layer1.0.downsample.1.bias"});
  CHECK(names_of(net.named_buffers()) ==
        std::vector<std::string>{"layer1.0.bn1.running_mean", "layer1.0.bn1.running_var",
                                 "layer1.0.bn2.running_mean", "layer1.0.bn2.running_var",
                                 "layer1.0.downsample.1.running_mean",
                                 "layer1.0.downsample.1.running_var"});
  CHECK(names_of(net.named_modules()) ==
        std::vector<std::string>{"", "conv1", "layer1", "layer1.0", "layer1.0.conv1",
                                 "layer1.0.bn1", "layer1.0.act", "layer1.0.conv2", "layer1.0.bn2",
                                 "layer1.0.downsample", "layer1.0.downsample.0",
                                 "layer1.0.downsample.1"});
  // Types.
  for (const auto& [n, m] : net.named_modules()) {
    if (n == "layer1.0.conv1") CHECK(m->type() == "QConv2d");
    if (n == "layer1.0.conv2") CHECK(m->type() == "Conv2d");
    if (n == "layer1.0.bn1") CHECK(m->type() == "BatchNorm2d");
    if (n == "layer1.0.act") CHECK(m->type() == "QuantAct");
  }
  // Shapes, and the count: conv1 4*3*9+4, block conv1 6*4*9, bn 2*6 x3, conv2 6*6*9, down 6*4.
  const auto params = net.named_parameters();
  CHECK(params[0].second.shape() == Shape{4, 3, 3, 3});
  CHECK(params[1].second.shape() == Shape{4});
  CHECK(params[2].second.shape() == Shape{6, 4, 3, 3});
  CHECK(net.parameter_count() == 4 * 27 + 4 + 6 * 36 + 12 + 6 * 54 + 12 + 24 + 12);
}

TEST_CASE("train/eval propagates to every submodule", "[layers]") {
  Rng rng(2);
  Net net(rng);
  for (const auto& [n, m] : net.named_modules()) CHECK(m->training());
  net.eval();
  for (const auto& [n, m] : net.named_modules()) {
    INFO(n);
    CHECK_FALSE(m->training());
  }
  net.b0->train();
  CHECK_FALSE(net.training());
  CHECK(net.b0->bn1->training());
  net.train();
  for (const auto& [n, m] : net.named_modules()) CHECK(m->training());
}

TEST_CASE("handles are shallow and zero_grad clears every gradient", "[layers]") {
  Rng rng(3);
  Net net(rng);
  const Var x(test::random_tensor({2, 3, 6, 6}, rng), false);
  sum(net.forward(x)).backward();
  for (const auto& [n, p] : net.named_parameters()) {
    INFO(n);
    // downsample is not on the forward path of this test block.
    CHECK(p.grad().defined() == (n.find("downsample") == std::string::npos));
  }
  net.zero_grad();
  for (const auto& [n, p] : net.named_parameters()) CHECK_FALSE(p.grad().defined());
  // A write through named_parameters() is seen by the module.
  auto params = net.named_parameters();
  params[0].second.mutable_value().fill(0.25f);
  CHECK(net.stem->weight().value().f32()[5] == 0.25f);
  // And buffers returned by named_buffers() are the module's running statistics.
  auto bufs = net.named_buffers();
  bufs[0].second.fill(3.0f);
  CHECK(net.b0->bn1->running_mean().f32()[0] == 3.0f);
}

TEST_CASE("BatchNorm2d running statistics update through the module in training only", "[layers]") {
  Rng rng(4);
  BatchNorm2d bn(3, 1e-5f, 0.1f);
  CHECK(bn.eps() == 1e-5f);
  CHECK(bn.momentum() == 0.1f);
  CHECK(bn.weight().value().to_vector() == std::vector<float>{1, 1, 1});
  CHECK(bn.bias().value().to_vector() == std::vector<float>{0, 0, 0});
  CHECK(bn.running_mean().to_vector() == std::vector<float>{0, 0, 0});
  CHECK(bn.running_var().to_vector() == std::vector<float>{1, 1, 1});

  const Tensor xt = test::random_tensor({4, 3, 5, 5}, rng, -1.0f, 3.0f);
  const Var x(xt, false);
  bn.forward(x);
  const auto bufs = bn.named_buffers();
  REQUIRE(bufs.size() == 2);
  const int64_t per = 4 * 25;
  for (int c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    for (int n = 0; n < 4; ++n)
      for (int i = 0; i < 25; ++i) {
        const double v = xt.f32()[(n * 3 + c) * 25 + i];
        s += v;
        s2 += v * v;
      }
    const double mean = s / per, var_unbiased = (s2 - per * mean * mean) / (per - 1);
    CHECK(bufs[0].second.f32()[c] == Approx(0.1 * mean).epsilon(1e-4));
    CHECK(bufs[1].second.f32()[c] == Approx(0.9 + 0.1 * var_unbiased).epsilon(1e-4));
  }
  // Eval: uses and keeps the running statistics.
  bn.eval();
  const std::vector<float> rm = bn.running_mean().to_vector(), rv = bn.running_var().to_vector();
  const Tensor y = bn.forward(x).value();
  CHECK(bn.running_mean().to_vector() == rm);
  CHECK(bn.running_var().to_vector() == rv);
  for (int c = 0; c < 3; ++c) {
    const int64_t i = (1 * 3 + c) * 25 + 7;
    CHECK(y.f32()[i] ==
          Approx((xt.f32()[i] - rm[size_t(c)]) / std::sqrt(rv[size_t(c)] + 1e-5f)).margin(1e-5));
  }
  CHECK_THROWS_AS(bn.forward(Var(Tensor::zeros({1, 4, 2, 2}))), Error);
  CHECK_THROWS_AS(BatchNorm2d(0), Error);
}
