// upsample_bilinear: resize [N,C,H,W] to any [N,C,out_h,out_w] (up or down) with PyTorch's
// align_corners semantics; see kernels/upsample.h for the source-index formulas.
#include "kernels/upsample.h"

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"

namespace bfcn {

using ops_detail::check_nchw;
using ops_detail::f32_value;

Var upsample_bilinear(const Var& x, int out_h, int out_w, bool align_corners) {
  const Tensor& xv = f32_value(x, "upsample_bilinear", "x");
  check_nchw(xv, "upsample_bilinear", "x");
  BFCN_CHECK(out_h > 0 && out_w > 0, "upsample_bilinear: expected output size > 0, but got ", out_h,
             "x", out_w);
  BFCN_CHECK(xv.dim(2) > 0 && xv.dim(3) > 0, "upsample_bilinear: expected H,W > 0, but got ",
             xv.shape());
  const int64_t planes = xv.dim(0) * xv.dim(1), h = xv.dim(2), w = xv.dim(3);
  Tensor y = Tensor::empty(Shape{xv.dim(0), xv.dim(1), out_h, out_w});
  upsample_bilinear_forward(xv.f32(), y.f32(), planes, h, w, out_h, out_w, align_corners);
  const Shape in_shape = xv.shape();
  return make_op(
      "upsample_bilinear", y, {x},
      [in_shape, planes, h, w, out_h, out_w, align_corners](const Tensor& dy, const GradMask&) {
        Tensor dx = Tensor::empty(in_shape);
        upsample_bilinear_backward(dy.f32(), dx.f32(), planes, h, w, out_h, out_w, align_corners);
        return std::vector<Tensor>{dx};
      });
}

}  // namespace bfcn
