// Softmax cross-entropy: channels are the outer loop and pixels the inner (contiguous) one, so
// every pass over a block of kPix pixels streams through memory and vectorises.
#include "kernels/loss.h"

#include <cmath>
#include <vector>

namespace bfcn {

namespace {
constexpr int64_t kPix = 512;  // pixels per block

// Blocks of up to kPix pixels of one image; n images of hw pixels have n * blocks_per_image(hw).
int64_t blocks_per_image(int64_t hw) { return (hw + kPix - 1) / kPix; }

// Block blk of them: image b, pixels [p0, p0 + np).
struct PixelBlock {
  int64_t b, p0, np;
};
PixelBlock pixel_block(int64_t blk, int64_t per_image, int64_t hw) {
  const int64_t p0 = (blk % per_image) * kPix;
  return {blk / per_image, p0, hw - p0 < kPix ? hw - p0 : kPix};
}

template <class L>
XentSums forward_impl(const float* x, const L* labels, const float* class_w, int64_t n, int64_t c,
                      int64_t hw, int ignore_index, float* lse) {
  const int64_t per_image = blocks_per_image(hw), nblocks = n * per_image;
  std::vector<XentSums> part(static_cast<size_t>(nblocks));
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const auto [b, p0, np] = pixel_block(blk, per_image, hw);
    const float* xb = x + b * c * hw + p0;
    float mx[kPix], s[kPix];
    for (int64_t p = 0; p < np; ++p) mx[p] = xb[p];
    for (int64_t ch = 1; ch < c; ++ch) {
      const float* xc = xb + ch * hw;
      for (int64_t p = 0; p < np; ++p) mx[p] = xc[p] > mx[p] ? xc[p] : mx[p];
    }
    for (int64_t p = 0; p < np; ++p) s[p] = 0.0f;
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* xc = xb + ch * hw;
      for (int64_t p = 0; p < np; ++p) s[p] += std::exp(xc[p] - mx[p]);
    }
    float* lb = lse + b * hw + p0;
    const L* tb = labels + b * hw + p0;
    XentSums acc;
    for (int64_t p = 0; p < np; ++p) {
      lb[p] = mx[p] + std::log(s[p]);
      const int t = static_cast<int>(tb[p]);
      if (t == ignore_index) continue;
      const double wt = class_w ? class_w[t] : 1.0;
      acc.loss += wt * (static_cast<double>(lb[p]) - xb[t * hw + p]);
      acc.weight += wt;
    }
    part[static_cast<size_t>(blk)] = acc;
  }
  XentSums total;
  for (const XentSums& q : part) {
    total.loss += q.loss;
    total.weight += q.weight;
  }
  return total;
}

template <class L>
void backward_impl(const float* x, const L* labels, const float* class_w, const float* lse,
                   int64_t n, int64_t c, int64_t hw, int ignore_index, float scale, float* dx) {
  const int64_t per_image = blocks_per_image(hw), nblocks = n * per_image;
#pragma omp parallel for schedule(static)
  for (int64_t blk = 0; blk < nblocks; ++blk) {
    const auto [b, p0, np] = pixel_block(blk, per_image, hw);
    const float* xb = x + b * c * hw + p0;
    float* db = dx + b * c * hw + p0;
    const float* lb = lse + b * hw + p0;
    const L* tb = labels + b * hw + p0;
    float coef[kPix];
    for (int64_t p = 0; p < np; ++p) {
      const int t = static_cast<int>(tb[p]);
      coef[p] = t == ignore_index ? 0.0f : scale * (class_w ? class_w[t] : 1.0f);
    }
    for (int64_t ch = 0; ch < c; ++ch) {
      const float* xc = xb + ch * hw;
      float* dc = db + ch * hw;
      for (int64_t p = 0; p < np; ++p) dc[p] = coef[p] * std::exp(xc[p] - lb[p]);
    }
    for (int64_t p = 0; p < np; ++p) {
      const int t = static_cast<int>(tb[p]);
      if (t != ignore_index) db[t * hw + p] -= coef[p];
    }
  }
}
}  // namespace

XentSums softmax_xent_forward(const float* x, const int32_t* labels, const float* class_w,
                              int64_t n, int64_t c, int64_t hw, int ignore_index, float* lse) {
  return forward_impl(x, labels, class_w, n, c, hw, ignore_index, lse);
}
XentSums softmax_xent_forward(const float* x, const uint8_t* labels, const float* class_w,
                              int64_t n, int64_t c, int64_t hw, int ignore_index, float* lse) {
  return forward_impl(x, labels, class_w, n, c, hw, ignore_index, lse);
}
void softmax_xent_backward(const float* x, const int32_t* labels, const float* class_w,
                           const float* lse, int64_t n, int64_t c, int64_t hw, int ignore_index,
                           float scale, float* dx) {
  backward_impl(x, labels, class_w, lse, n, c, hw, ignore_index, scale, dx);
}
void softmax_xent_backward(const float* x, const uint8_t* labels, const float* class_w,
                           const float* lse, int64_t n, int64_t c, int64_t hw, int ignore_index,
                           float scale, float* dx) {
  backward_impl(x, labels, class_w, lse, n, c, hw, ignore_index, scale, dx);
}

}  // namespace bfcn
