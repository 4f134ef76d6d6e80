// evaluate_dataset over an in-memory dataset whose images encode their labels (red = 20 * class),
// so an "oracle" LogitsFn scores exactly 1 and a biased one a hand-computed value; save_prediction
// writes raw PNGs that read back to the prediction, colour masks and panels.
#include "eval/evaluate.h"

#include "datasets/cityscapes.h"
#include "eval/pred_folder.h"
#include "eval/visualize.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

class TinyDataset : public SegDataset {
 public:
  TinyDataset() {
    // Two 6x8 samples: left half class 1, right half class 2, a void column; second has class 0
    // rows.
    for (int k = 0; k < 2; ++k) {
      RawSample s;
      s.id = "img" + std::to_string(k);
      s.label.height = s.image.height = 6;
      s.label.width = s.image.width = 8;
      s.label.data.resize(48);
      s.image.data.resize(48 * 3);
      for (int y = 0; y < 6; ++y)
        for (int x = 0; x < 8; ++x) {
          uint8_t c = x < 4 ? 1 : 2;
          if (k == 1 && y < 2) c = 0;
          const size_t i = static_cast<size_t>(y) * 8 + x;
          s.image.data[i * 3] = static_cast<uint8_t>(20 * c);
          s.image.data[i * 3 + 1] = 100;
          s.image.data[i * 3 + 2] = 50;
          s.label.data[i] = x == 7 ? 255 : c;  // void column: image still says class 2
        }
      samples_.push_back(s);
    }
  }
  size_t size() const override { return samples_.size(); }
  RawSample load(size_t i) const override { return samples_.at(i); }
  const std::string& id(size_t i) const override { return samples_.at(i).id; }
  const std::vector<std::string>& class_names() const override { return names_; }
  const Palette& palette() const override { return palette_; }
  std::string describe() const override { return "tiny (2 samples)"; }

 private:
  std::vector<RawSample> samples_;
  std::vector<std::string> names_{"zero", "one", "two"};
  Palette palette_ = voc_palette();
};

// Decodes the class from the normalised red channel (mean 0, std 1 → v/255) as one-hot logits;
// `bias_to` (>= 0) turns every class-1 pixel in the top row into that class.
LogitsFn oracle(int bias_to = -1) {
  return [bias_to](const Tensor& x) {
    const int64_t h = x.dim(2), w = x.dim(3), n = h * w;
    Tensor y = Tensor::zeros({1, 3, h, w});
    for (int64_t i = 0; i < n; ++i) {
      int c = static_cast<int>(std::lround(x.f32()[i] * 255.0f / 20.0f));
      if (c < 0 || c > 2) c = 0;  // padding
      if (bias_to >= 0 && c == 1 && i < w) c = bias_to;
      y.f32()[c * n + i] = 1.0f;
    }
    return y;
  };
}

}  // namespace

TEST_CASE("evaluate: oracle model scores 1, a biased one the hand-computed value", "[eval]") {
  TinyDataset ds;
  EvaluateOptions o;
  o.mean = {0, 0, 0};
  o.std = {1, 1, 1};
  o.log_every = 0;
  o.inference.pad_multiple = 4;
  EvaluateResult r = evaluate_dataset(ds, oracle(), o);
  REQUIRE(r.n_images == 2);
  REQUIRE(r.metrics.miou == 1.0);
  REQUIRE(r.metrics.valid_pixels == 2 * 6 * 7);
  // Top row: 4 class-1 pixels per image predicted as 2 in image 0 only (image 1's top rows are 0).
  r = evaluate_dataset(ds, oracle(2), o);
  // class 0: 14 px, IoU 1; class 1: GT 24+16=40, tp 36 → 36/40; class 2: GT 18+12=30, pred 34 →
  // 30/34.
  REQUIRE(r.metrics.iou[0] == 1.0);
  REQUIRE(r.metrics.iou[1] == Approx(36.0 / 40));
  REQUIRE(r.metrics.iou[2] == Approx(30.0 / 34));
  // Same through the short form, with flip + sliding windows (the oracle is position-free).
  InferenceOptions inf;
  inf.sliding = true;
  inf.window_h = 4;
  inf.window_w = 4;
  inf.flip = true;
  inf.pad_multiple = 1;
  Metrics m = evaluate_dataset(ds, oracle(), {0, 0, 0}, {1, 1, 1}, inf);
  REQUIRE(m.miou == 1.0);
  // A model with the wrong class count is reported.
  LogitsFn four = [](const Tensor& x) { return Tensor::zeros({1, 4, x.dim(2), x.dim(3)}); };
  REQUIRE_THROWS_WITH(evaluate_dataset(ds, four, o),
                      Catch::Contains("model outputs 4 classes but dataset tiny"));
}

TEST_CASE("evaluate: image_to_tensor normalises per channel", "[eval]") {
  ImageRGB im;
  im.height = 1;
  im.width = 2;
  im.data = {255, 0, 51, 0, 255, 102};
  Tensor t = image_to_tensor(im, {0.5f, 0.5f, 0.0f}, {0.5f, 0.25f, 0.2f});
  REQUIRE(t.shape() == Shape{1, 3, 1, 2});
  REQUIRE(t.f32()[0] == Approx(1.0f));
  REQUIRE(t.f32()[1] == Approx(-1.0f));
  REQUIRE(t.f32()[2] == Approx(-2.0f));
  REQUIRE(t.f32()[3] == Approx(2.0f));
  REQUIRE(t.f32()[4] == Approx(1.0f));
  REQUIRE(t.f32()[5] == Approx(2.0f));
}

TEST_CASE("evaluate: --save-pred writes raw labels, colour masks and panels", "[eval]") {
  TinyDataset ds;
  test::TempDir tmp("bfcn_eval_save");
  EvaluateOptions o;
  o.mean = {0, 0, 0};
  o.std = {1, 1, 1};
  o.log_every = 0;
  o.save_pred_dir = tmp.path();
  evaluate_dataset(ds, oracle(2), o);
  LabelMap raw = read_label_png(tmp / "img0.png");
  REQUIRE(raw.was_palette);
  REQUIRE(raw.width == 8);
  REQUIRE(raw.at(0, 0) == 2);  // biased top row
  REQUIRE(raw.at(1, 0) == 1);
  REQUIRE(raw.at(1, 7) == 2);  // void GT pixel still gets a prediction
  ImageRGB color = read_image_rgb(tmp / "color/img0_color.png");
  const Palette pal = voc_palette();
  REQUIRE(color.pixel(1, 0)[0] == pal[1][0]);
  REQUIRE(color.pixel(1, 0)[1] == pal[1][1]);
  REQUIRE(color.pixel(0, 0)[1] == pal[2][1]);
  ImageRGB panel = read_image_rgb(tmp / "panel/img1_panel.png");
  REQUIRE(panel.width == 3 * 8);
  REQUIRE(panel.height > 6);  // legend strip below the tiles

  // Cityscapes ids "<city>/<stem>" become labelIds files; trainId 255 → labelId 0.
  LabelMap pred;
  pred.height = 1;
  pred.width = 3;
  pred.data = {0, 13, 255};
  ImageRGB img;
  img.height = 1;
  img.width = 3;
  img.data.assign(9, 0);
  save_prediction(tmp.path(), "aachen/aachen_000000_000019", pred, img, nullptr,
                  cityscapes_train_palette(), {}, true);
  LabelMap lid = read_label_png(tmp / "aachen/aachen_000000_000019_labelIds.png");
  REQUIRE_FALSE(lid.was_palette);
  REQUIRE(lid.data == std::vector<uint8_t>{7, 26, 0});
  REQUIRE(fs::exists(tmp / "color/aachen/aachen_000000_000019_color.png"));
}

TEST_CASE("visualize: panel tiles hold image, GT and prediction colours, big frames shrink",
          "[eval]") {
  const int H = 100, W = 160;
  ImageRGB im;
  im.height = H;
  im.width = W;
  im.data.assign(H * W * 3, 77);
  LabelMap gt, pred;
  gt.height = pred.height = H;
  gt.width = pred.width = W;
  gt.data.assign(H * W, 15);
  pred.data.assign(H * W, 12);
  const Palette pal = voc_palette();
  ImageRGB p = make_panel(im, &gt, pred, pal, {});
  REQUIRE(p.width == 3 * W);
  // Bottom-right pixel of each tile (away from the title box).
  REQUIRE(p.pixel(H - 1, W - 1)[0] == 77);
  REQUIRE(p.pixel(H - 1, 2 * W - 1)[0] == pal[15][0]);
  REQUIRE(p.pixel(H - 1, 3 * W - 1)[2] == pal[12][2]);
  PanelOptions small;
  small.max_tile_width = 80;
  ImageRGB q = make_panel(im, nullptr, pred, pal, {}, small);
  REQUIRE(q.width == 2 * 80);
  REQUIRE(q.height > 50);
  LabelMap wrong = pred;
  wrong.width = 40;
  wrong.data.resize(40 * H);
  REQUIRE_THROWS_WITH(make_panel(im, nullptr, wrong, pal, {}),
                      Catch::Contains("image is 160x100 but the prediction is 40x100"));
}

TEST_CASE("evaluate: Cityscapes --save-pred labelIds score the same through --pred-dir", "[eval]") {
  if (!test::shared_available()) BFCN_SKIP("../shared/data absent: Cityscapes round trip skipped");
  const fs::path root = test::shared_dir() / "data/cityscapes_sample_tiny";
  CityscapesDataset ds(root, "val");
  REQUIRE(ds.size() == 1);
  // Stripes of every trainId across the image (position only, so the image content is unused).
  LogitsFn stripes = [](const Tensor& x) {
    const int64_t h = x.dim(2), w = x.dim(3), n = h * w;
    Tensor y = Tensor::zeros({1, 19, h, w});
    for (int64_t i = 0; i < n; ++i) y.f32()[((i % w) / 8 % 19) * n + i] = 1.0f;
    return y;
  };
  test::TempDir tmp("bfcn_eval_cs_save");
  EvaluateOptions o;
  o.save_pred_dir = tmp.path();
  o.cityscapes_label_ids = true;
  o.log_every = 0;
  EvaluateResult direct = evaluate_dataset(ds, stripes, o);
  REQUIRE(fs::exists(tmp / "frankfurt/frankfurt_000000_000294_labelIds.png"));
  FolderEvalOptions fo;
  fo.dataset = EvalDataset::cityscapes;
  FolderEvalResult folder = evaluate_prediction_folder(tmp.path(), root / "gtFine", fo);
  REQUIRE(folder.pred_format == PredFormat::label_ids);
  REQUIRE(folder.n_images == 1);
  REQUIRE(folder.metrics.miou == direct.metrics.miou);
  REQUIRE(folder.metrics.valid_pixels == direct.metrics.valid_pixels);
  REQUIRE(direct.metrics.miou > 0.0);
  REQUIRE(direct.metrics.miou < 0.5);
}
