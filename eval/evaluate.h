// Evaluation of a model (any LogitsFn) over a SegDataset: normalise each image, dense inference
// (eval/inference.h: padding, sliding windows, TTA), argmax, accumulate the confusion matrix, and
// optionally save predictions (raw label PNGs ready for the official servers + colour mask +
// panel). Batch 1 and full resolution, as the official protocols score the original label size.
#pragma once

#include <array>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "datasets/dataset.h"
#include "eval/confusion.h"
#include "eval/inference.h"

namespace bfcn {

struct EvaluateOptions {
  std::array<float, 3> mean{0.485f, 0.456f, 0.406f};  // on [0,1] RGB, as DataConfig
  std::array<float, 3> std{0.229f, 0.224f, 0.225f};
  InferenceOptions inference;
  // Non-empty: write DIR/<id>.png (palette PNG in the dataset palette, or Cityscapes labelIds as
  // DIR/<city>/<stem>_labelIds.png when cityscapes_label_ids), DIR/color/<id>_color.png and
  // DIR/panel/<id>_panel.png.
  std::filesystem::path save_pred_dir;
  bool cityscapes_label_ids = false;
  size_t max_images = 0;  // 0 = the whole dataset
  int log_every = 50;     // one progress line on stderr every N images (0 = silent)
};

struct EvaluateResult {
  Metrics metrics;
  ConfusionMatrix cm{1};
  std::vector<std::string> class_names;
  int n_images = 0;
  double seconds = 0;  // wall time of the whole loop
};

EvaluateResult evaluate_dataset(const SegDataset& ds, const LogitsFn& fn, const EvaluateOptions& o);

// The shorter form: metrics only.
Metrics evaluate_dataset(const SegDataset& ds, const LogitsFn& fn, const std::array<float, 3>& mean,
                         const std::array<float, 3>& std, const InferenceOptions& inference,
                         const std::filesystem::path* save_pred_dir = nullptr);

// RGB u8 [H,W,3] → f32 [1,3,H,W], (v/255 - mean[c]) / std[c].
Tensor image_to_tensor(const ImageRGB& img, const std::array<float, 3>& mean,
                       const std::array<float, 3>& std);

// Writes the raw label PNG, colour mask and panel for one prediction (see EvaluateOptions).
void save_prediction(const std::filesystem::path& dir, const std::string& id, const LabelMap& pred,
                     const ImageRGB& image, const LabelMap* gt, const Palette& palette,
                     const std::vector<std::string>& class_names, bool cityscapes_label_ids);

}  // namespace bfcn
