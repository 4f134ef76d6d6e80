// conv2d: forward and backward side by side on the kernels/conv.h GEMM kernels.
// The closure keeps x and w (shallow handles) and computes only the gradients the mask asks for:
// dx needs w, dw needs x, db needs only dy.
#include "autograd/ops.h"
#include "core/error.h"
#include "kernels/conv.h"

namespace bfcn {

namespace {

ConvGeom check_conv2d(const Tensor& x, const Tensor& w, const Tensor* bias, const Conv2dArgs& a) {
  BFCN_CHECK(x.dtype() == DType::f32 && w.dtype() == DType::f32,
             "conv2d: expected f32 input and weight, but got ", dtype_name(x.dtype()), " and ",
             dtype_name(w.dtype()));
  BFCN_CHECK(x.ndim() == 4, "conv2d: expected 4-D input [N,C,H,W], but got input of shape ",
             x.shape());
  BFCN_CHECK(w.ndim() == 4,
             "conv2d: expected 4-D weight [K,C/groups,kh,kw], but got weight of shape ", w.shape());
  BFCN_CHECK(a.groups >= 1, "conv2d: groups must be >= 1, got ", a.groups);
  BFCN_CHECK(a.stride_h >= 1 && a.stride_w >= 1, "conv2d: stride must be >= 1, got (", a.stride_h,
             ",", a.stride_w, ")");
  BFCN_CHECK(a.dilation_h >= 1 && a.dilation_w >= 1, "conv2d: dilation must be >= 1, got (",
             a.dilation_h, ",", a.dilation_w, ")");
  BFCN_CHECK(a.pad_h >= 0 && a.pad_w >= 0, "conv2d: padding must be >= 0, got (", a.pad_h, ",",
             a.pad_w, ")");
  BFCN_CHECK(w.numel() > 0, "conv2d: weight of shape ", w.shape(), " is empty");
  BFCN_CHECK(w.dim(0) % a.groups == 0, "conv2d: given groups=", a.groups,
             ", expected weight of shape ", w.shape(), " to have its out-channels (", w.dim(0),
             ") divisible by ", a.groups);
  const int64_t want_c = w.dim(1) * a.groups;
  BFCN_CHECK(x.dim(1) == want_c, "conv2d: given groups=", a.groups, ", weight of shape ", w.shape(),
             ", expected input [N,", want_c, ",H,W] to have ", want_c, " channels, but got ",
             x.dim(1), " (input shape ", x.shape(), ")");
  BFCN_CHECK(x.dim(0) >= 1 && x.dim(2) >= 1 && x.dim(3) >= 1, "conv2d: input of shape ", x.shape(),
             " is empty");
  ConvGeom g;
  g.n = x.dim(0);
  g.c = x.dim(1);
  g.h = x.dim(2);
  g.w = x.dim(3);
  g.k = w.dim(0);
  g.kh = w.dim(2);
  g.kw = w.dim(3);
  g.stride_h = a.stride_h;
  g.stride_w = a.stride_w;
  g.pad_h = a.pad_h;
  g.pad_w = a.pad_w;
  g.dilation_h = a.dilation_h;
  g.dilation_w = a.dilation_w;
  g.groups = a.groups;
  const int64_t ekh = a.dilation_h * (g.kh - 1) + 1, ekw = a.dilation_w * (g.kw - 1) + 1;
  BFCN_CHECK(g.h + 2 * g.pad_h >= ekh && g.w + 2 * g.pad_w >= ekw, "conv2d: padded input size (",
             g.h + 2 * g.pad_h, "x", g.w + 2 * g.pad_w,
             ") is smaller than the dilated kernel size (", ekh, "x", ekw, ") for input of shape ",
             x.shape(), " and weight of shape ", w.shape());
  if (bias != nullptr) {
    BFCN_CHECK(bias->dtype() == DType::f32 && bias->shape() == Shape{g.k},
               "conv2d: expected f32 bias of shape [", g.k, "] (one per out-channel), but got ",
               dtype_name(bias->dtype()), " ", bias->shape());
  }
  BFCN_ASSERT(g.valid());
  return g;
}

}  // namespace

Var conv2d(const Var& x, const Var& w, const Var& bias, const Conv2dArgs& args) {
  const bool has_bias = bias.defined();
  const ConvGeom g = check_conv2d(x.value(), w.value(), has_bias ? &bias.value() : nullptr, args);
  Tensor y = Tensor::empty({g.n, g.k, g.out_h(), g.out_w()});
  conv2d_forward(g, x.value().f32(), w.value().f32(), has_bias ? bias.value().f32() : nullptr,
                 y.f32());
  std::vector<Var> inputs{x, w};
  if (has_bias) inputs.push_back(bias);
  Tensor xv = x.value(), wv = w.value();
  return make_op("conv2d", std::move(y), inputs,
                 [g, xv, wv, has_bias](const Tensor& dy, const GradMask& need) {
                   std::vector<Tensor> grads(has_bias ? 3 : 2);
                   if (need[0]) {
                     grads[0] = Tensor::empty(xv.shape());
                     conv2d_backward_input(g, dy.f32(), wv.f32(), grads[0].f32());
                   }
                   if (need[1]) {
                     grads[1] = Tensor::empty(wv.shape());
                     conv2d_backward_weight(g, xv.f32(), dy.f32(), grads[1].f32());
                   }
                   if (has_bias && need[2]) {
                     grads[2] = Tensor::empty({g.k});
                     conv2d_backward_bias(g, dy.f32(), grads[2].f32());
                   }
                   return grads;
                 });
}

}  // namespace bfcn
