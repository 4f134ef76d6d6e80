// Prediction-folder evaluation: a hand-computed synthetic VOC set, GT-as-prediction = 1.0 on the
// real samples, trainIds vs labelIds predictions agree, the official labelTrainIds files scored
// against labelIds GT match the independent Python implementation of the official protocol, and
// bad inputs (missing predictions, RGB PNG, size mismatch, bad values) give clear errors.
#include "eval/pred_folder.h"

#include <cmath>
#include <cstdlib>
#include <fstream>

#include "datasets/cityscapes.h"
#include "datasets/image_io.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

void write_labels(const fs::path& f, int h, int w, const std::vector<uint8_t>& v) {
  fs::create_directories(f.parent_path());
  REQUIRE(v.size() == static_cast<size_t>(h * w));
  Palette pal = voc_palette();
  write_label_png(f, v.data(), h, w, &pal);
}

fs::path cs_gt_dir() { return test::shared_dir() / "data" / "cityscapes_sample" / "gtFine"; }

// The real Cityscapes frames to use (2 under sanitizers to keep the ASan run short).
std::vector<std::string> cs_frames() {
  std::vector<std::string> f{"aachen_000000_000019", "aachen_000001_000019", "aachen_000002_000019",
                             "aachen_000003_000019"};
  if (std::getenv("BFCN_SANITIZED")) f.resize(2);
  return f;
}

// GT copies of the chosen frames into dir/gtFine/train/aachen.
fs::path copy_cs_gt(const fs::path& dir) {
  fs::path g = dir / "gtFine" / "train" / "aachen";
  fs::create_directories(g);
  for (const auto& f : cs_frames())
    fs::copy_file(cs_gt_dir() / "train" / "aachen" / (f + "_gtFine_labelIds.png"),
                  g / (f + "_gtFine_labelIds.png"));
  return dir / "gtFine";
}

}  // namespace

TEST_CASE("pred folder: synthetic VOC set, hand-computed metrics", "[eval]") {
  test::TempDir tmp("bfcn_eval_voc_syn");
  // Image a (4x5): rows 0-1 background, rows 2-3 class 1, pixel (3,4) void.
  std::vector<uint8_t> ga(20, 0), pa;
  for (int i = 10; i < 20; ++i) ga[i] = 1;
  ga[19] = 255;
  pa = ga;
  pa[10] = pa[11] = 2;  // two class-1 pixels predicted as 2
  pa[19] = 1;           // void GT: not scored
  // Image b: all background, (0,0) void; one pixel predicted 1.
  std::vector<uint8_t> gb(20, 0), pb;
  gb[0] = 255;
  pb = gb;
  pb[6] = 1;
  pb[0] = 7;  // void GT: not scored
  write_labels(tmp / "gt/a.png", 4, 5, ga);
  write_labels(tmp / "gt/b.png", 4, 5, gb);
  write_labels(tmp / "pred/a.png", 4, 5, pa);
  write_labels(tmp / "pred/b.png", 4, 5, pb);
  FolderEvalOptions o;
  o.dataset = EvalDataset::voc;
  FolderEvalResult r = evaluate_prediction_folder(tmp / "pred", tmp / "gt", o);
  REQUIRE(r.n_images == 2);
  // class 0: GT 29, tp 28, pred 28 → 28/29; class 1: GT 9, tp 7, pred 8 → 7/10; class 2: 0/2.
  REQUIRE(r.metrics.iou[0] == Approx(28.0 / 29).epsilon(1e-15));
  REQUIRE(r.metrics.iou[1] == Approx(0.7).epsilon(1e-15));
  REQUIRE(r.metrics.iou[2] == 0.0);
  REQUIRE(std::isnan(r.metrics.iou[3]));
  REQUIRE(r.metrics.n_present == 3);
  REQUIRE(r.metrics.miou == Approx((28.0 / 29 + 0.7 + 0.0) / 3).epsilon(1e-15));
  REQUIRE(r.metrics.pixel_acc == Approx(35.0 / 38).epsilon(1e-15));
  REQUIRE(r.metrics.valid_pixels == 38);
  REQUIRE(r.class_names[15] == "person");
}

TEST_CASE("pred folder: VOC ground truth as prediction scores 1, a flipped block as counted",
          "[eval]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: VOC sample test skipped");
  const fs::path root = test::shared_dir() / "data/voc_sample/VOCdevkit/VOC2012";
  test::TempDir tmp("bfcn_eval_voc");
  const std::vector<std::string> ids{"2007_000063", "2011_000003", "2007_000129"};
  for (const auto& id : ids)
    fs::copy_file(root / "SegmentationClass" / (id + ".png"), tmp / (id + ".png"));
  FolderEvalOptions o;
  o.dataset = EvalDataset::voc;
  o.split = "trainval";
  FolderEvalResult r = evaluate_prediction_folder(tmp.path(), root, o);
  REQUIRE(r.n_images == 3);
  REQUIRE(r.metrics.miou == 1.0);
  REQUIRE(r.metrics.pixel_acc == 1.0);
  // Classes present in the three files: 0 2 5 9 12 15 → 6 classes, the rest NaN.
  REQUIRE(r.metrics.n_present == 6);
  REQUIRE(std::isnan(r.metrics.iou[1]));
  REQUIRE(r.metrics.valid_pixels ==
          (72224 + 78930 + 27632) + (122905 + 601 + 29270) + (54389 + 34183 + 61143));
  // The default split (val) is only 2007_000129.
  o.split = "val";
  REQUIRE(evaluate_prediction_folder(tmp.path(), root, o).n_images == 1);

  // Flip a 40x60 block of 2007_000063 to class 15 (person, absent from that image): count by hand.
  LabelMap m = read_label_png(tmp / "2007_000063.png");
  std::array<int64_t, 256> block{};  // GT values inside the block
  for (int y = 100; y < 140; ++y)
    for (int x = 200; x < 260; ++x) {
      ++block[m.at(y, x)];
      m.data[static_cast<size_t>(y) * m.width + x] = 15;
    }
  Palette pal = voc_palette();
  write_label_png(tmp / "2007_000063.png", m, &pal);
  o.split = "trainval";
  r = evaluate_prediction_folder(tmp.path(), root, o);
  const double gt0 = 72224 + 122905 + 54389, gt9 = 78930, gt12 = 27632, gt15 = 29270 + 61143;
  const double b0 = block[0], b9 = block[9], b12 = block[12];
  REQUIRE(b0 + b9 + b12 > 0);
  REQUIRE(r.metrics.iou[0] == Approx((gt0 - b0) / gt0).epsilon(1e-12));
  REQUIRE(r.metrics.iou[9] == Approx((gt9 - b9) / gt9).epsilon(1e-12));
  REQUIRE(r.metrics.iou[12] == Approx((gt12 - b12) / gt12).epsilon(1e-12));
  REQUIRE(r.metrics.iou[15] == Approx(gt15 / (gt15 + b0 + b9 + b12)).epsilon(1e-12));
  REQUIRE(r.metrics.iou[2] == 1.0);
  REQUIRE(r.metrics.iou[5] == 1.0);
}

TEST_CASE("pred folder: missing predictions are listed with the count", "[eval]") {
  test::TempDir tmp("bfcn_eval_missing");
  std::vector<uint8_t> v(6, 0);
  for (const char* id : {"a1", "a2", "a3", "a4"})
    write_labels(tmp / "gt" / (std::string(id) + ".png"), 2, 3, v);
  write_labels(tmp / "pred/a2.png", 2, 3, v);
  FolderEvalOptions o;
  o.list_missing = 2;
  REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
                      Catch::Contains("3 of 4 ground-truth images have no prediction") &&
                          Catch::Contains("a1, a3, ...") && !Catch::Contains("a4"));
  REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "nope", tmp / "gt", o),
                      Catch::Contains("prediction folder") && Catch::Contains("does not exist"));
}

TEST_CASE("pred folder: RGB prediction, size mismatch and bad values are clear errors", "[eval]") {
  test::TempDir tmp("bfcn_eval_bad");
  std::vector<uint8_t> v(12, 1);
  write_labels(tmp / "gt/x.png", 3, 4, v);
  FolderEvalOptions o;
  SECTION("RGB prediction") {
    ImageRGB rgb;
    rgb.height = 3;
    rgb.width = 4;
    rgb.data.assign(36, 128);
    fs::create_directories(tmp / "pred");
    write_image_rgb(tmp / "pred/x.png", rgb);
    REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
                        Catch::Contains((tmp / "pred/x.png").string()));
  }
  SECTION("size mismatch") {
    write_labels(tmp / "pred/x.png", 4, 3, v);
    REQUIRE_THROWS_WITH(
        evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
        Catch::Contains("is 3x4 but its ground truth") && Catch::Contains("is 4x3 (WxH)"));
  }
  SECTION("value outside the class range") {
    v[5] = 21;
    write_labels(tmp / "pred/x.png", 3, 4, v);
    REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
                        Catch::Contains("holds value 21, expected VOC class indices 0..20 or 255"));
  }
}

TEST_CASE("pred folder: Cityscapes frame ids and the protocol table", "[eval]") {
  REQUIRE(cityscapes_frame_id("aachen_000000_000019_gtFine_labelIds.png") ==
          "aachen_000000_000019");
  REQUIRE(cityscapes_frame_id("frankfurt_000001_012345.png") == "frankfurt_000001_012345");
  REQUIRE(cityscapes_frame_id("aachen_00000_000019.png").empty());
  REQUIRE(cityscapes_frame_id("aachen_000000_0000190.png").empty());
  REQUIRE(cityscapes_frame_id("_000000_000019.png").empty());
  // Our protocol table agrees with the loader's, entry by entry.
  REQUIRE(cityscapes_eval_label_to_train() == cityscapes_label_to_train());
  REQUIRE(cityscapes_eval_train_to_label() == cityscapes_train_to_label());
  for (int t = 0; t < kCityscapesNumTrainIds; ++t)
    REQUIRE(cityscapes_eval_label_to_train()[cityscapes_eval_train_to_label()[t]] == t);
  REQUIRE(eval_label_set(EvalDataset::cityscapes).class_names == cityscapes_class_names());
}

TEST_CASE("pred folder: Cityscapes GT labelIds as prediction score 1 (auto: labelIds)", "[eval]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: Cityscapes test skipped");
  test::TempDir tmp("bfcn_eval_cs_id");
  fs::path gt = copy_cs_gt(tmp / "g");
  fs::create_directories(tmp / "p" / "aachen");
  for (const auto& f : cs_frames())
    fs::copy_file(gt / "train/aachen" / (f + "_gtFine_labelIds.png"),
                  tmp / "p" / "aachen" / (f + "_leftImg8bit.png"));
  FolderEvalOptions o;
  o.dataset = EvalDataset::cityscapes;
  FolderEvalResult r = evaluate_prediction_folder(tmp / "p", gt, o);
  REQUIRE(r.n_images == static_cast<int>(cs_frames().size()));
  REQUIRE(r.pred_format == PredFormat::label_ids);
  REQUIRE_THAT(r.note, Catch::Contains("auto"));
  REQUIRE(r.metrics.miou == 1.0);
  REQUIRE(r.metrics.iou.size() == 19);
  REQUIRE(std::isnan(r.metrics.iou[16]));  // no train in these frames
}

TEST_CASE("pred folder: Cityscapes labelTrainIds vs labelIds GT: trainIds == labelIds == Python",
          "[eval]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: Cityscapes test skipped");
  test::TempDir tmp("bfcn_eval_cs");
  fs::path gt = copy_cs_gt(tmp / "g");
  // The official labelTrainIds files, once as trainIds and once converted to labelIds (255 → 0).
  fs::create_directories(tmp / "tid");
  fs::create_directories(tmp / "lid" / "aachen");
  const auto& t2l = cityscapes_train_to_label();
  for (const auto& f : cs_frames()) {
    fs::path src = cs_gt_dir() / "train/aachen" / (f + "_gtFine_labelTrainIds.png");
    fs::copy_file(src, tmp / "tid" / (f + "_pred.png"));
    LabelMap m = read_label_png(src);
    for (auto& v : m.data) v = v == 255 ? 0 : t2l[v];
    write_label_png(tmp / "lid" / "aachen" / (f + "_leftImg8bit.png"), m, nullptr);
  }
  FolderEvalOptions o;
  o.dataset = EvalDataset::cityscapes;
  FolderEvalResult rt = evaluate_prediction_folder(tmp / "tid", gt, o);
  FolderEvalResult rl = evaluate_prediction_folder(tmp / "lid", gt, o);
  REQUIRE(rt.pred_format == PredFormat::train_ids);
  REQUIRE(rl.pred_format == PredFormat::label_ids);
  REQUIRE(rt.metrics.miou == rl.metrics.miou);  // identical counts, bit-identical result
  for (int c = 0; c < 19; ++c)
    for (int p = 0; p < 19; ++p) REQUIRE(rt.cm.at(c, p) == rl.cm.at(c, p));
  REQUIRE(rt.metrics.miou < 1.0);
  REQUIRE(rt.metrics.miou > 0.95);
  // Forcing the wrong format on the trainIds folder is caught by its 255 values.
  o.pred_format = PredFormat::label_ids;
  REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "tid", gt, o),
                      Catch::Contains("holds value 255, expected labelIds 0..33"));

  // The independent Python implementation of the official protocol.
  const fs::path script = test::source_dir() / "tests/python/cityscapes_eval_reference.py";
  // A missing numpy/PIL is a missing dependency; the script failing once they import is a failure.
  const auto deps = test::run_command("/usr/bin/python3 -c 'import numpy, PIL'");
  if (deps.status != 0) BFCN_SKIP("/usr/bin/python3 cannot import numpy and PIL: " + deps.output);
  auto py =
      test::run_command("/usr/bin/python3 " + script.string() + " --gt-dir " + gt.string() +
                            " --pred-dir " + (tmp / "tid").string() + " --pred-format trainIds",
                        false);
  INFO("reference script output: " << py.output);
  REQUIRE(py.status == 0);
  nlohmann::json j = nlohmann::json::parse(py.output);
  REQUIRE(j["n_images"] == rt.n_images);
  INFO("C++ mIoU " << rt.metrics.miou << " Python " << j["miou"].get<double>());
  REQUIRE(std::abs(rt.metrics.miou - j["miou"].get<double>()) < 1e-9);
  for (int c = 0; c < 19; ++c) {
    const auto& v = j["per_class_iou"][rt.class_names[c]];
    if (v.is_null()) {
      REQUIRE(std::isnan(rt.metrics.iou[c]));
    } else {
      REQUIRE(std::abs(rt.metrics.iou[c] - v.get<double>()) < 1e-9);
    }
  }
  // The labelIds version through Python too.
  py = test::run_command("/usr/bin/python3 " + script.string() + " --gt-dir " + gt.string() +
                             " --pred-dir " + (tmp / "lid").string() + " --pred-format labelIds",
                         false);
  REQUIRE(py.status == 0);
  REQUIRE(std::abs(rl.metrics.miou - nlohmann::json::parse(py.output)["miou"].get<double>()) <
          1e-9);
}

TEST_CASE("pred folder: Cityscapes folder mixing 255 and labelIds-only values is refused",
          "[eval]") {
  test::TempDir tmp("bfcn_eval_cs_mix");
  std::vector<uint8_t> g(8, 7);  // road labelId
  std::vector<uint8_t> a(8, 0), b(8, 26);
  a[0] = 255;
  fs::create_directories(tmp / "gt/x");
  write_label_png(tmp / "gt/x/x_000000_000001_gtFine_labelIds.png", g.data(), 2, 4, nullptr);
  write_label_png(tmp / "gt/x/x_000000_000002_gtFine_labelIds.png", g.data(), 2, 4, nullptr);
  fs::create_directories(tmp / "pred");
  write_label_png(tmp / "pred/x_000000_000001.png", a.data(), 2, 4, nullptr);
  write_label_png(tmp / "pred/x_000000_000002.png", b.data(), 2, 4, nullptr);
  FolderEvalOptions o;
  o.dataset = EvalDataset::cityscapes;
  REQUIRE_THROWS_WITH(
      evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
      Catch::Contains("value 26 (labelIds only") && Catch::Contains("pass --pred-format"));
  o.pred_format = PredFormat::train_ids;
  REQUIRE_THROWS_WITH(evaluate_prediction_folder(tmp / "pred", tmp / "gt", o),
                      Catch::Contains("holds value 26, expected trainIds 0..18 or 255"));
  // With only values <= 18, auto reads trainIds: road GT (trainId 0) vs prediction 0 = road.
  write_label_png(tmp / "pred/x_000000_000002.png", a.data(), 2, 4, nullptr);
  o.pred_format = PredFormat::auto_detect;
  FolderEvalResult r = evaluate_prediction_folder(tmp / "pred", tmp / "gt", o);
  REQUIRE(r.pred_format == PredFormat::train_ids);
  REQUIRE(r.metrics.iou[0] == Approx(14.0 / 16));  // two 255 predictions are misses
  REQUIRE(r.metrics.pixel_acc == Approx(14.0 / 16));
}

TEST_CASE("pred folder: a VOC root without the requested split list is an error", "[eval]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: VOC sample test skipped");
  test::TempDir tmp("bfcn_eval_split");
  FolderEvalOptions o;
  o.split = "test";
  REQUIRE_THROWS_WITH(evaluate_prediction_folder(
                          tmp.path(), test::shared_dir() / "data/voc_sample/VOCdevkit/VOC2012", o),
                      Catch::Contains("test.txt not found (choose the list with --split)"));
}
