// Shape ops: reshape (shares storage, no copy) and concat_channels (NCHW along C, one copy).
#include <cstring>

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"

namespace bfcn {

using ops_detail::check_nchw;
using ops_detail::f32_value;

Var reshape(const Var& x, const Shape& shape) {
  const Tensor& xv = f32_value(x, "reshape", "x");
  BFCN_CHECK(shape.numel() == xv.numel(), "reshape: cannot reshape ", xv.shape(), " (", xv.numel(),
             " elements) to ", shape, " (", shape.numel(), " elements)");
  const Shape in_shape = xv.shape();
  return make_op("reshape", xv.reshape(shape), {x}, [in_shape](const Tensor& dy, const GradMask&) {
    return std::vector<Tensor>{dy.reshape(in_shape)};
  });
}

Var concat_channels(const std::vector<Var>& xs) {
  BFCN_CHECK(!xs.empty(), "concat_channels: expected at least one input, but got none");
  const Tensor& x0 = f32_value(xs[0], "concat_channels", "xs[0]");
  check_nchw(x0, "concat_channels", "xs[0]");
  const int64_t n = x0.dim(0), h = x0.dim(2), w = x0.dim(3);
  std::vector<int64_t> channels;
  int64_t c_total = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = f32_value(xs[i], "concat_channels", "xs[i]");
    BFCN_CHECK(t.ndim() == 4 && t.dim(0) == n && t.dim(2) == h && t.dim(3) == w,
               "concat_channels: expected input ", i, " of shape [", n, ",C,", h, ",", w,
               "], but got ", t.shape());
    channels.push_back(t.dim(1));
    c_total += t.dim(1);
  }
  const int64_t hw = h * w;
  Tensor y = Tensor::empty(Shape{n, c_total, h, w});
  // y [N,Ctot,H,W]: each input fills a contiguous block of channels per image.
  int64_t c_off = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const float* src = xs[i].value().f32();
    const int64_t block = channels[i] * hw;
    for (int64_t b = 0; b < n; ++b)
      std::memcpy(y.f32() + (b * c_total + c_off) * hw, src + b * block,
                  static_cast<size_t>(block) * sizeof(float));
    c_off += channels[i];
  }
  return make_op("concat_channels", y, xs,
                 [channels, n, hw, c_total](const Tensor& dy, const GradMask& need) {
                   std::vector<Tensor> grads(channels.size());
                   int64_t off = 0;
                   for (size_t i = 0; i < channels.size(); ++i) {
                     const int64_t block = channels[i] * hw;
                     if (need[i]) {
                       Tensor g = Tensor::empty(Shape{n, channels[i], dy.dim(2), dy.dim(3)});
                       for (int64_t b = 0; b < n; ++b)
                         std::memcpy(g.f32() + b * block, dy.f32() + (b * c_total + off) * hw,
                                     static_cast<size_t>(block) * sizeof(float));
                       grads[i] = g;
                     }
                     off += channels[i];
                   }
                   return grads;
                 });
}

}  // namespace bfcn
