// predict_logits: scales x flips, each pass whole-image (pad to a multiple, crop back) or sliding
// windows (each window itself padded, the overlapping logits summed and divided by their count).
#include "eval/inference.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <opencv2/imgproc.hpp>

#include "core/error.h"

namespace bfcn {

namespace {

// x [1,C,H,W] → [1,C,h,w] copy of the window at (y0, x0) of size (h, w) with zero fill outside.
Tensor crop_pad(const Tensor& x, int y0, int x0, int h, int w) {
  const int C = static_cast<int>(x.dim(1)), H = static_cast<int>(x.dim(2)),
            W = static_cast<int>(x.dim(3));
  Tensor out = Tensor::zeros({1, C, h, w});
  const float* src = x.f32();
  float* dst = out.f32();
  const int ch = std::min(h, H - y0), cw = std::min(w, W - x0);
  for (int c = 0; c < C; ++c)
    for (int y = 0; y < ch; ++y)
      std::memcpy(dst + (static_cast<size_t>(c) * h + y) * w,
                  src + (static_cast<size_t>(c) * H + y0 + y) * W + x0, sizeof(float) * cw);
  return out;
}

// x [1,C,H,W] → horizontally mirrored copy.
Tensor flip_w(const Tensor& x) {
  const int64_t rows = x.dim(1) * x.dim(2), W = x.dim(3);
  Tensor out = Tensor::empty(x.shape());
  const float* s = x.f32();
  float* d = out.f32();
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t i = 0; i < W; ++i) d[r * W + i] = s[r * W + (W - 1 - i)];
  return out;
}

int round_up(int v, int m) { return m <= 1 ? v : (v + m - 1) / m * m; }

// Calls fn on x [1,3,h,w] padded to the multiple; returns logits [1,C,h,w].
Tensor run_padded(const LogitsFn& fn, const Tensor& x, int multiple) {
  const int h = static_cast<int>(x.dim(2)), w = static_cast<int>(x.dim(3));
  const int ph = round_up(h, multiple), pw = round_up(w, multiple);
  Tensor in = (ph == h && pw == w) ? x : crop_pad(x, 0, 0, ph, pw);
  Tensor y = fn(in);
  BFCN_CHECK(
      y.dtype() == DType::f32 && y.ndim() == 4 && y.dim(0) == 1 && y.dim(2) == ph && y.dim(3) == pw,
      "predict_logits: the model must return f32 [1,C,", ph, ",", pw, "] for input ",
      in.shape().str(), ", but got ", y.shape().str());
  return (ph == h && pw == w) ? y : crop_pad(y, 0, 0, h, w);
}

// One pass at one scale and flip state: x [1,3,h,w] → logits [1,C,h,w].
Tensor run_pass(const LogitsFn& fn, const Tensor& x, const InferenceOptions& o) {
  if (!o.sliding) return run_padded(fn, x, o.pad_multiple);
  const int H = static_cast<int>(x.dim(2)), W = static_cast<int>(x.dim(3));
  const int wh = std::min(o.window_h, H), ww = std::min(o.window_w, W);
  const int sh = std::max(1, static_cast<int>(std::lround(wh * (1.0 - o.overlap))));
  const int sw = std::max(1, static_cast<int>(std::lround(ww * (1.0 - o.overlap))));
  Tensor sum, count = Tensor::zeros({H, W});
  for (int y0 : window_starts(H, wh, sh)) {
    for (int x0 : window_starts(W, ww, sw)) {
      Tensor win = crop_pad(x, y0, x0, wh, ww);
      Tensor y = run_padded(fn, win, o.pad_multiple);  // [1,C,wh,ww]
      const int C = static_cast<int>(y.dim(1));
      if (!sum.defined()) sum = Tensor::zeros({1, C, H, W});
      BFCN_CHECK(y.dim(1) == sum.dim(1), "predict_logits: window logits have ", y.dim(1),
                 " channels, earlier windows had ", sum.dim(1));
      float* s = sum.f32();
      const float* yv = y.f32();
      for (int c = 0; c < C; ++c)
        for (int yy = 0; yy < wh; ++yy) {
          float* srow = s + (static_cast<size_t>(c) * H + y0 + yy) * W + x0;
          const float* yrow = yv + (static_cast<size_t>(c) * wh + yy) * ww;
          for (int xx = 0; xx < ww; ++xx) srow[xx] += yrow[xx];
        }
      float* cnt = count.f32();
      for (int yy = 0; yy < wh; ++yy)
        for (int xx = 0; xx < ww; ++xx) cnt[static_cast<size_t>(y0 + yy) * W + x0 + xx] += 1.0f;
    }
  }
  const int64_t plane = static_cast<int64_t>(H) * W;
  float* s = sum.f32();
  const float* cnt = count.f32();
  for (int64_t c = 0; c < sum.dim(1); ++c)
    for (int64_t i = 0; i < plane; ++i) {
      BFCN_ASSERT(cnt[i] > 0);
      s[c * plane + i] /= cnt[i];
    }
  return sum;
}

}  // namespace

std::vector<int> window_starts(int size, int win, int stride) {
  BFCN_CHECK(win >= 1 && stride >= 1, "window_starts: window and stride must be >= 1, got ", win,
             ", ", stride);
  if (size <= win) return {0};
  const int n = (size - win + stride - 1) / stride + 1;  // enough windows to reach the end
  std::vector<int> starts(n);
  for (int i = 0; i < n; ++i) starts[i] = std::min(i * stride, size - win);
  return starts;
}

Tensor resize_bilinear(const Tensor& x, int h, int w) {
  BFCN_CHECK(x.dtype() == DType::f32 && x.ndim() == 4 && x.dim(0) == 1,
             "resize_bilinear: expected f32 [1,C,H,W], but got ", x.shape().str());
  BFCN_CHECK(h >= 1 && w >= 1, "resize_bilinear: target size must be positive, got ", h, "x", w);
  const int C = static_cast<int>(x.dim(1)), H = static_cast<int>(x.dim(2)),
            W = static_cast<int>(x.dim(3));
  if (H == h && W == w) return x.clone();
  Tensor out = Tensor::empty({1, C, h, w});
  for (int c = 0; c < C; ++c) {
    cv::Mat src(H, W, CV_32F, const_cast<float*>(x.f32()) + static_cast<size_t>(c) * H * W);
    cv::Mat dst(h, w, CV_32F, out.f32() + static_cast<size_t>(c) * h * w);
    cv::resize(src, dst, cv::Size(w, h), 0, 0, cv::INTER_LINEAR);
  }
  return out;
}

Tensor predict_logits(const LogitsFn& fn, const Tensor& image, const InferenceOptions& o) {
  BFCN_CHECK(image.dtype() == DType::f32 && image.ndim() == 4 && image.dim(0) == 1,
             "predict_logits: expected image f32 [1,3,H,W], but got ", image.shape().str(), " ",
             dtype_name(image.dtype()));
  BFCN_CHECK(!o.scales.empty(), "predict_logits: at least one scale is needed");
  BFCN_CHECK(o.overlap >= 0.0f && o.overlap < 1.0f,
             "predict_logits: overlap must be in [0, 1), got ", o.overlap);
  BFCN_CHECK(o.pad_multiple >= 1, "predict_logits: pad_multiple must be >= 1, got ",
             o.pad_multiple);
  const int H = static_cast<int>(image.dim(2)), W = static_cast<int>(image.dim(3));
  Tensor acc;
  int n_pass = 0;
  for (float s : o.scales) {
    BFCN_CHECK(s > 0.0f, "predict_logits: scales must be positive, got ", s);
    const int h = std::max(1, static_cast<int>(std::lround(H * s)));
    const int w = std::max(1, static_cast<int>(std::lround(W * s)));
    Tensor x = (h == H && w == W) ? image : resize_bilinear(image, h, w);
    for (int f = 0; f < (o.flip ? 2 : 1); ++f) {
      Tensor y = f ? flip_w(run_pass(fn, flip_w(x), o)) : run_pass(fn, x, o);
      if (h != H || w != W) y = resize_bilinear(y, H, W);
      if (!acc.defined()) {
        acc = y.clone();
      } else {
        BFCN_CHECK(acc.shape() == y.shape(), "predict_logits: pass logits ", y.shape().str(),
                   " differ from earlier passes ", acc.shape().str());
        float* a = acc.f32();
        const float* yv = y.f32();
        for (int64_t i = 0; i < acc.numel(); ++i) a[i] += yv[i];
      }
      ++n_pass;
    }
  }
  if (n_pass > 1) {
    float* a = acc.f32();
    const float inv = 1.0f / static_cast<float>(n_pass);
    for (int64_t i = 0; i < acc.numel(); ++i) a[i] *= inv;
  }
  return acc;
}

Tensor argmax_labels(const Tensor& logits) {
  BFCN_CHECK(logits.dtype() == DType::f32 && logits.ndim() == 4 && logits.dim(0) == 1,
             "argmax_labels: expected f32 [1,C,H,W], but got ", logits.shape().str());
  const int64_t C = logits.dim(1), plane = logits.dim(2) * logits.dim(3);
  BFCN_CHECK(C >= 1 && C <= 255, "argmax_labels: 1..255 classes supported, got ", C);
  Tensor out = Tensor::empty({logits.dim(2), logits.dim(3)}, DType::u8);
  const float* l = logits.f32();
  uint8_t* o = out.data<uint8_t>();
  for (int64_t i = 0; i < plane; ++i) {
    int best = 0;
    float bv = l[i];
    for (int64_t c = 1; c < C; ++c)
      if (l[c * plane + i] > bv) {
        bv = l[c * plane + i];
        best = static_cast<int>(c);
      }
    o[i] = static_cast<uint8_t>(best);
  }
  return out;
}

}  // namespace bfcn
