// A tiny DoReFa FCN (FP first conv -> BN -> QuantAct -> [QConv2d -> BN -> QuantAct] x2 -> FP 1x1
// classifier) trained with plain momentum SGD written here, on a fixed synthetic segmentation task
// (label = the brightest input channel at each pixel): the loss must fall with W1A2 and W2A2.
#include <cstdio>

#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/conv.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

class TinyNet : public Module {
 public:
  TinyNet(const QuantSpec& q, Rng& rng) : Module("TinyNet") {
    const int c = 8;
    layers_.push_back(
        add("conv0", std::make_shared<Conv2d>(Conv2dOptions{3, c, 3, 1, 1, 1, 1, true}, rng)));
    for (int i = 0; i < 3; ++i) {
      if (i > 0)
        layers_.push_back(add("conv" + std::to_string(i),
                              std::make_shared<QConv2d>(Conv2dOptions{c, c, 3, 1, 1}, q, rng)));
      layers_.push_back(add("bn" + std::to_string(i), std::make_shared<BatchNorm2d>(c)));
      layers_.push_back(add("act" + std::to_string(i), std::make_shared<QuantAct>(q.a_bits)));
    }
    layers_.push_back(
        add("classifier", std::make_shared<Conv2d>(Conv2dOptions{c, 3, 1, 1, 0, 1, 1, true}, rng)));
  }
  Var forward(const Var& x) override {
    Var h = x;
    for (auto& m : layers_) h = m->forward(h);
    return h;
  }

 private:
  std::shared_ptr<Module> add(const std::string& n, std::shared_ptr<Module> m) {
    return register_module(n, std::move(m));
  }
  std::vector<std::shared_ptr<Module>> layers_;
};

// Returns the losses of every step.
std::vector<float> train(const QuantSpec& q, int steps) {
  Rng rng(42);
  TinyNet net(q, rng);
  const int N = 4, H = 8, W = 8;
  const Tensor x = test::random_tensor({N, 3, H, W}, rng, 0.0f, 1.0f);
  Tensor labels = Tensor::zeros({N, H, W}, DType::i32);
  for (int n = 0; n < N; ++n)
    for (int p = 0; p < H * W; ++p) {
      int best = 0;
      for (int c = 1; c < 3; ++c)
        if (x.f32()[(n * 3 + c) * H * W + p] > x.f32()[(n * 3 + best) * H * W + p]) best = c;
      labels.data<int32_t>()[n * H * W + p] = best;
    }
  auto params = net.named_parameters();
  std::vector<Tensor> velocity;
  for (auto& [name, p] : params) velocity.push_back(Tensor::zeros(p.shape()));
  const float lr = 0.05f, momentum = 0.9f;
  std::vector<float> losses;
  for (int step = 0; step < steps; ++step) {
    net.zero_grad();
    const Var loss = softmax_cross_entropy(net.forward(Var(x)), labels);
    losses.push_back(loss.value().item());
    loss.backward();
    for (size_t i = 0; i < params.size(); ++i) {
      Var& p = params[i].second;
      REQUIRE(p.grad().defined());
      float* v = velocity[i].f32();
      float* w = p.mutable_value().f32();
      const float* g = p.grad().f32();
      for (int64_t j = 0; j < p.value().numel(); ++j) {
        v[j] = momentum * v[j] + g[j];
        w[j] -= lr * v[j];
      }
    }
  }
  return losses;
}

}  // namespace

TEST_CASE("a tiny quantized FCN trains: loss falls with W1A2 and W2A2", "[layers][train]") {
  const int steps = 60;
  for (const QuantSpec q : {QuantSpec{1, 2}, QuantSpec{2, 2}, QuantSpec{1, 2, 32, true}}) {
    const std::vector<float> losses = train(q, steps);
    float last = 0;
    for (int i = steps - 5; i < steps; ++i) last += losses[size_t(i)] / 5;
    INFO("W" << q.w_bits << "A" << q.a_bits << (q.w_scale_channel ? " channel" : "") << ": loss "
             << losses[0] << " -> " << last);
    std::printf("tiny FCN W%dA%d%s: loss %.4f -> %.4f\n", q.w_bits, q.a_bits,
                q.w_scale_channel ? " (per-channel E)" : "", losses[0], last);
    CHECK(std::isfinite(last));
    CHECK(last < 0.6f * losses[0]);
  }
}

TEST_CASE("tiny quantized FCN training is deterministic for a seed", "[layers][train]") {
  CHECK(train(QuantSpec{1, 2}, 5) == train(QuantSpec{1, 2}, 5));
}
