// predict_logits with LogitsFns that expose position: padding is cropped back at the top-left,
// sliding windows cover the image and overlaps are averaged, flip TTA is un-flipped, scales resize
// back. The image encodes its own coordinates (channel 0 = y, channel 1 = x) so a window knows
// where it came from.
#include "eval/inference.h"

#include <cmath>

#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

// [1,3,H,W]: channel 0 = y, 1 = x, 2 = y*W + x.
Tensor coord_image(int H, int W) {
  Tensor t = Tensor::empty({1, 3, H, W});
  float* p = t.f32();
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      p[(0 * H + y) * W + x] = static_cast<float>(y);
      p[(1 * H + y) * W + x] = static_cast<float>(x);
      p[(2 * H + y) * W + x] = static_cast<float>(y * W + x);
    }
  return t;
}

float at(const Tensor& t, int c, int y, int x) {
  return t.f32()[(static_cast<int64_t>(c) * t.dim(2) + y) * t.dim(3) + x];
}

}  // namespace

TEST_CASE("inference: whole image is padded to the multiple and cropped back", "[eval]") {
  const int H = 37, W = 70;
  std::vector<Shape> calls;
  // Logits: channel 0 = input channel 2 (identity), channel 1 = the input's padded height.
  LogitsFn fn = [&](const Tensor& x) {
    calls.push_back(x.shape());
    const int h = static_cast<int>(x.dim(2)), w = static_cast<int>(x.dim(3));
    Tensor y = Tensor::empty({1, 2, h, w});
    for (int i = 0; i < h * w; ++i) {
      y.f32()[i] = x.f32()[2 * h * w + i];
      y.f32()[h * w + i] = static_cast<float>(h);
    }
    return y;
  };
  InferenceOptions o;
  o.pad_multiple = 32;
  Tensor out = predict_logits(fn, coord_image(H, W), o);
  REQUIRE(out.shape() == Shape{1, 2, H, W});
  REQUIRE(calls.size() == 1);
  REQUIRE(calls[0] == Shape{1, 3, 64, 96});
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      REQUIRE(at(out, 0, y, x) == static_cast<float>(y * W + x));
      REQUIRE(at(out, 1, y, x) == 64.0f);
    }
  // The padded area seen by the model is zero.
  LogitsFn check_pad = [&](const Tensor& x) {
    REQUIRE(at(x, 2, 63, 95) == 0.0f);
    REQUIRE(at(x, 2, H - 1, W - 1) == static_cast<float>((H - 1) * W + W - 1));
    return Tensor::zeros({1, 4, x.dim(2), x.dim(3)});
  };
  REQUIRE(predict_logits(check_pad, coord_image(H, W), o).shape() == Shape{1, 4, H, W});
  // A model returning the wrong size is reported.
  LogitsFn bad = [](const Tensor& x) { return Tensor::zeros({1, 2, x.dim(2) / 2, x.dim(3) / 2}); };
  REQUIRE_THROWS_WITH(predict_logits(bad, coord_image(H, W), o),
                      Catch::Contains("must return f32 [1,C,64,96]"));
}

TEST_CASE("inference: window_starts covers the axis and ends flush", "[eval]") {
  REQUIRE(window_starts(100, 40, 27) == std::vector<int>{0, 27, 54, 60});
  REQUIRE(window_starts(40, 40, 27) == std::vector<int>{0});
  REQUIRE(window_starts(30, 40, 27) == std::vector<int>{0});
  REQUIRE(window_starts(1024, 512, 341) == std::vector<int>{0, 341, 512});
  REQUIRE(window_starts(2048, 1024, 683) == std::vector<int>{0, 683, 1024});
  for (int size = 1; size < 90; ++size)
    for (int win : {7, 16, 33})
      for (int stride : {1, 5, 16}) {
        auto s = window_starts(size, win, std::min(stride, win));
        std::vector<int> cover(size, 0);
        for (int a : s)
          for (int i = a; i < std::min(size, a + win); ++i) cover[i]++;
        for (int i = 0; i < size; ++i) REQUIRE(cover[i] > 0);
        if (size > win) REQUIRE(s.back() == size - win);
      }
}

TEST_CASE("inference: sliding windows cover the image and average overlaps", "[eval]") {
  const int H = 100, W = 150;
  struct Win {
    int y0, x0, h, w;
  };
  std::vector<Win> wins;
  std::vector<Shape> shapes;
  // Each window returns its own call index k everywhere in channel 0, and the input's x in
  // channel 1 (identity, so averaging overlaps must give x back exactly).
  LogitsFn fn = [&](const Tensor& x) {
    shapes.push_back(x.shape());
    const int h = static_cast<int>(x.dim(2)), w = static_cast<int>(x.dim(3));
    wins.push_back({static_cast<int>(at(x, 0, 0, 0)), static_cast<int>(at(x, 1, 0, 0)), h, w});
    Tensor y = Tensor::empty({1, 2, h, w});
    const float k = static_cast<float>(wins.size() - 1);
    for (int i = 0; i < h * w; ++i) {
      y.f32()[i] = k;
      y.f32()[h * w + i] = x.f32()[h * w + i];
    }
    return y;
  };
  InferenceOptions o;
  o.sliding = true;
  o.window_h = 40;
  o.window_w = 64;
  o.overlap = 1.0f / 3;
  o.pad_multiple = 32;
  Tensor out = predict_logits(fn, coord_image(H, W), o);
  REQUIRE(out.shape() == Shape{1, 2, H, W});
  // Rows: window 40, stride round(40*2/3)=27 → 0,27,54,60; cols: window 64, stride 43 → 0,43,86.
  REQUIRE(wins.size() == 12);
  for (const auto& s : shapes) REQUIRE(s == Shape{1, 3, 64, 64});  // 40x64 padded to 64x64
  std::vector<int> y0s, x0s;
  for (const auto& w : wins) {
    y0s.push_back(w.y0);
    x0s.push_back(w.x0);
  }
  REQUIRE(std::count(y0s.begin(), y0s.end(), 60) == 3);
  REQUIRE(std::count(x0s.begin(), x0s.end(), 86) == 4);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      double sum = 0;
      int n = 0;
      for (size_t k = 0; k < wins.size(); ++k)
        if (y >= wins[k].y0 && y < wins[k].y0 + 40 && x >= wins[k].x0 && x < wins[k].x0 + 64) {
          sum += static_cast<double>(k);
          ++n;
        }
      REQUIRE(n > 0);
      REQUIRE(at(out, 0, y, x) == Approx(sum / n).epsilon(1e-6));
      REQUIRE(at(out, 1, y, x) == Approx(static_cast<float>(x)).epsilon(1e-6));
    }
  // An image smaller than the window is one (padded) window.
  wins.clear();
  shapes.clear();
  out = predict_logits(fn, coord_image(20, 30), o);
  REQUIRE(wins.size() == 1);
  REQUIRE(shapes[0] == Shape{1, 3, 32, 32});
  REQUIRE(at(out, 1, 19, 29) == 29.0f);
}

TEST_CASE("inference: flip TTA un-flips the flipped pass", "[eval]") {
  const int H = 8, W = 13;
  int n_calls = 0;
  // Channel 0 = the input's x channel (equivariant); channel 1 = the column index inside the
  // tensor the model sees (not equivariant: un-flipping maps it to W-1-j).
  LogitsFn fn = [&](const Tensor& x) {
    ++n_calls;
    const int h = static_cast<int>(x.dim(2)), w = static_cast<int>(x.dim(3));
    Tensor y = Tensor::empty({1, 2, h, w});
    for (int r = 0; r < h; ++r)
      for (int c = 0; c < w; ++c) {
        y.f32()[r * w + c] = at(x, 1, r, c);
        y.f32()[h * w + r * w + c] = static_cast<float>(c);
      }
    return y;
  };
  InferenceOptions o;
  o.pad_multiple = 1;
  o.flip = true;
  Tensor out = predict_logits(fn, coord_image(H, W), o);
  REQUIRE(n_calls == 2);
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      REQUIRE(at(out, 0, y, x) == static_cast<float>(x));
      REQUIRE(at(out, 1, y, x) == Approx((x + (W - 1 - x)) / 2.0));
    }
}

TEST_CASE("inference: multi-scale passes run at each scale and resize back", "[eval]") {
  const int H = 32, W = 48;
  std::vector<Shape> seen;
  // A per-channel constant image stays constant through any resize.
  Tensor img = Tensor::empty({1, 3, H, W});
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < H * W; ++i) img.f32()[c * H * W + i] = static_cast<float>(c + 1);
  LogitsFn fn = [&](const Tensor& x) {
    seen.push_back(x.shape());
    Tensor y = Tensor::empty({1, 2, x.dim(2), x.dim(3)});
    const int64_t n = x.dim(2) * x.dim(3);
    for (int64_t i = 0; i < n; ++i) {
      y.f32()[i] = x.f32()[2 * n + i];                        // 3
      y.f32()[n + i] = static_cast<float>(x.dim(2)) / 16.0f;  // differs per scale
    }
    return y;
  };
  InferenceOptions o;
  o.pad_multiple = 16;
  o.scales = {0.5f, 1.0f, 1.5f};
  Tensor out = predict_logits(fn, img, o);
  REQUIRE(out.shape() == Shape{1, 2, H, W});
  REQUIRE(seen.size() == 3);
  REQUIRE(seen[0] == Shape{1, 3, 16, 32});  // 16x24 padded to 16x32
  REQUIRE(seen[1] == Shape{1, 3, 32, 48});
  REQUIRE(seen[2] == Shape{1, 3, 48, 80});  // 48x72 padded to 48x80
  for (int i = 0; i < H * W; ++i) {
    REQUIRE(out.f32()[i] == Approx(3.0f));
    REQUIRE(out.f32()[H * W + i] == Approx((1.0 + 2.0 + 3.0) / 3.0));  // (16+32+48)/16 / 3
  }
  o.scales = {};
  REQUIRE_THROWS_WITH(predict_logits(fn, img, o), Catch::Contains("at least one scale"));
}

TEST_CASE("inference: argmax picks the largest logit, ties to the lowest class", "[eval]") {
  Tensor l = Tensor::from_vector({1, 3, 1, 4}, {0, 5, 1, 2,  //
                                                1, 5, 0, 2,  //
                                                2, 1, 0, 2});
  Tensor a = argmax_labels(l);
  REQUIRE(a.shape() == Shape{1, 4});
  REQUIRE(a.data<uint8_t>()[0] == 2);
  REQUIRE(a.data<uint8_t>()[1] == 0);
  REQUIRE(a.data<uint8_t>()[2] == 0);
  REQUIRE(a.data<uint8_t>()[3] == 0);
}
