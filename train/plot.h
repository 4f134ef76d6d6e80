// Training curves drawn with OpenCV (no plotting library): left panel training loss vs iteration,
// right panel validation mIoU vs iteration, written as a PNG (atomically, temp file + rename).
#pragma once

#include <filesystem>

#include "train/metrics_log.h"

namespace bfcn {

void write_curves_png(const std::filesystem::path& file, const std::vector<MetricsLog::Point>& loss,
                      const std::vector<MetricsLog::Point>& val_miou);

}  // namespace bfcn
