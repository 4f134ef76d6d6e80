// Confusion matrix and segmentation metrics (mIoU, pixel/mean accuracy, fwIoU) computed exactly as
// the Cityscapes scripts and mmsegmentation do. Rows = ground truth, columns = prediction, 64-bit
// counts. GT == ignore_index pixels are skipped; a prediction equal to ignore_index on a valid GT
// pixel is kept in a separate "missed" column: a false negative of the GT class, a false positive
// of no class (the official protocol for predictions of ignoreInEval labels). See
// docs/evaluation.md.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bfcn {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int n_classes, int ignore_index = 255);

  // gt values in [0, n_classes) or ignore_index (else Error); pred in [0, n_classes) or
  // ignore_index (else Error naming the pixel and value).
  void add(const uint8_t* gt, const int32_t* pred, int64_t n);
  void add(const uint8_t* gt, const uint8_t* pred, int64_t n);
  // gt_labels u8 [N,H,W] or [H,W]; pred i32 or u8 of the same shape.
  void add(const Tensor& gt_labels, const Tensor& pred);
  void merge(const ConfusionMatrix& o);
  // Adds `count` pixels of (gt, pred) directly; pred may be ignore_index (a miss).
  void add_count(int gt, int pred, uint64_t count);
  void reset();

  uint64_t at(int gt, int pred) const;  // pred in [0, n_classes)
  uint64_t missed(int gt) const;        // valid GT pixels predicted as ignore_index
  uint64_t gt_total(int gt) const;      // all valid pixels of GT class gt (row sum incl. missed)
  uint64_t pred_total(int pred) const;  // column sum over valid GT pixels
  uint64_t total() const;               // all valid GT pixels
  int n_classes() const { return n_; }
  int ignore_index() const { return ignore_; }

 private:
  int n_;
  int ignore_;
  std::vector<uint64_t> counts_;  // [n, n + 1]: column n = missed
};

struct Metrics {
  std::vector<double> iou;  // per class; NaN when the class has no GT and no predicted pixels
  std::vector<double> acc;  // per class recall tp / gt_total; NaN when the class has no GT pixels
  double miou = 0;          // mean of the non-NaN IoUs (NaN if all are NaN)
  double pixel_acc = 0;     // sum tp / valid pixels
  double mean_acc = 0;      // mean of the non-NaN accuracies
  double fwiou = 0;         // sum_c (gt_total_c / valid) * IoU_c over classes with GT pixels
  int64_t valid_pixels = 0;
  int n_present = 0;  // classes whose IoU is not NaN (the mIoU denominator)
};

Metrics compute_metrics(const ConfusionMatrix& cm);

// {"miou", "pixel_acc", "mean_acc", "fwiou", "valid_pixels", "n_classes", "n_present",
//  "per_class_iou": {name: iou|null}, "per_class_acc": {name: acc|null}}
nlohmann::json metrics_to_json(const Metrics& m, const std::vector<std::string>& class_names);
// Fixed-width table for stdout: class, IoU %, acc %, then the summary lines.
std::string metrics_table(const Metrics& m, const std::vector<std::string>& class_names);
// A GitHub-markdown table for reports (same content).
std::string metrics_markdown(const Metrics& m, const std::vector<std::string>& class_names);

}  // namespace bfcn
