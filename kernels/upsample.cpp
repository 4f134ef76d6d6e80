// Bilinear resize: per-axis tables (i0, i1, l0, l1) computed once, then a gather (forward) or a
// scatter (backward) per plane. Float arithmetic mirrors ATen's CPU kernel so results match it.
#include "kernels/upsample.h"

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
}  // namespace

void upsample_bilinear_forward(const float* x, float* y, int64_t planes, int64_t h, int64_t w,
                               int64_t out_h, int64_t out_w, bool align_corners) {
  const std::vector<Tap> th = axis_taps(h, out_h, align_corners);
  const std::vector<Tap> tw = axis_taps(w, out_w, align_corners);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    const float* xp = x + p * h * w;
    float* yp = y + p * out_h * out_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const Tap& a = th[static_cast<size_t>(oh)];
      const float* r0 = xp + a.i0 * w;
      const float* r1 = xp + a.i1 * w;
      float* yr = yp + oh * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const Tap& b = tw[static_cast<size_t>(ow)];
        yr[ow] =
            a.l0 * (b.l0 * r0[b.i0] + b.l1 * r0[b.i1]) + a.l1 * (b.l0 * r1[b.i0] + b.l1 * r1[b.i1]);
      }
    }
  }
}

void upsample_bilinear_backward(const float* dy, float* dx, int64_t planes, int64_t h, int64_t w,
                                int64_t out_h, int64_t out_w, bool align_corners) {
  const std::vector<Tap> th = axis_taps(h, out_h, align_corners);
  const std::vector<Tap> tw = axis_taps(w, out_w, align_corners);
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < planes; ++p) {
    float* dxp = dx + p * h * w;
    std::memset(dxp, 0, static_cast<size_t>(h * w) * sizeof(float));
    const float* dyp = dy + p * out_h * out_w;
    for (int64_t oh = 0; oh < out_h; ++oh) {
      const Tap& a = th[static_cast<size_t>(oh)];
      float* r0 = dxp + a.i0 * w;
      float* r1 = dxp + a.i1 * w;
      const float* gr = dyp + oh * out_w;
      for (int64_t ow = 0; ow < out_w; ++ow) {
        const Tap& b = tw[static_cast<size_t>(ow)];
        const float g0 = a.l0 * gr[ow], g1 = a.l1 * gr[ow];
        r0[b.i0] += b.l0 * g0;
        r0[b.i1] += b.l1 * g0;
        r1[b.i0] += b.l0 * g1;
        r1[b.i1] += b.l1 * g1;
      }
    }
  }
}

}  // namespace bfcn
