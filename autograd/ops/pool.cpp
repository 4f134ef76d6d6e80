// Pooling ops: max_pool2d (gradient to the first max of each window), avg_pool2d (ceil_mode,
// padding and count_include_pad as PyTorch), global_avg_pool. Kernels in kernels/pool.h.
#include "kernels/pool.h"

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"

namespace bfcn {

using ops_detail::check_nchw;
using ops_detail::f32_value;

namespace {
PoolGeom pool_geom(const Tensor& x, const Pool2dArgs& a, const char* op) {
  check_nchw(x, op, "x");
  BFCN_CHECK(a.kernel_h > 0 && a.kernel_w > 0, op, ": expected kernel > 0, but got ", a.kernel_h,
             "x", a.kernel_w);
  BFCN_CHECK(a.stride_h > 0 && a.stride_w > 0, op, ": expected stride > 0, but got ", a.stride_h,
             "x", a.stride_w);
  BFCN_CHECK(a.pad_h >= 0 && a.pad_w >= 0 && a.pad_h <= a.kernel_h / 2 && a.pad_w <= a.kernel_w / 2,
             op, ": expected 0 <= padding <= kernel/2 (as PyTorch), but got padding ", a.pad_h, "x",
             a.pad_w, " for kernel ", a.kernel_h, "x", a.kernel_w);
  PoolGeom g;
  g.planes = x.dim(0) * x.dim(1);
  g.h = x.dim(2);
  g.w = x.dim(3);
  g.kh = a.kernel_h;
  g.kw = a.kernel_w;
  g.sh = a.stride_h;
  g.sw = a.stride_w;
  g.ph = a.pad_h;
  g.pw = a.pad_w;
  g.count_include_pad = a.count_include_pad;
  g.out_h = pooling_output_size(g.h, g.kh, g.sh, g.ph, a.ceil_mode);
  g.out_w = pooling_output_size(g.w, g.kw, g.sw, g.pw, a.ceil_mode);
  BFCN_CHECK(g.out_h >= 1 && g.out_w >= 1, op, ": input ", x.shape(), " is too small for kernel ",
             a.kernel_h, "x", a.kernel_w, " with padding ", a.pad_h, "x", a.pad_w,
             " (output would be ", g.out_h, "x", g.out_w, ")");
  return g;
}
}  // namespace

Var max_pool2d(const Var& x, const Pool2dArgs& args) {
  const Tensor& xv = f32_value(x, "max_pool2d", "x");
  const PoolGeom g = pool_geom(xv, args, "max_pool2d");
  Tensor y = Tensor::empty(Shape{xv.dim(0), xv.dim(1), g.out_h, g.out_w});
  Tensor argmax = Tensor::empty(y.shape(), DType::i32);
  max_pool2d_forward(xv.f32(), y.f32(), argmax.data<int32_t>(), g);
  const Shape in_shape = xv.shape();
  return make_op("max_pool2d", y, {x}, [g, argmax, in_shape](const Tensor& dy, const GradMask&) {
    Tensor dx = Tensor::empty(in_shape);
    max_pool2d_backward(dy.f32(), argmax.data<int32_t>(), dx.f32(), g);
    return std::vector<Tensor>{dx};
  });
}

Var avg_pool2d(const Var& x, const Pool2dArgs& args) {
  const Tensor& xv = f32_value(x, "avg_pool2d", "x");
  const PoolGeom g = pool_geom(xv, args, "avg_pool2d");
  Tensor y = Tensor::empty(Shape{xv.dim(0), xv.dim(1), g.out_h, g.out_w});
  avg_pool2d_forward(xv.f32(), y.f32(), g);
  const Shape in_shape = xv.shape();
  return make_op("avg_pool2d", y, {x}, [g, in_shape](const Tensor& dy, const GradMask&) {
    Tensor dx = Tensor::empty(in_shape);
    avg_pool2d_backward(dy.f32(), dx.f32(), g);
    return std::vector<Tensor>{dx};
  });
}

Var global_avg_pool(const Var& x) {
  const Tensor& xv = f32_value(x, "global_avg_pool", "x");
  check_nchw(xv, "global_avg_pool", "x");
  const int64_t planes = xv.dim(0) * xv.dim(1), hw = xv.dim(2) * xv.dim(3);
  BFCN_CHECK(hw > 0, "global_avg_pool: expected H*W > 0, but got ", xv.shape());
  Tensor y = Tensor::empty(Shape{xv.dim(0), xv.dim(1), 1, 1});
  plane_mean_forward(xv.f32(), y.f32(), planes, hw);
  const Shape in_shape = xv.shape();
  return make_op("global_avg_pool", y, {x},
                 [in_shape, planes, hw](const Tensor& dy, const GradMask&) {
                   Tensor dx = Tensor::empty(in_shape);
                   plane_mean_backward(dy.f32(), dx.f32(), planes, hw);
                   return std::vector<Tensor>{dx};
                 });
}

}  // namespace bfcn
