// fashion-seg generation: byte-identical for the same seed, readable by the VOC loader, labels in
// {0..10, 255}, train scenes only from the train split's items and val only from t10k's; plus the
// IDX reader's errors and `check_dataset` reporting.
#include "datasets/fashion_seg.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "datasets/check.h"
#include "datasets/voc.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {
void write_gz(const fs::path& f, const std::vector<uint8_t>& bytes) {
  gzFile gz = gzopen(f.c_str(), "wb");
  REQUIRE(gz != nullptr);
  gzwrite(gz, bytes.data(), static_cast<unsigned>(bytes.size()));
  gzclose(gz);
}
void put32(std::vector<uint8_t>& b, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<uint8_t>(v >> s));
}
// A tiny IDX pair: n items (filled discs of varying radius) with the given labels.
void write_idx(const fs::path& dir, const std::string& prefix, const std::vector<uint8_t>& labels) {
  std::vector<uint8_t> img, lab;
  put32(img, 0x803);
  put32(img, static_cast<uint32_t>(labels.size()));
  put32(img, 28);
  put32(img, 28);
  for (size_t i = 0; i < labels.size(); ++i)
    for (int y = 0; y < 28; ++y)
      for (int x = 0; x < 28; ++x) {
        const int r2 = (y - 14) * (y - 14) + (x - 14) * (x - 14);
        img.push_back(r2 < int(64 + 8 * i) ? 230 : 0);
      }
  put32(lab, 0x801);
  put32(lab, static_cast<uint32_t>(labels.size()));
  lab.insert(lab.end(), labels.begin(), labels.end());
  write_gz(dir / (prefix + "-images-idx3-ubyte.gz"), img);
  write_gz(dir / (prefix + "-labels-idx1-ubyte.gz"), lab);
}
std::set<int> label_values(const VocDataset& ds) {
  std::set<int> v;
  for (size_t i = 0; i < ds.size(); ++i)
    for (uint8_t x : ds.load(i).label.data) v.insert(x);
  return v;
}
}  // namespace

TEST_CASE("fashion-seg is deterministic and loads through the VOC loader", "[datasets][fashion]") {
  test::TempDir dir;
  fs::create_directories(dir / "src");
  write_idx(dir / "src", "train", {0, 1, 2, 3, 4, 0, 1});  // train items: classes 0..4 only
  write_idx(dir / "src", "t10k", {5, 6, 7, 8, 9});         // test items: classes 5..9 only
  FashionSegOptions o;
  o.source = dir / "src";
  o.n_train = 12;
  o.n_val = 6;
  o.size = 64;
  o.seed = 5;
  o.out = dir / "a";
  make_fashion_seg(o);
  o.out = dir / "b";
  make_fashion_seg(o);
  o.out = dir / "c";
  o.seed = 6;
  make_fashion_seg(o);
  size_t files = 0, differ_c = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir / "a")) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), dir / "a");
    INFO(rel.string());
    REQUIRE(read_file_bytes(e.path()) == read_file_bytes(dir / "b" / rel));
    if (rel.extension() == ".jpg")
      differ_c += read_file_bytes(e.path()) != read_file_bytes(dir / "c" / rel);
    ++files;
  }
  CHECK(files == 18 * 2 + 3);  // jpg + png per scene, 2 lists, dataset.json
  CHECK(differ_c == 18);       // another seed gives other scenes

  VocDataset train(dir / "a", "train"), val(dir / "a", "val");
  CHECK(train.size() == 12);
  CHECK(val.size() == 6);
  CHECK(train.n_classes() == 11);
  CHECK(train.class_names()[1] == "t-shirt/top");
  CHECK(train.class_names()[10] == "ankle boot");
  RawSample s = train.load(0);
  CHECK(s.image.width == 64);
  CHECK(s.label.was_palette);
  // Train scenes hold only classes 1..5 (items 0..4), val only 6..10: disjoint sources.
  const std::set<int> tv = label_values(train), vv = label_values(val);
  CHECK(tv.count(0) == 1);
  CHECK(tv.count(255) == 1);
  CHECK(vv.count(255) == 1);
  for (int v : tv) CHECK((v <= 5 || v == 255));
  for (int v : vv) CHECK((v == 0 || (v >= 6 && v <= 10) || v == 255));
  CHECK(tv.size() >= 4);
  CHECK(vv.size() >= 4);
}

TEST_CASE("fashion-seg scenes: items present, void band is one pixel wide", "[datasets][fashion]") {
  test::TempDir dir;
  write_idx(dir.path(), "train", {3, 4, 5});
  IdxSet items = read_idx_split(dir.path(), "train");
  REQUIRE(items.n == 3);
  for (uint64_t seed = 0; seed < 8; ++seed) {
    Rng rng(seed);
    RawSample s = make_fashion_scene(items, 96, rng, "x");
    int64_t ink = 0, band = 0;
    for (uint8_t v : s.label.data) {
      ink += v >= 4 && v <= 6;
      band += v == 255;
    }
    CHECK(ink > 100);
    CHECK(band > 20);
    // The band is thin: every void pixel has a labelled pixel in its 3x3 neighbourhood.
    for (int y = 1; y + 1 < 96; ++y)
      for (int x = 1; x + 1 < 96; ++x) {
        int voids = 0;
        for (int dy = -1; dy <= 1; ++dy)
          for (int dx = -1; dx <= 1; ++dx) voids += s.label.at(y + dy, x + dx) == 255;
        REQUIRE(voids < 9);
      }
    // Textured background: not a flat colour.
    std::set<int> reds;
    for (int x = 0; x < 96; ++x) reds.insert(s.image.pixel(0, x)[0]);
    CHECK(reds.size() > 5);
  }
}

TEST_CASE("fashion-seg from the real Fashion-MNIST package", "[datasets][fashion]") {
  if (!fs::exists(fs::path(kFashionMnistDir) / "t10k-images-idx3-ubyte.gz"))
    BFCN_SKIP("dataset-fashion-mnist not installed");
  test::TempDir dir;
  FashionSegOptions o;
  o.out = dir.path();
  o.n_train = 10;
  o.n_val = 4;
  o.seed = 1;
  make_fashion_seg(o);
  VocDataset val(dir.path(), "val");
  DatasetReport r = check_dataset(val);
  CHECK(r.errors.empty());
  CHECK(r.n_ok == 4);
  CHECK(r.min_h == 128);
  CHECK(r.max_w == 128);
  CHECK(r.class_pixels[0] > 0);
  CHECK(r.ignore_pixels > 0);
  int64_t items = 0;
  for (size_t c = 1; c < 11; ++c) items += r.class_pixels[c];
  CHECK(items > 4 * 200);
}

TEST_CASE("IDX reader and generator errors name the file", "[datasets][fashion][bad]") {
  test::TempDir dir;
  FashionSegOptions o;
  o.out = dir / "out";
  o.source = dir / "nowhere";
  CHECK_THROWS_WITH(make_fashion_seg(o), Catch::Contains("train-images-idx3-ubyte.gz") &&
                                             Catch::Contains("dataset-fashion-mnist"));
  write_gz(dir / "train-images-idx3-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 0});
  write_gz(dir / "train-labels-idx1-ubyte.gz", {0, 0, 8, 1, 0, 0, 0, 0});
  CHECK_THROWS_WITH(read_idx_split(dir.path(), "train"),
                    Catch::Contains("train-images-idx3-ubyte.gz") && Catch::Contains("magic"));
  std::vector<uint8_t> img;
  put32(img, 0x803);
  put32(img, 5);
  put32(img, 28);
  put32(img, 28);
  img.resize(16 + 28 * 28 * 2);
  write_gz(dir / "train-images-idx3-ubyte.gz", img);
  CHECK_THROWS_WITH(read_idx_split(dir.path(), "train"), Catch::Contains("truncated"));
}

TEST_CASE("check_dataset counts pixels and lists every bad sample", "[datasets][check]") {
  test::TempDir dir;
  fs::create_directories(dir / "src");
  write_idx(dir / "src", "train", {0, 1});
  write_idx(dir / "src", "t10k", {2});
  FashionSegOptions o;
  o.source = dir / "src";
  o.out = dir / "ds";
  o.n_train = 5;
  o.n_val = 1;
  o.size = 64;
  make_fashion_seg(o);
  fs::resize_file(dir / "ds/JPEGImages/train_000001.jpg", 100);
  std::vector<uint8_t> lab(64 * 64, 42);
  write_label_png(dir / "ds/SegmentationClass/train_000003.png", lab.data(), 64, 64, nullptr);
  VocDataset ds(dir / "ds", "train");
  size_t calls = 0;
  DatasetReport r = check_dataset(ds, [&](size_t, size_t) { ++calls; });
  CHECK(calls == 5);
  CHECK(r.n_ok == 3);
  REQUIRE(r.errors.size() == 2);
  CHECK_THAT(r.errors[0], Catch::Contains("train_000001.jpg"));
  CHECK_THAT(r.errors[1], Catch::Contains("train_000003.png") && Catch::Contains("value 42"));
  int64_t total = r.ignore_pixels;
  for (int64_t v : r.class_pixels) total += v;
  CHECK(total == 3 * 64 * 64);
  CHECK(r.to_json()["bad"] == 2);
  CHECK_THAT(r.to_text(), Catch::Contains("(ignore)") && Catch::Contains("t-shirt/top"));
}

TEST_CASE("bfcn data make / check command line", "[datasets][cli]") {
  const fs::path bfcn = test::bfcn_binary();
  REQUIRE(fs::exists(bfcn));
  test::TempDir dir;
  fs::create_directories(dir / "src");
  write_idx(dir / "src", "train", {0, 1, 2});
  write_idx(dir / "src", "t10k", {3, 4});
  const std::string out = (dir / "fs").string();
  test::RunResult r = test::run_command(bfcn.string() + " data make fashion-seg --out " + out +
                                        " --train 6 --val 2 --size 64 --seed 3 --fashion-mnist " +
                                        (dir / "src").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("6 train + 2 val"));
  const std::string json_file = (dir / "report.json").string();
  r = test::run_command(bfcn.string() + " data check --dataset voc --root " + out +
                        " --split train --json " + json_file);
  INFO(r.output);
  REQUIRE(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("6 ok, 0 bad") && Catch::Contains("(ignore)"));
  std::ifstream jf(json_file);
  const nlohmann::json j = nlohmann::json::parse(jf);
  CHECK(j["samples"] == 6);
  CHECK(j["class_pixels"].size() == 11);

  std::vector<uint8_t> lab(64 * 64, 99);
  write_label_png(dir / "fs/SegmentationClass/train_000002.png", lab.data(), 64, 64, nullptr);
  r = test::run_command(bfcn.string() + " data check --dataset voc --root " + out);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("train_000002.png") && Catch::Contains("1 of 6"));
  r = test::run_command(bfcn.string() + " data check --dataset voc --root " + out +
                        " --split nope");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("nope.txt"));
  r = test::run_command(bfcn.string() + " data make fashion-seg --out " + out + " --colour 1");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("unknown flag '--colour'"));
  r = test::run_command(bfcn.string() + " data check --root " + out);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("--dataset is required"));
}
