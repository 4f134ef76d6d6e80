// Line plots on a white canvas: axes with min/max tick labels, the series as a polyline
// (validation points also as dots). Empty series leave an empty, labelled panel.
#include "train/plot.h"

#include <algorithm>
#include <cstdio>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <string>

#include "core/error.h"

namespace bfcn {

namespace {

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

cv::Scalar bgr(const std::array<uint8_t, 3>& rgb) { return cv::Scalar(rgb[2], rgb[1], rgb[0]); }

void draw_panel(cv::Mat& img, cv::Rect area, const std::vector<PlotSeries>& series,
                const std::string& title, bool dots) {
  const cv::Scalar black(0, 0, 0), grey(200, 200, 200);
  // Several series: their legend lines sit between the title and the plot.
  const int n_legend = series.size() > 1 ? static_cast<int>(series.size()) : 0;
  const int ml = 60, mr = 15, mt = 30 + 18 * n_legend, mb = 40;
  const cv::Rect plot(area.x + ml, area.y + mt, area.width - ml - mr, area.height - mt - mb);
  cv::rectangle(img, plot, black, 1);
  cv::putText(img, title, {area.x + ml, area.y + 20}, cv::FONT_HERSHEY_SIMPLEX, 0.55, black, 1,
              cv::LINE_AA);
  cv::putText(img, "iteration", {plot.x + plot.width / 2 - 35, plot.y + plot.height + 35},
              cv::FONT_HERSHEY_SIMPLEX, 0.45, black, 1, cv::LINE_AA);
  bool any = false;
  double x0 = 0, x1 = 0, y0 = 0, y1 = 0;
  for (const auto& s : series)
    for (const auto& p : s.points) {
      const double x = static_cast<double>(p.iter);
      if (!any) {
        x0 = x1 = x;
        y0 = y1 = p.value;
        any = true;
      }
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, p.value);
      y1 = std::max(y1, p.value);
    }
  if (!any) return;
  if (x1 == x0) x1 = x0 + 1;
  if (y1 - y0 < 1e-9) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const double pad = 0.05 * (y1 - y0);
  y0 -= pad;
  y1 += pad;
  for (int k = 1; k < 4; ++k) {  // light grid
    const int gy = plot.y + plot.height * k / 4;
    cv::line(img, {plot.x + 1, gy}, {plot.x + plot.width - 1, gy}, grey, 1);
  }
  auto to_px = [&](double x, double y) {
    return cv::Point(plot.x + static_cast<int>((x - x0) / (x1 - x0) * (plot.width - 1)),
                     plot.y + static_cast<int>((y1 - y) / (y1 - y0) * (plot.height - 1)));
  };
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  int legend_y = area.y + 44;
  for (const auto& s : series) {
    if (s.points.empty()) continue;
    std::vector<cv::Point> line;
    line.reserve(s.points.size());
    for (const auto& p : s.points) line.push_back(to_px(static_cast<double>(p.iter), p.value));
    cv::polylines(img, line, false, bgr(s.rgb), 2, cv::LINE_AA);
    if (dots)
      for (const auto& q : line) cv::circle(img, q, 3, bgr(s.rgb), cv::FILLED, cv::LINE_AA);
    // Legend: right-aligned above the plot, one line per series (a lone series: its last value).
    const std::string text =
        (s.name.empty() ? "" : s.name + ": ") + "last " + fmt(s.points.back().value);
    int base = 0;
    const int tw = cv::getTextSize(text, font, 0.45, 1, &base).width;
    cv::putText(img, text, {plot.x + plot.width - tw - 4, n_legend > 0 ? legend_y : plot.y - 8},
                font, 0.45, bgr(s.rgb), 1, cv::LINE_AA);
    legend_y += 18;
  }
  cv::putText(img, fmt(y1), {area.x + 5, plot.y + 10}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(y0), {area.x + 5, plot.y + plot.height}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(x0), {plot.x, plot.y + plot.height + 15}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(x1), {plot.x + plot.width - 40, plot.y + plot.height + 15}, font, 0.4, black,
              1, cv::LINE_AA);
}

void write_png(const std::filesystem::path& file, const cv::Mat& img) {
  const std::string tmp = file.string() + ".tmp.png";
  BFCN_CHECK_IO(cv::imwrite(tmp, img), tmp, ": cannot write the curves image");
  std::filesystem::rename(tmp, file);
}

}  // namespace

void write_curves_png(const std::filesystem::path& file, const std::vector<MetricsLog::Point>& loss,
                      const std::vector<MetricsLog::Point>& val_miou) {
  const int w = 500, h = 360;
  cv::Mat img(h, 2 * w, CV_8UC3, cv::Scalar(255, 255, 255));
  // One series per panel: loss in blue, mIoU in green.
  draw_panel(img, {0, 0, w, h}, {{"", {30, 90, 200}, loss}}, "training loss", false);
  draw_panel(img, {w, 0, w, h}, {{"", {40, 150, 40}, val_miou}}, "validation mIoU", true);
  write_png(file, img);
}

void write_series_png(const std::filesystem::path& file, const std::vector<PlotSeries>& loss,
                      const std::vector<PlotSeries>& val_miou) {
  const int w = 560, h = 400;
  cv::Mat img(h, 2 * w, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_panel(img, {0, 0, w, h}, loss, "training loss", false);
  draw_panel(img, {w, 0, w, h}, val_miou, "validation mIoU", true);
  write_png(file, img);
}

}  // namespace bfcn
