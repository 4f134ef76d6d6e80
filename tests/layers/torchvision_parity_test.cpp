// Forward parity with PyTorch: randomly initialised torchvision ResNet-18/50 (BN statistics
// randomised, eval mode), converted with scripts/convert_torchvision.py's writer and loaded
// strictly; layer1..4 features and FCN-8s logits must agree within 1e-4 relative (to each tensor's
// max |x|). Also loads a converter-written backbone-only file into an FCN (heads reported missing).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>

#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/config.h"
#include "train/hdf5_io.h"
#include "train/weights.h"

namespace bfcn {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// Runs the oracle once for all cases (Python + torch start-up dominates).
struct Oracle {
  test::TempDir dir{"bfcn_parity"};
  bool ok = false;
  std::string log;
  Oracle() {
    const bool small = std::getenv("BFCN_SANITIZED") != nullptr;
    const std::string cmd =
        "/usr/bin/python3 " + (test::source_dir() / "tests/python/torchvision_parity.py").string() +
        " --out-dir " + dir.path().string() + (small ? " --size 64 --dilated-size 64" : "");
    test::RunResult r = test::run_command(cmd);
    ok = r.status == 0;
    log = r.output;
  }
};

const Oracle& oracle() {
  static Oracle o;
  return o;
}

Shape shape_of(const json& j) {
  switch (j.size()) {
    case 3:
      return Shape{j[0].get<int64_t>(), j[1].get<int64_t>(), j[2].get<int64_t>()};
    default:
      return Shape{j[0].get<int64_t>(), j[1].get<int64_t>(), j[2].get<int64_t>(),
                   j[3].get<int64_t>()};
  }
}

float max_abs(const Tensor& t) {
  float m = 0;
  for (float v : t.span<float>()) m = std::max(m, std::abs(v));
  return m;
}

void check_parity(const std::string& name, const std::string& arch, int output_stride) {
  if (!test::torch_available())
    BFCN_SKIP("PyTorch not available: /usr/bin/python3 cannot import torch");
  const Oracle& o = oracle();
  INFO(o.log);
  REQUIRE(o.ok);
  const fs::path d = o.dir.path() / name;
  json shapes = load_json_file(d / "shapes.json");
  auto model = build_model(json{{"backbone", arch},
                                {"head", "fcn8s"},
                                {"n_classes", 21},
                                {"output_stride", output_stride}},
                           7);
  LoadReport r = load_model_weights(*model, load_tensor_file(d / "weights.h5"), true);
  CHECK(r.loaded.size() == model->named_parameters().size() + model->named_buffers().size());
  model->eval();
  NoGradGuard ng;
  Var x(test::read_f32(d / "input.f32", shape_of(shapes["input"])));
  std::vector<Var> feats = model->backbone_features(x);
  for (int i = 0; i < 4; ++i) {
    const std::string key = "feat" + std::to_string(i + 1);
    Tensor ref = test::read_f32(d / (key + ".f32"), shape_of(shapes[key]));
    INFO(name << " " << key << " " << ref.shape().str());
    REQUIRE(feats[i].shape() == ref.shape());
    CHECK(test::all_close(feats[i].value(), ref, 1e-4f, 1e-4f * max_abs(ref)));
  }
  Var y = model->forward(x);
  Tensor ref = test::read_f32(d / "logits.f32", shape_of(shapes["logits"]));
  INFO(name << " logits");
  REQUIRE(y.shape() == ref.shape());
  CHECK(test::all_close(y.value(), ref, 1e-4f, 1e-4f * max_abs(ref)));
}

}  // namespace

TEST_CASE("parity: torchvision resnet18 features and FCN-8s logits", "[models][parity][torch]") {
  check_parity("resnet18", "resnet18", 32);
}

TEST_CASE("parity: torchvision resnet50 features and FCN-8s logits", "[models][parity][torch]") {
  check_parity("resnet50", "resnet50", 32);
}

TEST_CASE("parity: dilated resnet50 (output stride 8) matches replace_stride_with_dilation",
          "[models][parity][torch]") {
  check_parity("resnet50_os8", "resnet50", 8);
}

TEST_CASE("converter: a backbone-only file loads into an FCN with the heads reported missing",
          "[models][parity][torch]") {
  if (!test::torch_available())
    BFCN_SKIP("PyTorch not available: /usr/bin/python3 cannot import torch");
  const Oracle& o = oracle();
  INFO(o.log);
  REQUIRE(o.ok);
  TensorFile tf = load_tensor_file(o.dir.path() / "backbone_only.h5");
  CHECK(tf.attrs.at("arch") == "resnet18");
  CHECK(tf.tensors.count("params/layer2.0.downsample.0.weight") == 1);
  CHECK(tf.tensors.count("params/fc.weight") == 0);
  CHECK(tf.tensors.count("buffers/bn1.num_batches_tracked") == 0);
  auto model = build_model(json{{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 21}}, 1);
  LoadReport r = load_model_weights(*model, tf, false, "backbone_only.h5");
  CHECK(r.loaded.size() == 100);  // 60 parameters + 40 BN running statistics
  CHECK(r.unexpected.empty());
  CHECK(r.shape_mismatch.empty());
  CHECK(r.missing ==
        std::vector<std::string>{"params/score_layer2.bias", "params/score_layer2.weight",
                                 "params/score_layer3.bias", "params/score_layer3.weight",
                                 "params/score_layer4.bias", "params/score_layer4.weight"});
  CHECK_THROWS_WITH(load_model_weights(*model, tf, true, "backbone_only.h5"),
                    Catch::Contains("missing 6 (params/score_layer2.bias"));
  auto r34 = build_model(json{{"backbone", "resnet34"}, {"head", "fcn32s"}, {"n_classes", 21}}, 1);
  CHECK_THROWS_WITH(load_model_weights(*r34, tf, true, "backbone_only.h5"),
                    Catch::Contains("missing 82 (buffers/layer1.2.bn1.running_mean"));
}

}  // namespace bfcn
