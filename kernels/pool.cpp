// Pooling kernels. Forward and backward both run one OpenMP task per plane, so backward's
// scatter into overlapping windows never races and results do not depend on the thread count.
#include "kernels/pool.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <vector>

namespace bfcn {

int64_t pooling_output_size(int64_t in, int k, int s, int p, bool ceil_mode) {
  const int64_t num = in + 2 * p - k + (ceil_mode ? s - 1 : 0);
  int64_t out = (num >= 0 ? num / s : -((-num + s - 1) / s)) + 1;  // floor division
  if (ceil_mode && (out - 1) * s >= in + p) --out;
  return out;
}

void max_pool2d_forward(const float* x, float* y, int32_t* argmax, const PoolGeom& g) {
  const int64_t hw = g.h * g.w, ohw = g.out_h * g.out_w;
  // Output columns whose window lies fully inside the row: [ow_lo, ow_hi). There the loop runs
  // over columns innermost, so the windows' compare/select chains are independent (the
  // compiler interleaves or vectorises them); the taps are still visited in row-major order.
  const int64_t ow_lo = std::min<int64_t>((g.pw + g.sw - 1) / g.sw, g.out_w);
  const int64_t last_inside = g.w + g.pw - g.kw;  // < 0: no window fits inside a row
  const int64_t ow_hi =
      last_inside < 0
          ? ow_lo
          : std::max<int64_t>(ow_lo, std::min<int64_t>(g.out_w, last_inside / g.sw + 1));
#pragma omp parallel
  {
    std::vector<float> best_v(static_cast<size_t>(g.out_w));
    std::vector<int32_t> best_i(static_cast<size_t>(g.out_w));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < g.planes; ++p) {
      const float* xp = x + p * hw;
      float* yp = y + p * ohw;
      int32_t* ap = argmax + p * ohw;
      for (int64_t oh = 0; oh < g.out_h; ++oh) {
        const int64_t h0 = std::max<int64_t>(oh * g.sh - g.ph, 0);
        const int64_t h1 = std::min<int64_t>(oh * g.sh - g.ph + g.kh, g.h);
        // !(v <= best): strictly greater (the first max wins) or NaN (propagates, as PyTorch).
        // Written branch-free so the compiler emits conditional moves / blends.
        auto edge = [&](int64_t ow) {
          const int64_t w0 = std::max<int64_t>(ow * g.sw - g.pw, 0);
          const int64_t w1 = std::min<int64_t>(ow * g.sw - g.pw + g.kw, g.w);
          float best = -std::numeric_limits<float>::infinity();
          int64_t bi = h0 * g.w + w0;
          for (int64_t ih = h0; ih < h1; ++ih)
            for (int64_t iw = w0; iw < w1; ++iw) {
              const float v = xp[ih * g.w + iw];
              const bool take = !(v <= best);
              best = take ? v : best;
              bi = take ? ih * g.w + iw : bi;
            }
          yp[oh * g.out_w + ow] = best;
          ap[oh * g.out_w + ow] = static_cast<int32_t>(bi);
        };
        for (int64_t ow = 0; ow < ow_lo; ++ow) edge(ow);
        for (int64_t ow = ow_hi; ow < g.out_w; ++ow) edge(ow);
        float* bv = best_v.data();
        int32_t* bx = best_i.data();
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
          bv[ow] = -std::numeric_limits<float>::infinity();
          bx[ow] = static_cast<int32_t>(h0 * g.w + ow * g.sw - g.pw);
        }
        for (int64_t ih = h0; ih < h1; ++ih)
          for (int64_t kx = 0; kx < g.kw; ++kx) {
            const int64_t off = ih * g.w + kx - g.pw;  // flat index of column 0's tap
            const float* src = xp + off;
            for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
              const float v = src[ow * g.sw];
              const bool take = !(v <= bv[ow]);
              bv[ow] = take ? v : bv[ow];
              bx[ow] = take ? static_cast<int32_t>(off + ow * g.sw) : bx[ow];
            }
          }
        for (int64_t ow = ow_lo; ow < ow_hi; ++ow) {
          yp[oh * g.out_w + ow] = bv[ow];
          ap[oh * g.out_w + ow] = bx[ow];
        }
      }
    }
  }
}

namespace {
// The backward passes' plane loop: dx's plane p zeroed, then scatter(p, dy's plane, dx's plane)
// adds the gradients into it; planes in parallel.
template <class Scatter>
void backward_planes(const float* dy, float* dx, const PoolGeom& g, const Scatter& scatter) {
  const int64_t hw = g.h * g.w, ohw = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    float* dxp = dx + p * hw;
    std::memset(dxp, 0, static_cast<size_t>(hw) * sizeof(float));
    scatter(p, dy + p * ohw, dxp);
  }
}
}  // namespace

void max_pool2d_backward(const float* dy, const int32_t* argmax, float* dx, const PoolGeom& g) {
  const int64_t ohw = g.out_h * g.out_w;
  backward_planes(dy, dx, g, [&](int64_t p, const float* dyp, float* dxp) {
    const int32_t* ap = argmax + p * ohw;
    for (int64_t o = 0; o < ohw; ++o) dxp[ap[o]] += dyp[o];
  });
}

namespace {
// PyTorch's avg-pool window: clipped to the padded input for the divisor, to the input for the sum.
struct AvgWindow {
  int64_t h0, h1, w0, w1;
  float inv_div;
};
inline AvgWindow avg_window(const PoolGeom& g, int64_t oh, int64_t ow) {
  int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t h1 = std::min<int64_t>(h0 + g.kh, g.h + g.ph);
  int64_t w1 = std::min<int64_t>(w0 + g.kw, g.w + g.pw);
  const int64_t padded = (h1 - h0) * (w1 - w0);
  h0 = std::max<int64_t>(h0, 0);
  w0 = std::max<int64_t>(w0, 0);
  h1 = std::min<int64_t>(h1, g.h);
  w1 = std::min<int64_t>(w1, g.w);
  const int64_t div = g.count_include_pad ? padded : (h1 - h0) * (w1 - w0);
  return {h0, h1, w0, w1, div > 0 ? 1.0f / static_cast<float>(div) : 0.0f};
}
}  // namespace

void avg_pool2d_forward(const float* x, float* y, const PoolGeom& g) {
  const int64_t hw = g.h * g.w, ohw = g.out_h * g.out_w;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < g.planes; ++p) {
    const float* xp = x + p * hw;
    float* yp = y + p * ohw;
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const AvgWindow win = avg_window(g, oh, ow);
        float s = 0.0f;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) s += xp[ih * g.w + iw];
        yp[oh * g.out_w + ow] = s * win.inv_div;
      }
  }
}

void avg_pool2d_backward(const float* dy, float* dx, const PoolGeom& g) {
  backward_planes(dy, dx, g, [&](int64_t, const float* dyp, float* dxp) {
    for (int64_t oh = 0; oh < g.out_h; ++oh)
      for (int64_t ow = 0; ow < g.out_w; ++ow) {
        const AvgWindow win = avg_window(g, oh, ow);
        const float v = dyp[oh * g.out_w + ow] * win.inv_div;
        for (int64_t ih = win.h0; ih < win.h1; ++ih)
          for (int64_t iw = win.w0; iw < win.w1; ++iw) dxp[ih * g.w + iw] += v;
      }
  });
}

void plane_mean_forward(const float* x, float* y, int64_t planes, int64_t hw) {
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    double s = 0.0;
    const float* xp = x + p * hw;
    for (int64_t i = 0; i < hw; ++i) s += xp[i];
    y[p] = static_cast<float>(s / static_cast<double>(hw));
  }
}

void plane_mean_backward(const float* dy, float* dx, int64_t planes, int64_t hw) {
  const float inv = 1.0f / static_cast<float>(hw);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float v = dy[p] * inv;
    float* dxp = dx + p * hw;
    for (int64_t i = 0; i < hw; ++i) dxp[i] = v;
  }
}

}  // namespace bfcn
