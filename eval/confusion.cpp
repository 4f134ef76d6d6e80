// Confusion matrix accumulation and the metric formulas. IoU_c = tp / (tp + fp + fn) with
// fn = gt_total - tp (includes misses predicted as ignore) and fp = pred_total - tp (only valid
// GT).
#include "eval/confusion.h"

#include <cmath>
#include <cstdio>
#include <limits>

#include "core/error.h"

namespace bfcn {

namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <class P>
void add_pixels(std::vector<uint64_t>& counts, int n, int ignore, const uint8_t* gt, const P* pred,
                int64_t count) {
  const int stride = n + 1;
  for (int64_t i = 0; i < count; ++i) {
    const int g = gt[i];
    const int64_t p = pred[i];
    if (g == ignore) continue;
    BFCN_CHECK(g < n, "ConfusionMatrix: ground-truth value ", g, " at pixel ", i,
               " is outside [0, ", n, ") and is not the ignore index ", ignore);
    if (p >= 0 && p < n) {
      ++counts[static_cast<size_t>(g * stride + p)];
    } else {
      BFCN_CHECK(p == ignore, "ConfusionMatrix: predicted value ", p, " at pixel ", i,
                 " is outside [0, ", n, ") and is not the ignore index ", ignore);
      ++counts[static_cast<size_t>(g * stride + n)];
    }
  }
}

std::string fmt_pct(double v) {
  if (std::isnan(v)) return "   nan";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%6.2f", 100.0 * v);
  return buf;
}

std::string class_name(const std::vector<std::string>& names, size_t c) {
  return c < names.size() ? names[c] : "class_" + std::to_string(c);
}

}  // namespace

ConfusionMatrix::ConfusionMatrix(int n_classes, int ignore_index)
    : n_(n_classes), ignore_(ignore_index) {
  BFCN_CHECK(n_classes >= 1 && n_classes <= 255, "ConfusionMatrix: n_classes must be 1..255, got ",
             n_classes);
  BFCN_CHECK(ignore_index >= n_classes, "ConfusionMatrix: ignore_index ", ignore_index,
             " must not be a class index (n_classes ", n_classes, ")");
  counts_.assign(static_cast<size_t>(n_) * (n_ + 1), 0);
}

void ConfusionMatrix::add(const uint8_t* gt, const int32_t* pred, int64_t n) {
  add_pixels(counts_, n_, ignore_, gt, pred, n);
}

void ConfusionMatrix::add(const uint8_t* gt, const uint8_t* pred, int64_t n) {
  add_pixels(counts_, n_, ignore_, gt, pred, n);
}

void ConfusionMatrix::add(const Tensor& gt_labels, const Tensor& pred) {
  BFCN_CHECK(gt_labels.dtype() == DType::u8, "ConfusionMatrix::add: ground truth must be u8, got ",
             dtype_name(gt_labels.dtype()));
  BFCN_CHECK(gt_labels.ndim() == 2 || gt_labels.ndim() == 3,
             "ConfusionMatrix::add: ground truth must be [N,H,W] or [H,W], got ",
             gt_labels.shape().str());
  check_same_shape(pred, gt_labels, "ConfusionMatrix::add (prediction vs ground truth)");
  if (pred.dtype() == DType::i32) {
    add(gt_labels.data<uint8_t>(), pred.data<int32_t>(), gt_labels.numel());
  } else {
    BFCN_CHECK(pred.dtype() == DType::u8,
               "ConfusionMatrix::add: prediction must be i32 or u8, got ",
               dtype_name(pred.dtype()));
    add(gt_labels.data<uint8_t>(), pred.data<uint8_t>(), gt_labels.numel());
  }
}

void ConfusionMatrix::merge(const ConfusionMatrix& o) {
  BFCN_CHECK(o.n_ == n_ && o.ignore_ == ignore_, "ConfusionMatrix::merge: expected ", n_,
             " classes / ignore ", ignore_, ", but got ", o.n_, " / ", o.ignore_);
  for (size_t i = 0; i < counts_.size(); ++i) counts_[i] += o.counts_[i];
}

void ConfusionMatrix::add_count(int gt, int pred, uint64_t count) {
  BFCN_CHECK(gt >= 0 && gt < n_, "ConfusionMatrix::add_count: gt ", gt, " outside [0, ", n_, ")");
  BFCN_CHECK((pred >= 0 && pred < n_) || pred == ignore_, "ConfusionMatrix::add_count: pred ", pred,
             " outside [0, ", n_, ") and not ", ignore_);
  counts_[static_cast<size_t>(gt * (n_ + 1) + (pred == ignore_ ? n_ : pred))] += count;
}

void ConfusionMatrix::reset() { std::fill(counts_.begin(), counts_.end(), 0); }

uint64_t ConfusionMatrix::at(int gt, int pred) const {
  BFCN_CHECK(gt >= 0 && gt < n_ && pred >= 0 && pred < n_, "ConfusionMatrix::at: (", gt, ", ", pred,
             ") outside [0, ", n_, ")");
  return counts_[static_cast<size_t>(gt * (n_ + 1) + pred)];
}

uint64_t ConfusionMatrix::missed(int gt) const {
  BFCN_CHECK(gt >= 0 && gt < n_, "ConfusionMatrix::missed: ", gt, " outside [0, ", n_, ")");
  return counts_[static_cast<size_t>(gt * (n_ + 1) + n_)];
}

uint64_t ConfusionMatrix::gt_total(int gt) const {
  uint64_t s = 0;
  for (int p = 0; p <= n_; ++p) s += counts_[static_cast<size_t>(gt * (n_ + 1) + p)];
  return s;
}

uint64_t ConfusionMatrix::pred_total(int pred) const {
  uint64_t s = 0;
  for (int g = 0; g < n_; ++g) s += counts_[static_cast<size_t>(g * (n_ + 1) + pred)];
  return s;
}

uint64_t ConfusionMatrix::total() const {
  uint64_t s = 0;
  for (uint64_t c : counts_) s += c;
  return s;
}

Metrics compute_metrics(const ConfusionMatrix& cm) {
  const int n = cm.n_classes();
  Metrics m;
  m.iou.assign(n, kNaN);
  m.acc.assign(n, kNaN);
  const uint64_t valid = cm.total();
  m.valid_pixels = static_cast<int64_t>(valid);
  uint64_t tp_sum = 0;
  double iou_sum = 0, acc_sum = 0, fw = 0;
  int n_acc = 0;
  for (int c = 0; c < n; ++c) {
    const uint64_t tp = cm.at(c, c), g = cm.gt_total(c), p = cm.pred_total(c);
    tp_sum += tp;
    const uint64_t denom = g + p - tp;  // tp + fn + fp
    if (denom > 0) {
      m.iou[c] = static_cast<double>(tp) / static_cast<double>(denom);
      iou_sum += m.iou[c];
      ++m.n_present;
    }
    if (g > 0) {
      m.acc[c] = static_cast<double>(tp) / static_cast<double>(g);
      acc_sum += m.acc[c];
      ++n_acc;
      fw += static_cast<double>(g) / static_cast<double>(valid) * m.iou[c];
    }
  }
  m.miou = m.n_present ? iou_sum / m.n_present : kNaN;
  m.mean_acc = n_acc ? acc_sum / n_acc : kNaN;
  m.pixel_acc = valid ? static_cast<double>(tp_sum) / static_cast<double>(valid) : kNaN;
  m.fwiou = valid ? fw : kNaN;
  return m;
}

nlohmann::json metrics_to_json(const Metrics& m, const std::vector<std::string>& class_names) {
  auto num = [](double v) { return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v); };
  nlohmann::json j;
  j["miou"] = num(m.miou);
  j["pixel_acc"] = num(m.pixel_acc);
  j["mean_acc"] = num(m.mean_acc);
  j["fwiou"] = num(m.fwiou);
  j["valid_pixels"] = m.valid_pixels;
  j["n_classes"] = m.iou.size();
  j["n_present"] = m.n_present;
  nlohmann::json iou = nlohmann::json::object(), acc = nlohmann::json::object();
  for (size_t c = 0; c < m.iou.size(); ++c) {
    iou[class_name(class_names, c)] = num(m.iou[c]);
    acc[class_name(class_names, c)] = num(m.acc[c]);
  }
  j["per_class_iou"] = iou;
  j["per_class_acc"] = acc;
  return j;
}

std::string metrics_table(const Metrics& m, const std::vector<std::string>& class_names) {
  size_t w = 5;
  for (size_t c = 0; c < m.iou.size(); ++c) w = std::max(w, class_name(class_names, c).size());
  auto pad = [w](std::string s) { return s + std::string(w - std::min(w, s.size()), ' '); };
  std::string out = pad("class") + "   IoU %   acc %\n" + std::string(w + 16, '-') + "\n";
  for (size_t c = 0; c < m.iou.size(); ++c)
    out += pad(class_name(class_names, c)) + "  " + fmt_pct(m.iou[c]) + "  " + fmt_pct(m.acc[c]) +
           "\n";
  out += std::string(w + 16, '-') + "\n";
  out += pad("mIoU") + "  " + fmt_pct(m.miou) + "   (" + std::to_string(m.n_present) + " of " +
         std::to_string(m.iou.size()) + " classes present)\n";
  out += pad("pixel acc") + "  " + fmt_pct(m.pixel_acc) + "\n";
  out += pad("mean acc") + "  " + fmt_pct(m.mean_acc) + "\n";
  out += pad("fwIoU") + "  " + fmt_pct(m.fwiou) + "\n";
  out += pad("pixels") + "  " + std::to_string(m.valid_pixels) + " valid\n";
  return out;
}

std::string metrics_markdown(const Metrics& m, const std::vector<std::string>& class_names) {
  std::string out = "| class | IoU % | acc % |\n|---|---:|---:|\n";
  auto cell = [](double v) {
    if (std::isnan(v)) return std::string("—");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", 100.0 * v);
    return std::string(buf);
  };
  for (size_t c = 0; c < m.iou.size(); ++c)
    out += "| " + class_name(class_names, c) + " | " + cell(m.iou[c]) + " | " + cell(m.acc[c]) +
           " |\n";
  out += "| **mIoU** | **" + cell(m.miou) + "** | |\n";
  out += "\npixel acc " + cell(m.pixel_acc) + " %, mean acc " + cell(m.mean_acc) + " %, fwIoU " +
         cell(m.fwiou) + " %, " + std::to_string(m.n_present) + " of " +
         std::to_string(m.iou.size()) + " classes present, " + std::to_string(m.valid_pixels) +
         " valid pixels.\n";
  return out;
}

}  // namespace bfcn
