// Sanity: a tiny FCN (conv → bn → relu → conv) learns a label map produced by a fixed random
// 1x1 "teacher" conv under plain gradient descent written here (optimizers belong to training).
#include "autograd/ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::random_tensor;

TEST_CASE("a tiny conv-bn-relu-conv model's loss decreases under gradient descent", "[sanity]") {
  Rng rng(11);
  const Tensor x = random_tensor(Shape{2, 3, 8, 8}, rng);
  const Var teacher(random_tensor(Shape{4, 3, 1, 1}, rng), false);
  Tensor labels = argmax_channels(conv2d(Var(x), teacher, Var(), Conv2dArgs{}).value());
  labels.data<int32_t>()[5] = 255;  // one ignored pixel

  std::vector<Var> params{Var(random_tensor(Shape{8, 3, 3, 3}, rng, -0.3f, 0.3f), true),
                          Var(Tensor::ones(Shape{8}), true), Var(Tensor::zeros(Shape{8}), true),
                          Var(random_tensor(Shape{4, 8, 1, 1}, rng, -0.3f, 0.3f), true),
                          Var(Tensor::zeros(Shape{4}), true)};
  Tensor rm = Tensor::zeros(Shape{8}), rv = Tensor::ones(Shape{8});
  auto forward = [&]() {
    Var h = conv2d(Var(x), params[0], Var(), Conv2dArgs::square(1, 1));  // [2,8,8,8]
    h = relu(batch_norm2d(h, params[1], params[2], rm, rv, true));
    Var logits = conv2d(  // [2,4,8,8]
        h, params[3], params[4], Conv2dArgs::square(1, 0));
    return softmax_cross_entropy(logits, labels);
  };
  std::vector<float> losses;
  for (int step = 0; step < 60; ++step) {
    for (Var& p : params) p.zero_grad();
    Var loss = forward();
    losses.push_back(loss.value().item());
    loss.backward();
    for (Var& p : params) {
      float* w = p.mutable_value().f32();
      const float* g = p.grad().f32();
      for (int64_t i = 0; i < p.value().numel(); ++i) w[i] -= 0.5f * g[i];
    }
  }
  INFO("first loss " << losses.front() << ", last loss " << losses.back());
  CHECK(std::isfinite(losses.back()));
  CHECK(losses.back() < 0.5f * losses.front());
  CHECK(losses[30] < losses.front());
}
