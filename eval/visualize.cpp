// Colouring and the comparison panel, drawn with OpenCV on RGB buffers (channel order is only
// data here: colours are given in the same R,G,B order as the pixels).
#include "eval/visualize.h"

#include <algorithm>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace bfcn {

namespace {

cv::Mat to_mat(const ImageRGB& im) {
  cv::Mat m(im.height, im.width, CV_8UC3);
  std::copy(im.data.begin(), im.data.end(), m.data);
  return m;
}

ImageRGB from_mat(const cv::Mat& m) {
  BFCN_ASSERT(m.type() == CV_8UC3 && m.isContinuous());
  ImageRGB im;
  im.height = m.rows;
  im.width = m.cols;
  im.data.assign(m.data, m.data + static_cast<size_t>(m.rows) * m.cols * 3);
  return im;
}

cv::Scalar colour(const Palette& p, int c) {
  const auto& rgb = p.at(static_cast<size_t>(c));
  return cv::Scalar(rgb[0], rgb[1], rgb[2]);
}

// White text on a dark box at (x, y) = top-left.
void label_text(cv::Mat& m, const std::string& text, int x, int y, double scale) {
  int base = 0;
  const int thick = std::max(1, static_cast<int>(scale * 2));
  cv::Size sz = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thick, &base);
  cv::rectangle(m, cv::Rect(x, y, sz.width + 8, sz.height + base + 8), cv::Scalar(0, 0, 0),
                cv::FILLED);
  cv::putText(m, text, cv::Point(x + 4, y + 4 + sz.height), cv::FONT_HERSHEY_SIMPLEX, scale,
              cv::Scalar(255, 255, 255), thick, cv::LINE_AA);
}

}  // namespace

ImageRGB colorize_labels(const LabelMap& labels, const Palette& palette) {
  BFCN_CHECK(palette.size() == 256, "colorize_labels: palette needs 256 entries, got ",
             palette.size());
  ImageRGB out;
  out.height = labels.height;
  out.width = labels.width;
  out.data.resize(labels.data.size() * 3);
  for (size_t i = 0; i < labels.data.size(); ++i) {
    const auto& c = palette[labels.data[i]];
    out.data[3 * i] = c[0];
    out.data[3 * i + 1] = c[1];
    out.data[3 * i + 2] = c[2];
  }
  return out;
}

ImageRGB make_panel(const ImageRGB& image, const LabelMap* gt, const LabelMap& pred,
                    const Palette& palette, const std::vector<std::string>& class_names,
                    const PanelOptions& o) {
  const int H = pred.height, W = pred.width;
  BFCN_CHECK(image.height == H && image.width == W, "make_panel: image is ", image.width, "x",
             image.height, " but the prediction is ", W, "x", H);
  BFCN_CHECK(!gt || (gt->height == H && gt->width == W), "make_panel: ground truth is ",
             gt ? gt->width : 0, "x", gt ? gt->height : 0, " but the prediction is ", W, "x", H);
  std::vector<cv::Mat> tiles{to_mat(image)};
  std::vector<std::string> titles{"image"};
  if (gt) {
    tiles.push_back(to_mat(colorize_labels(*gt, palette)));
    titles.push_back("ground truth");
  }
  tiles.push_back(to_mat(colorize_labels(pred, palette)));
  titles.push_back("prediction");
  const double s = W > o.max_tile_width ? static_cast<double>(o.max_tile_width) / W : 1.0;
  const int tw = std::max(1, static_cast<int>(W * s)), th = std::max(1, static_cast<int>(H * s));
  const double text_scale = std::clamp(tw / 640.0, 0.35, 0.8);
  for (size_t i = 0; i < tiles.size(); ++i) {
    if (s != 1.0)
      cv::resize(tiles[i], tiles[i], cv::Size(tw, th), 0, 0,
                 i == 0 ? cv::INTER_AREA : cv::INTER_NEAREST);
    label_text(tiles[i], titles[i], 4, 4, text_scale);
  }
  cv::Mat top;
  cv::hconcat(tiles, top);

  // Legend: classes present in gt or pred (ignore shown when the GT has it), wrapped in rows.
  std::vector<bool> present(256, false);
  for (uint8_t v : pred.data) present[v] = true;
  if (gt)
    for (uint8_t v : gt->data) present[v] = true;
  std::vector<std::pair<int, std::string>> items;
  for (int c = 0; c < 256; ++c) {
    if (!present[c]) continue;
    if (c == o.ignore_index)
      items.push_back({c, "ignore"});
    else
      items.push_back({c, c < static_cast<int>(class_names.size()) ? class_names[c]
                                                                   : "class " + std::to_string(c)});
  }
  const int thick = 1, sw = static_cast<int>(22 * text_scale / 0.5), gap = 12;
  int base = 0;
  const int row_h =
      cv::getTextSize("Ag", cv::FONT_HERSHEY_SIMPLEX, text_scale, thick, &base).height + base + 12;
  std::vector<std::vector<std::pair<int, int>>> rows(1);  // (item, x)
  int x = gap;
  for (size_t i = 0; i < items.size(); ++i) {
    const int w =
        sw + 6 +
        cv::getTextSize(items[i].second, cv::FONT_HERSHEY_SIMPLEX, text_scale, thick, &base).width +
        gap;
    if (x + w > top.cols && x > gap) {
      rows.emplace_back();
      x = gap;
    }
    rows.back().push_back({static_cast<int>(i), x});
    x += w;
  }
  cv::Mat legend(row_h * static_cast<int>(rows.size()) + 8, top.cols, CV_8UC3,
                 cv::Scalar(255, 255, 255));
  for (size_t r = 0; r < rows.size(); ++r)
    for (auto [i, x0] : rows[r]) {
      const int y0 = 4 + static_cast<int>(r) * row_h;
      const int c = items[static_cast<size_t>(i)].first;
      cv::rectangle(legend, cv::Rect(x0, y0 + 3, sw, row_h - 10), colour(palette, c), cv::FILLED);
      cv::rectangle(legend, cv::Rect(x0, y0 + 3, sw, row_h - 10), cv::Scalar(0, 0, 0), 1);
      cv::putText(legend, items[static_cast<size_t>(i)].second,
                  cv::Point(x0 + sw + 6, y0 + row_h - 10), cv::FONT_HERSHEY_SIMPLEX, text_scale,
                  cv::Scalar(0, 0, 0), thick, cv::LINE_AA);
    }
  cv::Mat out;
  cv::vconcat(top, legend, out);
  return from_mat(out);
}

}  // namespace bfcn
