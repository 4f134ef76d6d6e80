// Backbone and head structure: torchvision parameter counts and names, output strides with
// dilation, quantized variants (W1A2, W2A2) with first/last FP, and QuantConfig overrides.
#include "layers/resnet.h"

#include <catch2/catch.hpp>
#include <set>

#include "autograd/ops.h"
#include "layers/activation.h"
#include "layers/model.h"
#include "tests/support/test_support.h"

namespace bfcn {
namespace {

using nlohmann::json;

Module* find_module(Module& m, const std::string& name) {
  for (auto& [n, mod] : m.named_modules())
    if (n == name) return mod;
  return nullptr;
}

int64_t backbone_params(const std::string& arch) {
  ResNetOptions o;
  o.arch = arch;
  Rng rng(0);
  ResNet r(o, rng);
  return r.parameter_count();
}

}  // namespace

TEST_CASE("resnet parameter counts equal torchvision's (without fc)", "[models]") {
  // torchvision.models.resnetXX(): sum of parameters excluding fc.weight/fc.bias
  // (resnet18 11,689,512 - 513,000; resnet34 21,797,672 - 513,000; resnet50 25,557,032 -
  // 2,049,000).
  CHECK(backbone_params("resnet18") == 11176512);
  CHECK(backbone_params("resnet34") == 21284672);
  CHECK(backbone_params("resnet50") == 23508032);
  // Preact ResNet-18 (paper.md §6.6): conv1 with bias, 1x1 projection shortcut on the first block
  // of every stage (layer1 too), BN before each conv plus a final BN, no downsample BN.
  int64_t preact = 3 * 64 * 49 + 64;  // conv1 + bias
  const int planes[4] = {64, 128, 256, 512};
  int in = 64;
  for (int p : planes) {
    preact += in * p;                                   // shortcut 1x1
    preact += 2 * in + in * p * 9 + 2 * p + p * p * 9;  // block 0: bn1, conv1, bn2, conv2
    preact += 2 * p + p * p * 9 + 2 * p + p * p * 9;    // block 1
    in = p;
  }
  preact += 2 * 512;  // bn_final
  CHECK(backbone_params("resnet18_preact") == preact);
}

TEST_CASE("model parameter names follow torchvision's state_dict", "[models]") {
  auto m = build_model(json{{"backbone", "resnet50"}, {"head", "fcn8s"}, {"n_classes", 21}}, 1);
  std::set<std::string> names;
  for (auto& [n, p] : m->named_parameters()) names.insert(n);
  for (const char* n :
       {"conv1.weight", "bn1.weight", "bn1.bias", "layer1.0.conv1.weight", "layer1.0.bn3.bias",
        "layer1.0.downsample.0.weight", "layer2.0.downsample.1.weight", "layer4.2.conv3.weight",
        "score_layer4.weight", "score_layer4.bias", "score_layer3.bias", "score_layer2.weight"})
    CHECK(names.count(n) == 1);
  CHECK(names.count("fc.weight") == 0);
  std::set<std::string> buffers;
  for (auto& [n, b] : m->named_buffers()) buffers.insert(n);
  CHECK(buffers.count("layer3.5.bn2.running_var") == 1);
  CHECK(buffers.count("bn1.running_mean") == 1);
  // 53 BNs (stem 1, 16 blocks x 3, 4 downsample), two buffers each.
  CHECK(buffers.size() == 2 * 53);
}

TEST_CASE("output stride 32/16/8 gives the expected feature sizes and full-size logits",
          "[models]") {
  const int size = 64;
  for (int os : {32, 16, 8}) {
    for (const char* arch : {"resnet18", "resnet18_preact"}) {
      INFO("arch " << arch << " os " << os);
      auto m = build_model(
          json{{"backbone", arch}, {"head", "fcn8s"}, {"n_classes", 5}, {"output_stride", os}}, 3);
      m->eval();
      NoGradGuard ng;
      Rng rng(1);
      Var x(test::random_tensor(Shape{1, 3, size, size}, rng, 0.0f, 1.0f));
      std::vector<Var> f = m->backbone_features(x);
      REQUIRE(f.size() == 4);
      CHECK(f[0].shape() == Shape{1, 64, 16, 16});
      CHECK(f[1].shape() == Shape{1, 128, 8, 8});
      CHECK(f[2].shape() == Shape{1, 256, size / std::min(os, 16), size / std::min(os, 16)});
      CHECK(f[3].shape() == Shape{1, 512, size / os, size / os});
      Var y = m->forward(x);
      CHECK(y.shape() == Shape{1, 5, size, size});
      CHECK(m->output_stride() == os);
      // The summary's analytic shapes agree with the real forward.
      std::vector<LayerInfo> rows = m->summary(size, size);
      CHECK(rows.back().out_shape == y.shape());
    }
  }
}

TEST_CASE("dilated heads build and run (1x1 and 3x3+1x1 classifier)", "[models]") {
  for (int hc : {0, 32}) {
    auto m = build_model(json{{"backbone", "resnet18"},
                              {"head", "dilated"},
                              {"n_classes", 3},
                              {"head_channels", hc},
                              {"quant", {{"w_bits", 2}, {"a_bits", 2}}}},
                         4);
    CHECK(m->output_stride() == 8);  // the dilated head's default
    Rng rng(2);
    Var x(test::random_tensor(Shape{2, 3, 32, 48}, rng, 0.0f, 1.0f));
    Var y = m->forward(x);
    CHECK(y.shape() == Shape{2, 3, 32, 48});
    Module* last = find_module(*m, hc ? "classifier.3" : "classifier");
    REQUIRE(last != nullptr);
    CHECK(last->type() == "Conv2d");  // first_last_fp keeps the classifier FP
    if (hc) {
      auto* mid = dynamic_cast<QConv2d*>(find_module(*m, "classifier.0"));
      REQUIRE(mid != nullptr);
      CHECK(mid->quant().w_bits == 2);
    }
  }
}

TEST_CASE("quantized variants: W1A2 and W2A2 with first/last FP build, run and train a step",
          "[models]") {
  for (int wb : {1, 2}) {
    INFO("w_bits " << wb);
    auto m = build_model(json{{"backbone", "resnet18"},
                              {"head", "fcn8s"},
                              {"n_classes", 4},
                              {"quant", {{"w_bits", wb}, {"a_bits", 2}, {"first_last_fp", true}}}},
                         5);
    // First and last layers FP, everything else quantized.
    CHECK(find_module(*m, "conv1")->type() == "Conv2d");
    for (const char* s : {"score_layer4", "score_layer3", "score_layer2"})
      CHECK(find_module(*m, s)->type() == "Conv2d");
    auto* q = dynamic_cast<QConv2d*>(find_module(*m, "layer3.1.conv2"));
    REQUIRE(q != nullptr);
    CHECK(q->quant().w_bits == wb);
    auto* ds = dynamic_cast<QConv2d*>(find_module(*m, "layer2.0.downsample.0"));
    REQUIRE(ds != nullptr);
    CHECK(ds->quant().w_bits == wb);
    // The stem's activation is quantized so layer1.0.conv1 reads 2-bit activations.
    auto* act = dynamic_cast<QuantAct*>(find_module(*m, "act1"));
    REQUIRE(act != nullptr);
    CHECK(act->a_bits() == 2);
    // Post-activation outputs of layer1 take 4 levels only.
    Rng rng(3);
    Var x(test::random_tensor(Shape{2, 3, 32, 32}, rng, 0.0f, 1.0f));
    std::vector<Var> f = m->backbone_features(x);
    std::set<float> levels(f[0].value().span<float>().begin(), f[0].value().span<float>().end());
    CHECK(levels.size() <= 4);
    for (float v : levels) CHECK(std::abs(v * 3 - std::round(v * 3)) < 1e-6f);
    // One backward pass reaches the latent FP weights of a bit conv.
    Var y = m->forward(x);
    Tensor labels = Tensor::zeros(Shape{2, 32, 32}, DType::i32);
    Var loss = softmax_cross_entropy(y, labels);
    loss.backward();
    REQUIRE(q->weight().grad().defined());
    float gsum = 0;
    for (float g : q->weight().grad().span<float>()) gsum += std::abs(g);
    CHECK(gsum > 0.0f);
  }
}

TEST_CASE("quant overrides reach the named layers; first_last_fp false quantizes the ends",
          "[models]") {
  json cfg = json::parse(R"({
    "backbone": "resnet18", "head": "fcn32s", "n_classes": 2,
    "quant": {"w_bits": 1, "a_bits": 2, "first_last_fp": false,
              "overrides": {"layer4": {"w_bits": 2}, "layer2.0.conv1": {"a_bits": 4},
                            "layer3.1.conv2": {"w_bits": 32}}}})");
  auto m = build_model(cfg, 6);
  auto bits = [&](const std::string& n) {
    auto* q = dynamic_cast<QConv2d*>(find_module(*m, n));
    return q ? q->quant().w_bits : 32;
  };
  CHECK(bits("conv1") == 1);
  CHECK(bits("score_layer4") == 1);
  CHECK(bits("layer4.0.conv1") == 2);
  CHECK(bits("layer4.1.conv2") == 2);
  CHECK(bits("layer4.0.downsample.0") == 2);
  CHECK(bits("layer3.1.conv1") == 1);
  CHECK(bits("layer3.1.conv2") == 32);
  CHECK(find_module(*m, "layer3.1.conv2")->type() == "Conv2d");
  auto* a = dynamic_cast<QuantAct*>(find_module(*m, "layer2.0.act1"));
  REQUIRE(a != nullptr);
  CHECK(a->a_bits() == 4);
  CHECK(dynamic_cast<QuantAct*>(find_module(*m, "layer2.0.act2"))->a_bits() == 2);
  // An override that names no layer is rejected.
  cfg["quant"]["overrides"] = {{"layer5", {{"w_bits", 2}}}};
  CHECK_THROWS_AS(build_model(cfg, 6), ConfigError);
}

TEST_CASE("resolved config round-trips and the same seed gives the same weights", "[models]") {
  json cfg = {{"backbone", "resnet18"},
              {"head", "fcn16s"},
              {"n_classes", 7},
              {"quant", {{"w_bits", 2}, {"a_bits", 2}}}};
  auto a = build_model(cfg, 42);
  auto b = build_model(a->config(), 42);
  CHECK(a->config() == b->config());
  CHECK(a->config()["output_stride"] == 32);
  auto pa = a->named_parameters(), pb = b->named_parameters();
  REQUIRE(pa.size() == pb.size());
  for (size_t i = 0; i < pa.size(); ++i) {
    CHECK(pa[i].first == pb[i].first);
    CHECK(pa[i].second.value().to_vector() == pb[i].second.value().to_vector());
  }
  auto c = build_model(cfg, 43);
  CHECK(c->named_parameters()[0].second.value().to_vector() != pa[0].second.value().to_vector());
}

}  // namespace bfcn
