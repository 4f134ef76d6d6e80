#include "datasets/transforms.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace bfcn {

void scale_sample(RawSample& s, float factor) {
  const int h = std::max(1, static_cast<int>(std::lround(s.image.height * factor)));
  const int w = std::max(1, static_cast<int>(std::lround(s.image.width * factor)));
  if (h == s.image.height && w == s.image.width) return;
  ImageRGB img;
  img.height = h;
  img.width = w;
  img.data.resize(static_cast<size_t>(h) * w * 3);
  cv::Mat src(s.image.height, s.image.width, CV_8UC3, s.image.data.data());
  cv::Mat dst(h, w, CV_8UC3, img.data.data());
  cv::resize(src, dst, dst.size(), 0, 0, cv::INTER_LINEAR);
  // Nearest neighbour by explicit index maths (OpenCV's INTER_NEAREST is off by half a pixel).
  LabelMap lab;
  lab.height = h;
  lab.width = w;
  lab.was_palette = s.label.was_palette;
  lab.data.resize(static_cast<size_t>(h) * w);
  std::vector<int> xs(static_cast<size_t>(w));
  for (int x = 0; x < w; ++x)
    xs[static_cast<size_t>(x)] =
        std::min(s.label.width - 1, static_cast<int>((x + 0.5) * s.label.width / w));
  for (int y = 0; y < h; ++y) {
    const int sy = std::min(s.label.height - 1, static_cast<int>((y + 0.5) * s.label.height / h));
    const uint8_t* row = s.label.data.data() + static_cast<size_t>(sy) * s.label.width;
    uint8_t* out = lab.data.data() + static_cast<size_t>(y) * w;
    for (int x = 0; x < w; ++x) out[x] = row[xs[static_cast<size_t>(x)]];
  }
  s.image = std::move(img);
  s.label = std::move(lab);
}

void pad_crop_sample(RawSample& s, int crop_h, int crop_w, int y0, int x0,
                     const std::array<uint8_t, 3>& pad_rgb) {
  const int ph = std::max(crop_h, s.image.height), pw = std::max(crop_w, s.image.width);
  BFCN_CHECK(
      crop_h > 0 && crop_w > 0 && y0 >= 0 && x0 >= 0 && y0 + crop_h <= ph && x0 + crop_w <= pw,
      "pad_crop_sample: expected a ", crop_h, "x", crop_w, " window inside the padded ", ph, "x",
      pw, " sample, but got offset (", y0, ", ", x0, ")");
  ImageRGB img;
  img.height = crop_h;
  img.width = crop_w;
  img.data.resize(static_cast<size_t>(crop_h) * crop_w * 3);
  LabelMap lab;
  lab.height = crop_h;
  lab.width = crop_w;
  lab.was_palette = s.label.was_palette;
  lab.data.assign(static_cast<size_t>(crop_h) * crop_w, 255);
  for (int y = 0; y < crop_h; ++y) {
    const int sy = y0 + y;
    for (int x = 0; x < crop_w; ++x) {
      const int sx = x0 + x;
      uint8_t* d = img.data.data() + (static_cast<size_t>(y) * crop_w + x) * 3;
      if (sy < s.image.height && sx < s.image.width) {
        const uint8_t* p = s.image.pixel(sy, sx);
        d[0] = p[0];
        d[1] = p[1];
        d[2] = p[2];
        lab.data[static_cast<size_t>(y) * crop_w + x] = s.label.at(sy, sx);
      } else {
        d[0] = pad_rgb[0];
        d[1] = pad_rgb[1];
        d[2] = pad_rgb[2];
      }
    }
  }
  s.image = std::move(img);
  s.label = std::move(lab);
}

void flip_sample(RawSample& s) {
  const int h = s.image.height, w = s.image.width;
  for (int y = 0; y < h; ++y) {
    uint8_t* row = s.image.data.data() + static_cast<size_t>(y) * w * 3;
    uint8_t* lrow = s.label.data.data() + static_cast<size_t>(y) * w;
    for (int a = 0, b = w - 1; a < b; ++a, --b) {
      for (int c = 0; c < 3; ++c) std::swap(row[a * 3 + c], row[b * 3 + c]);
      std::swap(lrow[a], lrow[b]);
    }
  }
}

void jitter_image(ImageRGB& img, float brightness, float contrast, float saturation) {
  const size_t n = static_cast<size_t>(img.height) * img.width;
  double mean_gray = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = img.data.data() + i * 3;
    mean_gray += 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2];
  }
  mean_gray = n > 0 ? mean_gray / static_cast<double>(n) * brightness : 0.0;
  for (size_t i = 0; i < n; ++i) {
    uint8_t* p = img.data.data() + i * 3;
    float rgb[3];
    for (int c = 0; c < 3; ++c) rgb[c] = p[c] * brightness;
    const float gray = 0.299f * rgb[0] + 0.587f * rgb[1] + 0.114f * rgb[2];
    for (int c = 0; c < 3; ++c) {
      float v = gray + (rgb[c] - gray) * saturation;  // saturation
      v = static_cast<float>(mean_gray) +
          (v - static_cast<float>(mean_gray)) * contrast;  // contrast
      p[c] = static_cast<uint8_t>(std::clamp(std::lround(v), 0L, 255L));
    }
  }
}

void augment_sample(RawSample& s, const AugmentConfig& a, const std::array<float, 3>& mean,
                    Rng& rng) {
  // Draw every random number up front, in a fixed order, whether or not a step is enabled.
  const float u_scale = rng.uniform();
  const float u_y = rng.uniform(), u_x = rng.uniform();
  const bool flip = rng.uniform() < 0.5f;
  const float jb = rng.uniform(-1, 1), jc = rng.uniform(-1, 1), js = rng.uniform(-1, 1);

  if (a.scale_min != 1.0f || a.scale_max != 1.0f)
    scale_sample(s, a.scale_min + (a.scale_max - a.scale_min) * u_scale);
  if (a.crop[0] > 0) {
    const int ph = std::max(a.crop[0], s.image.height), pw = std::max(a.crop[1], s.image.width);
    const int y0 = std::min(ph - a.crop[0], static_cast<int>(u_y * (ph - a.crop[0] + 1)));
    const int x0 = std::min(pw - a.crop[1], static_cast<int>(u_x * (pw - a.crop[1] + 1)));
    std::array<uint8_t, 3> pad{};
    for (int c = 0; c < 3; ++c)
      pad[c] = static_cast<uint8_t>(std::clamp(std::lround(mean[c] * 255.0f), 0L, 255L));
    pad_crop_sample(s, a.crop[0], a.crop[1], y0, x0, pad);
  }
  if (a.flip && flip) flip_sample(s);
  if (a.jitter > 0) jitter_image(s.image, 1 + a.jitter * jb, 1 + a.jitter * jc, 1 + a.jitter * js);
}

void normalize_image(const ImageRGB& img, const std::array<float, 3>& mean,
                     const std::array<float, 3>& std, float* dst) {
  const size_t n = static_cast<size_t>(img.height) * img.width;
  for (int c = 0; c < 3; ++c) {
    const float scale = 1.0f / (255.0f * std[c]), shift = mean[c] / std[c];
    float* out = dst + static_cast<size_t>(c) * n;
    const uint8_t* in = img.data.data() + c;
    for (size_t i = 0; i < n; ++i) out[i] = in[i * 3] * scale - shift;
  }
}

}  // namespace bfcn
