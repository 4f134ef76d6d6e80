// DIR/metrics.jsonl: one JSON object per line, per logged training step
// ({"iter","loss" (mean since the last line),"loss_last","lr","img_s"}) and per validation
// ({"iter","val_miou","val_pixel_acc", "val_per_class_iou"}). On resume the file is cut back to the
// checkpoint's iteration, so a resumed run's log reads like an uninterrupted one. The in-memory
// history feeds the curves plot.
#pragma once

#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <vector>

namespace bfcn {

class MetricsLog {
 public:
  // Opens DIR/metrics.jsonl. resume_from < 0: start fresh (truncate); otherwise keep the lines
  // with iter <= resume_from and drop the rest.
  MetricsLog(const std::filesystem::path& file, int64_t resume_from);

  void log(const nlohmann::json& record);  // must hold "iter"; flushed at once

  struct Point {
    int64_t iter;
    double value;
  };
  const std::vector<Point>& losses() const { return losses_; }
  const std::vector<Point>& val_miou() const { return val_miou_; }
  const std::filesystem::path& file() const { return file_; }

 private:
  void remember(const nlohmann::json& record);
  std::filesystem::path file_;
  std::vector<Point> losses_, val_miou_;
};

// All records of a metrics.jsonl file (for tests and tools).
std::vector<nlohmann::json> read_metrics_file(const std::filesystem::path& file);

}  // namespace bfcn
