// Training curves drawn with OpenCV (no plotting library): left panel training loss vs iteration,
// right panel validation mIoU vs iteration, written as a PNG (atomically, temp file + rename).
// write_series_png draws several runs on the same two panels (the demo report's curves.png).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "train/metrics_log.h"

namespace bfcn {

void write_curves_png(const std::filesystem::path& file, const std::vector<MetricsLog::Point>& loss,
                      const std::vector<MetricsLog::Point>& val_miou);

struct PlotSeries {
  std::string name;              // legend entry ("" for a lone series)
  std::array<uint8_t, 3> rgb{};  // line colour
  std::vector<MetricsLog::Point> points;
};

// Left panel: every loss series; right panel: every val-mIoU series (points drawn as dots). Each
// series is labelled with its name and last value; the axes span all series.
void write_series_png(const std::filesystem::path& file, const std::vector<PlotSeries>& loss,
                      const std::vector<PlotSeries>& val_miou);

}  // namespace bfcn
