// Bilinear resize: per-axis tables (i0, i1, l0, l1) computed once, then separable passes per
// plane. Source indices and weights use ATen's float formulas so results match PyTorch.
#include "kernels/upsample.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace bfcn {

namespace {
struct Tap {
  int64_t i0, i1;
  float l0, l1;
};

std::vector<Tap> axis_taps(int64_t in, int64_t out, bool align_corners) {
  float scale;
  if (align_corners)
    scale = out > 1 ? static_cast<float>(in - 1) / static_cast<float>(out - 1) : 0.0f;
  else
    scale = static_cast<float>(in) / static_cast<float>(out);
  std::vector<Tap> taps(static_cast<size_t>(out));
  for (int64_t d = 0; d < out; ++d) {
    float src;
    if (align_corners) {
      src = scale * static_cast<float>(d);
    } else {
      src = scale * (static_cast<float>(d) + 0.5f) - 0.5f;
      if (src < 0.0f) src = 0.0f;
    }
    int64_t i0 = static_cast<int64_t>(src);
    if (i0 > in - 1) i0 = in - 1;
    const int64_t i1 = i0 + (i0 < in - 1 ? 1 : 0);
    const float l1 = src - static_cast<float>(i0);
    taps[static_cast<size_t>(d)] = {i0, i1, 1.0f - l1, l1};
  }
  return taps;
}

// The plane loop of both directions: plane(p, th, tw, tmp) for every plane p in parallel, with the
// tap tables of both axes (th [out_h], tw [out_w]) and a per-thread scratch tmp [h, out_w].
template <class Plane>
void for_each_plane(int64_t planes, int64_t h, int64_t w, int64_t out_h, int64_t out_w,
                    bool align_corners, const Plane& plane) {
  const std::vector<Tap> th = axis_taps(h, out_h, align_corners);
  const std::vector<Tap> tw = axis_taps(w, out_w, align_corners);
#pragma omp parallel
  {
    std::vector<float> tmp(static_cast<size_t>(h * out_w));
#pragma omp for schedule(static)
    for (int64_t p = 0; p < planes; ++p) plane(p, th.data(), tw.data(), tmp.data());
  }
}
}  // namespace

// Both passes are separable: a horizontal pass between x's rows and tmp [h, out_w] (one per
// plane, per thread), and a vertical pass between tmp's rows and y's rows that is a row axpy the
// compiler vectorises. Forward arithmetic is exactly l0h*(l0w*a + l1w*b) + l1h*(l0w*c + l1w*d).
void upsample_bilinear_forward(const float* x, float* y, int64_t planes, int64_t h, int64_t w,
                               int64_t out_h, int64_t out_w, bool align_corners) {
  const auto plane = [&](int64_t p, const Tap* th, const Tap* tw, float* tmp) {
    const float* xp = x + p * h * w;
    float* yp = y + p * out_h * out_w;
    // tmp[ih, ow]: row ih of x interpolated along w.
    for (int64_t ih = 0; ih < h; ++ih) {
      const float* xr = xp + ih * w;
      float* tr = tmp + ih * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const Tap& b = tw[ow];
        tr[ow] = b.l0 * xr[b.i0] + b.l1 * xr[b.i1];
      }
    }
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const Tap& a = th[oh];
      const float* r0 = tmp + a.i0 * out_w;
      const float* r1 = tmp + a.i1 * out_w;
      float* yr = yp + oh * out_w;
#pragma omp simd
      for (int64_t ow = 0; ow < out_w; ++ow) yr[ow] = a.l0 * r0[ow] + a.l1 * r1[ow];
    }
  };
  for_each_plane(planes, h, w, out_h, out_w, align_corners, plane);
}

void upsample_bilinear_backward(const float* dy, float* dx, int64_t planes, int64_t h, int64_t w,
                                int64_t out_h, int64_t out_w, bool align_corners) {
  const auto plane = [&](int64_t p, const Tap* th, const Tap* tw, float* tmp) {
    const float* dyp = dy + p * out_h * out_w;
    float* dxp = dx + p * h * w;
    // Vertical transpose: tmp[ih, ow] = Σ_oh weight(oh → ih) * dy[oh, ow].
    std::fill_n(tmp, h * out_w, 0.0f);
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const Tap& a = th[oh];
      float* r0 = tmp + a.i0 * out_w;
      float* r1 = tmp + a.i1 * out_w;
      const float* gr = dyp + oh * out_w;
#pragma omp simd
      for (int64_t ow = 0; ow < out_w; ++ow) r0[ow] += a.l0 * gr[ow];
#pragma omp simd
      for (int64_t ow = 0; ow < out_w; ++ow) r1[ow] += a.l1 * gr[ow];
    }
    // Horizontal transpose: scatter each tmp row into dx's row.
    std::memset(dxp, 0, static_cast<size_t>(h * w) * sizeof(float));
    for (int64_t ih = 0; ih < h; ++ih) {
      const float* tr = tmp + ih * out_w;
      float* dr = dxp + ih * w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const Tap& b = tw[ow];
        dr[b.i0] += b.l0 * tr[ow];
        dr[b.i1] += b.l1 * tr[ow];
      }
    }
  };
  for_each_plane(planes, h, w, out_h, out_w, align_corners, plane);
}

}  // namespace bfcn
