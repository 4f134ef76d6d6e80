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

void draw_panel(cv::Mat& img, cv::Rect area, const std::vector<MetricsLog::Point>& pts,
                const std::string& title, const cv::Scalar& color, bool dots) {
  const cv::Scalar black(0, 0, 0), grey(200, 200, 200);
  const int ml = 60, mr = 15, mt = 30, mb = 40;
  const cv::Rect plot(area.x + ml, area.y + mt, area.width - ml - mr, area.height - mt - mb);
  cv::rectangle(img, plot, black, 1);
  cv::putText(img, title, {area.x + ml, area.y + 20}, cv::FONT_HERSHEY_SIMPLEX, 0.55, black, 1,
              cv::LINE_AA);
  cv::putText(img, "iteration", {plot.x + plot.width / 2 - 35, plot.y + plot.height + 35},
              cv::FONT_HERSHEY_SIMPLEX, 0.45, black, 1, cv::LINE_AA);
  if (pts.empty()) return;
  double x0 = static_cast<double>(pts.front().iter), x1 = static_cast<double>(pts.back().iter);
  double y0 = pts.front().value, y1 = pts.front().value;
  for (const auto& p : pts) {
    x0 = std::min(x0, static_cast<double>(p.iter));
    x1 = std::max(x1, static_cast<double>(p.iter));
    y0 = std::min(y0, p.value);
    y1 = std::max(y1, p.value);
  }
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
  std::vector<cv::Point> line;
  line.reserve(pts.size());
  for (const auto& p : pts) line.push_back(to_px(static_cast<double>(p.iter), p.value));
  cv::polylines(img, line, false, color, 2, cv::LINE_AA);
  if (dots)
    for (const auto& q : line) cv::circle(img, q, 3, color, cv::FILLED, cv::LINE_AA);
  const auto font = cv::FONT_HERSHEY_SIMPLEX;
  cv::putText(img, fmt(y1), {area.x + 5, plot.y + 10}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(y0), {area.x + 5, plot.y + plot.height}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(x0), {plot.x, plot.y + plot.height + 15}, font, 0.4, black, 1, cv::LINE_AA);
  cv::putText(img, fmt(x1), {plot.x + plot.width - 40, plot.y + plot.height + 15}, font, 0.4, black,
              1, cv::LINE_AA);
  cv::putText(img, "last " + fmt(pts.back().value), {plot.x + plot.width - 110, plot.y - 8}, font,
              0.45, color, 1, cv::LINE_AA);
}

}  // namespace

void write_curves_png(const std::filesystem::path& file, const std::vector<MetricsLog::Point>& loss,
                      const std::vector<MetricsLog::Point>& val_miou) {
  const int w = 500, h = 360;
  cv::Mat img(h, 2 * w, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_panel(img, {0, 0, w, h}, loss, "training loss", cv::Scalar(200, 90, 30), false);
  draw_panel(img, {w, 0, w, h}, val_miou, "validation mIoU", cv::Scalar(40, 150, 40), true);
  const std::string tmp = file.string() + ".tmp.png";
  BFCN_CHECK_IO(cv::imwrite(tmp, img), tmp, ": cannot write the curves image");
  std::filesystem::rename(tmp, file);
}

}  // namespace bfcn
