// The dataset evaluation loop and prediction saving.
#include "eval/evaluate.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>

#include "core/error.h"
#include "eval/label_sets.h"
#include "eval/visualize.h"

namespace bfcn {

namespace fs = std::filesystem;

Tensor image_to_tensor(const ImageRGB& img, const std::array<float, 3>& mean,
                       const std::array<float, 3>& std) {
  const int64_t H = img.height, W = img.width, plane = H * W;
  Tensor t = Tensor::empty({1, 3, H, W});
  float* d = t.f32();
  for (int c = 0; c < 3; ++c) {
    BFCN_CHECK(std[c] > 0.0f, "image_to_tensor: std must be positive, got ", std[c]);
    const float scale = 1.0f / (255.0f * std[c]), shift = mean[c] / std[c];
    for (int64_t i = 0; i < plane; ++i)
      d[c * plane + i] =
          static_cast<float>(img.data[static_cast<size_t>(i) * 3 + c]) * scale - shift;
  }
  return t;
}

void save_prediction(const fs::path& dir, const std::string& id, const LabelMap& pred,
                     const ImageRGB& image, const LabelMap* gt, const Palette& palette,
                     const std::vector<std::string>& class_names, bool cityscapes_label_ids) {
  fs::path raw;
  if (cityscapes_label_ids) {
    // trainIds → labelIds (255 → 0 'unlabeled'), the format the Cityscapes server expects.
    LabelMap lid = pred;
    const auto& t2l = cityscapes_eval_train_to_label();
    for (auto& v : lid.data) v = v < kCityscapesNumTrainIds ? t2l[v] : 0;
    raw = dir / (id + "_labelIds.png");
    fs::create_directories(raw.parent_path());
    write_label_png(raw, lid, nullptr);
  } else {
    raw = dir / (id + ".png");
    fs::create_directories(raw.parent_path());
    write_label_png(raw, pred, &palette);
  }
  const fs::path color = dir / "color" / (id + "_color.png");
  fs::create_directories(color.parent_path());
  write_image_rgb(color, colorize_labels(pred, palette));
  const fs::path panel = dir / "panel" / (id + "_panel.png");
  fs::create_directories(panel.parent_path());
  write_image_rgb(panel, make_panel(image, gt, pred, palette, class_names));
}

EvaluateResult evaluate_dataset(const SegDataset& ds, const LogitsFn& fn,
                                const EvaluateOptions& o) {
  const auto t0 = std::chrono::steady_clock::now();
  EvaluateResult r;
  r.class_names = ds.class_names();
  const int C = ds.n_classes();
  r.cm = ConfusionMatrix(C, 255);
  size_t n = ds.size();
  if (o.max_images > 0) n = std::min(n, o.max_images);
  BFCN_CHECK(n > 0, "evaluate: dataset ", ds.describe(), " has no samples");
  for (size_t i = 0; i < n; ++i) {
    RawSample s = ds.load(i);
    Tensor logits = predict_logits(fn, image_to_tensor(s.image, o.mean, o.std), o.inference);
    BFCN_CHECK(logits.dim(1) == C, "evaluate: the model outputs ", logits.dim(1),
               " classes but dataset ", ds.describe(), " has ", C);
    Tensor labels = argmax_labels(logits);  // u8 [H,W]
    BFCN_ASSERT(labels.dim(0) == s.label.height && labels.dim(1) == s.label.width);
    r.cm.add(s.label.data.data(), labels.data<uint8_t>(), labels.numel());
    if (!o.save_pred_dir.empty()) {
      LabelMap pred;
      pred.height = s.label.height;
      pred.width = s.label.width;
      pred.data.assign(labels.data<uint8_t>(), labels.data<uint8_t>() + labels.numel());
      save_prediction(o.save_pred_dir, s.id, pred, s.image, &s.label, ds.palette(), r.class_names,
                      o.cityscapes_label_ids);
    }
    ++r.n_images;
    // A live line with ETA on a terminal; one line per log_every images otherwise (CI logs).
    const bool tty = isatty(STDERR_FILENO) != 0, last = i + 1 == n;
    if (o.log_every > 0 && (tty || r.n_images % o.log_every == 0 || last)) {
      const double sec =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double rate = r.n_images / sec;
      std::fprintf(stderr, "%seval: %d/%zu images, %.2f img/s, ETA %.0f s, running mIoU %.2f%%%s",
                   tty ? "\r" : "", r.n_images, n, rate, static_cast<double>(n - i - 1) / rate,
                   100.0 * compute_metrics(r.cm).miou, tty && !last ? "" : "\n");
    }
  }
  r.metrics = compute_metrics(r.cm);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

Metrics evaluate_dataset(const SegDataset& ds, const LogitsFn& fn, const std::array<float, 3>& mean,
                         const std::array<float, 3>& std, const InferenceOptions& inference,
                         const fs::path* save_pred_dir) {
  EvaluateOptions o;
  o.mean = mean;
  o.std = std;
  o.inference = inference;
  if (save_pred_dir) o.save_pred_dir = *save_pred_dir;
  return evaluate_dataset(ds, fn, o).metrics;
}

}  // namespace bfcn
