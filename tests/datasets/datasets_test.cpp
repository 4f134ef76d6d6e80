// Dataset loaders on the real VOC/Cityscapes samples (../shared/data) and on broken datasets
// built in temp folders: every bad-input case must throw an error naming the file at fault.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>

#include "core/error.h"
#include "datasets/cityscapes.h"
#include "datasets/dataset.h"
#include "datasets/folder.h"
#include "datasets/voc.h"
#include "tests/datasets/fixtures.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {
fs::path data_dir() { return test::shared_dir() / "data"; }
std::map<int, int64_t> histogram(const std::vector<uint8_t>& v) {
  std::map<int, int64_t> h;
  for (uint8_t x : v) ++h[x];
  return h;
}
std::map<int, int64_t> json_histogram(const json& h) {
  std::map<int, int64_t> out;
  for (const auto& [k, v] : h.items()) out[std::stoi(k)] = v.get<int64_t>();
  return out;
}
json histograms() {
  std::ifstream f(data_dir() / "label_histograms.json");
  return json::parse(f);
}
const char* kTiny = "frankfurt/frankfurt_000000_000294";
}  // namespace

TEST_CASE("every 8-bit label PNG of the samples matches label_histograms.json", "[datasets]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: skipping real label histograms");
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  int checked = 0;
  const json all = histograms();
  for (const auto& [file, info] : all.items()) {
    const std::string mode = info.value("mode", "");
    if ((mode != "P" && mode != "L") || !info.contains("histogram")) continue;
    if (sanitized && file.find("aachen") != std::string::npos) continue;  // 2048x1024: slow
    INFO(file);
    LabelMap m = read_label_png(data_dir() / file);
    CHECK(m.was_palette == (mode == "P"));
    CHECK(m.width == info["size"][0].get<int>());
    CHECK(m.height == info["size"][1].get<int>());
    CHECK(histogram(m.data) == json_histogram(info["histogram"]));
    ++checked;
  }
  CHECK(checked >= 9);
}

TEST_CASE("the 16-bit instanceIds and RGBA color PNGs are rejected as labels", "[datasets][bad]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent");
  const fs::path inst = data_dir() / "cityscapes_sample_tiny/gtFine/val" /
                        (std::string(kTiny) + "_gtFine_instanceIds.png");
  CHECK_THROWS_WITH(read_label_png(inst),
                    Catch::Contains("instanceIds.png") && Catch::Contains("16-bit grayscale"));
  if (std::getenv("BFCN_SANITIZED") != nullptr) return;
  const fs::path color =
      data_dir() / "cityscapes_sample/gtFine/train/aachen/aachen_000000_000019_gtFine_color.png";
  CHECK_THROWS_WITH(read_label_png(color), Catch::Contains("color.png") &&
                                               Catch::Contains("but got RGBA") &&
                                               Catch::Contains("colour visualisation"));
}

TEST_CASE("VOC loader on the real sample: splits, indices, Aug labels", "[datasets]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: skipping real VOC loader");
  const fs::path root = data_dir() / "voc_sample/VOCdevkit/VOC2012";
  VocDataset train(root, "train");
  REQUIRE(train.size() == 2);
  CHECK(train.n_classes() == 21);
  CHECK(train.class_names()[9] == "chair");
  CHECK(train.palette()[255] == std::array<uint8_t, 3>{224, 224, 192});
  RawSample s = train.load(0);
  CHECK(s.id == "2007_000063");
  CHECK(histogram(s.label.data) ==
        std::map<int, int64_t>{{0, 72224}, {9, 78930}, {12, 27632}, {255, 8714}});
  CHECK(s.image.width == 500);
  CHECK(s.image.height == 375);
  VocDataset aug(root, "train_aug", "SegmentationClassAug");
  REQUIRE(aug.size() == 2);
  CHECK(aug.load(0).label.data == s.label.data);
  CHECK(aug.load(1).label.data == train.load(1).label.data);
  VocDataset val(root, "val");
  REQUIRE(val.size() == 1);
  RawSample v = val.load(0);
  CHECK(v.image.width == 334);
  CHECK(v.image.height == 500);
  CHECK_THROWS_WITH(VocDataset(root, "nosuch"), Catch::Contains("nosuch.txt") &&
                                                    Catch::Contains("split list not found") &&
                                                    Catch::Contains("trainval"));
}

TEST_CASE("Cityscapes loader maps labelIds to trainIds by the official table", "[datasets]") {
  const auto& lut = cityscapes_label_to_train();
  const auto& inv = cityscapes_train_to_label();
  int n_train = 0;
  for (int id = 0; id < 34; ++id)
    if (lut[id] != 255) {
      ++n_train;
      CHECK(inv[lut[id]] == id);
    }
  CHECK(n_train == 19);
  CHECK(lut[7] == 0);
  CHECK(lut[26] == 13);
  CHECK(lut[33] == 18);
  CHECK(lut[9] == 255);
  CHECK(cityscapes_class_names()[13] == "car");

  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: skipping real Cityscapes");
  const fs::path root = data_dir() / "cityscapes_sample_tiny";
  CityscapesDataset ds(root, "val");
  REQUIRE(ds.size() == 1);
  CHECK(ds.id(0) == kTiny);
  RawSample s = ds.load(0);
  CHECK(s.image.width == 256);
  CHECK(s.image.height == 128);
  // The mapped histogram equals the labelIds histogram of the JSON pushed through the table.
  const json h = histograms();
  const std::string base = "cityscapes_sample_tiny/gtFine/val/" + std::string(kTiny);
  std::map<int, int64_t> want;
  for (const auto& [id, n] : json_histogram(h[base + "_gtFine_labelIds.png"]["histogram"]))
    want[lut[static_cast<size_t>(id)]] += n;
  CHECK(histogram(s.label.data) == want);
  // labelTrainIds is read as is, and disagrees with LUT(labelIds) on ~0.23 % of pixels.
  CityscapesDataset tid(root, "val", true);
  RawSample t = tid.load(0);
  CHECK(histogram(t.label.data) ==
        json_histogram(h[base + "_gtFine_labelTrainIds.png"]["histogram"]));
  size_t differ = 0;
  for (size_t i = 0; i < s.label.data.size(); ++i) differ += s.label.data[i] != t.label.data[i];
  const double frac = static_cast<double>(differ) / static_cast<double>(s.label.data.size());
  CHECK(frac > 0.0018);
  CHECK(frac < 0.0028);
  // Through the factory, with a config.
  DataConfig cfg = DataConfig::from_json(json{{"dataset", "cityscapes"},
                                              {"root", root.string()},
                                              {"cityscapes_labels", "labelTrainIds"}},
                                         "test");
  CHECK(make_dataset(cfg, "val")->load(0).label.data == t.label.data);
  CHECK_THROWS_WITH(CityscapesDataset(root, "train"),
                    Catch::Contains("leftImg8bit/train") && Catch::Contains("not found"));
}

TEST_CASE("folder dataset: images/ + labels/, classes from dataset.json or the labels",
          "[datasets]") {
  test::TempDir dir;
  fs::create_directories(dir / "images");
  fs::create_directories(dir / "labels");
  for (int i = 0; i < 3; ++i) {
    RawSample s = test::make_pattern_sample(static_cast<size_t>(i), 16, 24, 4);
    write_image_rgb(dir.path() / "images" / ("a" + std::to_string(i) + ".png"), s.image);
    write_label_png(dir.path() / "labels" / ("a" + std::to_string(i) + ".png"), s.label, nullptr);
  }
  {
    FolderDataset ds(dir.path(), "all");
    CHECK(ds.size() == 3);
    CHECK(ds.n_classes() == 4);
    RawSample s = ds.load(2);
    CHECK(s.id == "a2");
    CHECK(s.image.data == test::make_pattern_sample(2, 16, 24, 4).image.data);
  }
  std::ofstream(dir / "dataset.json") << R"({"classes": ["bg", "a", "b", "c", "d", "e"]})";
  std::ofstream(dir / "val.txt") << "a1\n\na0\n";
  FolderDataset val(dir.path(), "val");
  CHECK(val.size() == 2);
  CHECK(val.id(0) == "a1");
  CHECK(val.n_classes() == 6);
  CHECK(val.class_names()[1] == "a");
}

TEST_CASE("bad datasets throw errors naming the file", "[datasets][bad]") {
  test::TempDir dir;
  const fs::path root = dir / "VOC2012";
  SECTION("missing root") {
    CHECK_THROWS_WITH(VocDataset(root, "train"),
                      Catch::Contains("VOC2012") && Catch::Contains("root not found"));
  }
  test::write_voc(root, 3, 24, 32);
  SECTION("missing split list") {
    CHECK_THROWS_WITH(VocDataset(root, "val"), Catch::Contains("val.txt"));
  }
  SECTION("empty split") {
    std::ofstream(root / "ImageSets/Segmentation/empty.txt") << "\n\n";
    CHECK_THROWS_WITH(VocDataset(root, "empty"),
                      Catch::Contains("empty.txt") && Catch::Contains("is empty"));
  }
  SECTION("id without image") {
    fs::remove(root / "JPEGImages/id1.jpg");
    CHECK_THROWS_WITH(VocDataset(root, "train"),
                      Catch::Contains("id1.jpg") && Catch::Contains("not found"));
  }
  SECTION("id without label") {
    fs::remove(root / "SegmentationClass/id2.png");
    CHECK_THROWS_WITH(VocDataset(root, "train"),
                      Catch::Contains("id2.png") && Catch::Contains("not found"));
  }
  SECTION("truncated image") {
    std::vector<uint8_t> b = read_file_bytes(root / "JPEGImages/id0.jpg");
    std::ofstream(root / "JPEGImages/id0.jpg", std::ios::binary)
        .write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size() / 2));
    VocDataset ds(root, "train");
    CHECK_THROWS_WITH(ds.load(0), Catch::Contains("id0.jpg") && Catch::Contains("truncated"));
    CHECK_NOTHROW(ds.load(1));
  }
  SECTION("label size differs from image size") {
    std::vector<uint8_t> small(10 * 10, 0);
    write_label_png(root / "SegmentationClass/id1.png", small.data(), 10, 10, nullptr);
    VocDataset ds(root, "train");
    CHECK_THROWS_WITH(ds.load(1), Catch::Contains("id1.png") && Catch::Contains("does not match"));
  }
  SECTION("label value outside the classes") {
    std::vector<uint8_t> lab(24 * 32, 0);
    lab[5] = 21;
    write_label_png(root / "SegmentationClass/id2.png", lab.data(), 24, 32, nullptr);
    VocDataset ds(root, "train");
    CHECK_THROWS_WITH(ds.load(2), Catch::Contains("id2.png") && Catch::Contains("value 21") &&
                                      Catch::Contains("{0..20, 255}"));
  }
  SECTION("RGB label where an index label is expected") {
    cv::imwrite((root / "SegmentationClass/id0.png").string(),
                cv::Mat(24, 32, CV_8UC3, cv::Scalar(0, 0, 128)));
    VocDataset ds(root, "train");
    CHECK_THROWS_WITH(ds.load(0), Catch::Contains("id0.png") && Catch::Contains("but got RGB"));
  }
}

TEST_CASE("data config is validated strictly with JSON paths", "[datasets][config]") {
  DataConfig c = DataConfig::from_json(
      json{{"dataset", "voc"},
           {"root", "/x"},
           {"augment", {{"crop", {64, 96}}, {"scale_min", 0.75}, {"flip", false}}},
           {"workers", 3}},
      "c.json: data");
  CHECK(c.augment.crop == std::array<int, 2>{64, 96});
  CHECK(c.augment.scale_min == 0.75f);
  CHECK(c.augment.scale_max == 2.0f);
  CHECK_FALSE(c.augment.flip);
  CHECK(c.workers == 3);
  DataConfig back = DataConfig::from_json(c.to_json(), "round trip");
  CHECK(back.to_json() == c.to_json());

  auto bad = [](const json& j) { return DataConfig::from_json(j, "c.json: data"); };
  CHECK_THROWS_WITH(bad(json{{"root", "/x"}, {"workrs", 2}}),
                    Catch::Contains("c.json: data.workrs: unknown key; did you mean 'workers'?"));
  CHECK_THROWS_WITH(bad(json{{"dataset", "coco"}, {"root", "/x"}}),
                    Catch::Contains("data.dataset") && Catch::Contains("'coco'"));
  DataConfig no_root = bad(json{{"dataset", "voc"}});  // enough for mean/std and the class set
  CHECK_THROWS_WITH(make_dataset(no_root, "train"), Catch::Contains("data.root: required"));
  CHECK_THROWS_WITH(bad(json{{"root", "/x"}, {"augment", {{"crop", {64}}}}}),
                    Catch::Contains("data.augment.crop: expected [H, W]"));
  CHECK_THROWS_WITH(bad(json{{"root", "/x"}, {"augment", {{"scale_min", "big"}}}}),
                    Catch::Contains("data.augment.scale_min: expected a number, but got a string"));
  CHECK_THROWS_WITH(bad(json{{"root", "/x"}, {"std", {1, 0, 1}}}),
                    Catch::Contains("data.std[1]: expected a positive number"));
  CHECK_THROWS_AS(bad(json{{"root", "/x"}, {"workers", -1}}), ConfigError);
}
