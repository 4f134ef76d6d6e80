// HDF5 tensor files and model weights: round trips, name/shape checks reported by name, atomic
// writes, and file errors that name the file.
#include "train/weights.h"

#include <catch2/catch.hpp>
#include <fstream>

#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/hdf5_io.h"

namespace bfcn {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

std::shared_ptr<SegmentationModel> small_model(uint64_t seed, int n_classes = 5) {
  return build_model(json{{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", n_classes}},
                     seed);
}

std::string io_error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const IoError& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST_CASE("tensor file: keys map to nested HDF5 groups and back", "[models][weights]") {
  CHECK(tensor_key_to_h5_path("params/layer1.0.conv1.weight") == "/params/layer1/0/conv1/weight");
  CHECK(tensor_key_to_h5_path("optim/momentum/layer1.0.bn1.bias") ==
        "/optim/momentum/layer1/0/bn1/bias");
  CHECK(tensor_key_to_h5_path("step") == "/step");
  CHECK(h5_path_to_tensor_key("/params/layer1/0/conv1/weight") == "params/layer1.0.conv1.weight");
  CHECK(h5_path_to_tensor_key("/buffers/bn1/running_mean") == "buffers/bn1.running_mean");
}

TEST_CASE("tensor file: save/load round trip of f32, i32, u8 tensors and attributes",
          "[models][weights]") {
  test::TempDir dir("bfcn_models");
  Rng rng(1);
  TensorFile tf;
  tf.tensors["params/layer1.0.conv1.weight"] = test::random_tensor(Shape{4, 3, 3, 3}, rng);
  tf.tensors["params/score.bias"] = test::random_tensor(Shape{5}, rng);
  tf.tensors["optim/momentum/layer1.0.conv1.weight"] = test::random_tensor(Shape{2, 6}, rng);
  tf.tensors["state/counts"] = Tensor::from_vector_i32(Shape{3}, {1, -2, 1 << 30});
  tf.tensors["state/mask"] = Tensor::from_vector_u8(Shape{2, 2}, {0, 1, 255, 7});
  tf.attrs["config"] = R"({"model": {"backbone": "resnet18"}})";
  tf.attrs["version"] = "1";
  const fs::path file = dir / "t.h5";
  save_tensor_file(file, tf);
  TensorFile back = load_tensor_file(file);
  CHECK(back.attrs == tf.attrs);
  REQUIRE(back.tensors.size() == tf.tensors.size());
  for (const auto& [key, t] : tf.tensors) {
    INFO(key);
    REQUIRE(back.tensors.count(key) == 1);
    const Tensor& b = back.tensors.at(key);
    CHECK(b.shape() == t.shape());
    CHECK(b.dtype() == t.dtype());
    CHECK(b.to_vector() == t.to_vector());
  }
  CHECK_FALSE(fs::exists(dir / "t.h5.tmp"));
}

TEST_CASE("tensor file: writes are atomic, errors name the file", "[models][weights]") {
  test::TempDir dir("bfcn_models");
  const fs::path file = dir / "w.h5";
  TensorFile good;
  good.tensors["params/a"] = Tensor::full(Shape{3}, 2.0f);
  save_tensor_file(file, good);
  // A write that fails half-way (undefined tensor after a good one) leaves the old file intact.
  TensorFile bad;
  bad.tensors["params/a"] = Tensor::full(Shape{3}, 9.0f);
  bad.tensors["params/b"] = Tensor();
  CHECK_THAT(io_error_of([&] { save_tensor_file(file, bad); }),
             Catch::Contains("w.h5.tmp") && Catch::Contains("'params/b' is undefined"));
  CHECK_FALSE(fs::exists(dir / "w.h5.tmp"));
  TensorFile back = load_tensor_file(file);
  CHECK(back.tensors.at("params/a").to_vector() == std::vector<float>{2, 2, 2});
  // A missing folder, a missing file and a non-HDF5 file.
  CHECK_THAT(io_error_of([&] { save_tensor_file(dir / "no_dir" / "x.h5", good); }),
             Catch::Contains("no_dir/x.h5.tmp") && Catch::Contains("cannot create"));
  CHECK_THAT(io_error_of([&] { load_tensor_file(dir / "missing.h5"); }),
             Catch::Contains("missing.h5: no such file"));
  { std::ofstream(dir / "text.h5") << "not hdf5"; }
  CHECK_THAT(io_error_of([&] { load_tensor_file(dir / "text.h5"); }),
             Catch::Contains("text.h5: not an HDF5 file"));
}

TEST_CASE("model weights: save then load restores parameters and BN statistics",
          "[models][weights]") {
  test::TempDir dir("bfcn_models");
  auto a = small_model(1);
  for (auto& [name, b] : a->named_buffers()) b.fill(name.size() * 0.01f);  // non-default stats
  TensorFile tf;
  add_model_weights(tf, *a);
  CHECK(tf.tensors.count("params/layer1.0.conv1.weight") == 1);
  CHECK(tf.tensors.count("buffers/layer1.0.bn1.running_var") == 1);
  save_tensor_file(dir / "m.h5", tf);

  auto b = small_model(2);
  LoadReport r = load_model_weights(*b, load_tensor_file(dir / "m.h5"), true, "m.h5");
  CHECK(r.missing.empty());
  CHECK(r.unexpected.empty());
  CHECK(r.shape_mismatch.empty());
  CHECK(r.loaded.size() == a->named_parameters().size() + a->named_buffers().size());
  auto pa = a->named_parameters(), pb = b->named_parameters();
  for (size_t i = 0; i < pa.size(); ++i)
    CHECK(pa[i].second.value().to_vector() == pb[i].second.value().to_vector());
  auto ba = a->named_buffers(), bb = b->named_buffers();
  for (size_t i = 0; i < ba.size(); ++i)
    CHECK(ba[i].second.to_vector() == bb[i].second.to_vector());
}

TEST_CASE("model weights: missing, unexpected and mismatched tensors are reported by name",
          "[models][weights]") {
  auto a = small_model(1);
  TensorFile tf;
  add_model_weights(tf, *a);
  for (auto& [k, t] : tf.tensors) t = t.clone();  // edit a copy, not a's storage
  tf.tensors.erase("params/score_layer2.weight");
  tf.tensors["params/extra.weight"] = Tensor::zeros(Shape{2});
  tf.tensors["params/score_layer3.bias"] = Tensor::zeros(Shape{6});
  tf.tensors["optim/momentum/conv1.weight"] = Tensor::zeros(Shape{1});  // other groups: ignored
  tf.tensors["params/conv1.weight"].fill(0.5f);

  auto b = small_model(2);
  const std::vector<float> before = b->named_parameters()[0].second.value().to_vector();
  const std::string e = io_error_of([&] { load_model_weights(*b, tf, true, "ckpt.h5"); });
  CHECK_THAT(e, Catch::StartsWith("ckpt.h5: weights do not match the model"));
  CHECK_THAT(e, Catch::Contains("missing 1 (params/score_layer2.weight)"));
  CHECK_THAT(e, Catch::Contains("unexpected 1 (params/extra.weight)"));
  CHECK_THAT(e, Catch::Contains("shape mismatch 1 (params/score_layer3.bias [6] f32 vs model [5]"));
  CHECK_THAT(e, !Catch::Contains("optim"));
  // A failed strict load changes nothing.
  CHECK(b->named_parameters()[0].second.value().to_vector() == before);

  LoadReport r = load_model_weights(*b, tf, false, "ckpt.h5");
  CHECK(r.missing == std::vector<std::string>{"params/score_layer2.weight"});
  CHECK(r.unexpected == std::vector<std::string>{"params/extra.weight"});
  REQUIRE(r.shape_mismatch.size() == 1);
  CHECK_THAT(r.shape_mismatch[0], Catch::StartsWith("params/score_layer3.bias"));
  for (float v : b->named_parameters()[0].second.value().span<float>()) REQUIRE(v == 0.5f);

  // Non-strict still refuses a file where nothing matches.
  TensorFile junk;
  junk.tensors["params/nothing"] = Tensor::zeros(Shape{1});
  CHECK_THAT(io_error_of([&] { load_model_weights(*b, junk, false, "junk.h5"); }),
             Catch::StartsWith("junk.h5: no tensor matched the model"));
}

}  // namespace bfcn
