// softmax_cross_entropy over NCHW logits with ignore_index and optional class weights
// (weighted mean Σ w[t]·nll / Σ w[t], as PyTorch's weight=); argmax_channels for predictions.
// Labels are validated before any threaded work so a bad value is reported by name.
#include "kernels/loss.h"

#include <algorithm>
#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"

namespace bfcn {

using ops_detail::check_nchw;
using ops_detail::f32_value;

namespace {
template <class L>
void validate_labels(const L* t, int64_t count, int64_t c, int ignore_index) {
  for (int64_t i = 0; i < count; ++i) {
    const int64_t v = static_cast<int64_t>(t[i]);
    BFCN_CHECK(v == ignore_index || (v >= 0 && v < c), "softmax_cross_entropy: label ", v,
               " at flat index ", i, " is out of range: expected 0..", c - 1, " or ignore_index ",
               ignore_index);
  }
}
}  // namespace

Var softmax_cross_entropy(const Var& logits, const Tensor& labels, int ignore_index,
                          const Tensor& class_weights) {
  const Tensor& xv = f32_value(logits, "softmax_cross_entropy", "logits");
  check_nchw(xv, "softmax_cross_entropy", "logits");
  const int64_t n = xv.dim(0), c = xv.dim(1), hw = xv.dim(2) * xv.dim(3);
  BFCN_CHECK(c >= 1, "softmax_cross_entropy: expected at least one class, but got ", xv.shape());
  BFCN_CHECK(labels.defined() && labels.shape() == Shape({n, xv.dim(2), xv.dim(3)}),
             "softmax_cross_entropy: expected labels of shape [", n, ",", xv.dim(2), ",", xv.dim(3),
             "], but got ", labels.defined() ? labels.shape().str() : "none");
  BFCN_CHECK(labels.dtype() == DType::i32 || labels.dtype() == DType::u8,
             "softmax_cross_entropy: expected i32 or u8 labels, but got ",
             dtype_name(labels.dtype()));
  const float* w = nullptr;
  if (class_weights.defined()) {
    BFCN_CHECK(class_weights.dtype() == DType::f32 && class_weights.shape() == Shape({c}),
               "softmax_cross_entropy: expected class_weights f32 of shape [", c, "], but got ",
               class_weights.shape(), " ", dtype_name(class_weights.dtype()));
    w = class_weights.f32();
  }
  const bool is_u8 = labels.dtype() == DType::u8;
  if (is_u8)
    validate_labels(labels.data<uint8_t>(), labels.numel(), c, ignore_index);
  else
    validate_labels(labels.data<int32_t>(), labels.numel(), c, ignore_index);

  // lse [N,H*W]: log-sum-exp per pixel, saved for the backward pass.
  Tensor lse = Tensor::empty(Shape{n, hw});
  const XentSums s = is_u8 ? softmax_xent_forward(xv.f32(), labels.data<uint8_t>(), w, n, c, hw,
                                                  ignore_index, lse.f32())
                           : softmax_xent_forward(xv.f32(), labels.data<int32_t>(), w, n, c, hw,
                                                  ignore_index, lse.f32());
  // Every pixel ignored (or zero total weight): loss 0 and zero gradient, never NaN.
  const double total_w = s.weight;
  const float loss = total_w > 0.0 ? static_cast<float>(s.loss / total_w) : 0.0f;
  Tensor y = Tensor::full(Shape{1}, loss);
  Tensor cw = class_weights;
  return make_op("softmax_cross_entropy", y, {logits},
                 [xv, labels, cw, lse, total_w, is_u8, n, c, hw, ignore_index](const Tensor& dy,
                                                                               const GradMask&) {
                   Tensor dx = Tensor::empty(xv.shape());
                   const float scale =
                       total_w > 0.0 ? static_cast<float>(dy.item() / total_w) : 0.0f;
                   const float* wp = cw.defined() ? cw.f32() : nullptr;
                   if (is_u8)
                     softmax_xent_backward(xv.f32(), labels.data<uint8_t>(), wp, lse.f32(), n, c,
                                           hw, ignore_index, scale, dx.f32());
                   else
                     softmax_xent_backward(xv.f32(), labels.data<int32_t>(), wp, lse.f32(), n, c,
                                           hw, ignore_index, scale, dx.f32());
                   return std::vector<Tensor>{dx};
                 });
}

Tensor argmax_channels(const Tensor& logits) {
  BFCN_CHECK(logits.defined() && logits.dtype() == DType::f32 && logits.ndim() == 4,
             "argmax_channels: expected f32 logits [N,C,H,W], but got ",
             logits.defined() ? logits.shape().str() : "none");
  const int64_t n = logits.dim(0), c = logits.dim(1), hw = logits.dim(2) * logits.dim(3);
  BFCN_CHECK(c >= 1, "argmax_channels: expected C >= 1, but got ", logits.shape());
  Tensor out = Tensor::empty(Shape{n, logits.dim(2), logits.dim(3)}, DType::i32);
  const float* x = logits.f32();
  int32_t* o = out.data<int32_t>();
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < n; ++b) {
    const float* xb = x + b * c * hw;
    int32_t* ob = o + b * hw;
    for (int64_t p = 0; p < hw; ++p) {
      float best = xb[p];
      int32_t bi = 0;
      for (int64_t ch = 1; ch < c; ++ch)
        if (xb[ch * hw + p] > best) {  // strict: the first maximal class wins ties
          best = xb[ch * hw + p];
          bi = static_cast<int32_t>(ch);
        }
      ob[p] = bi;
    }
  }
  return out;
}

Var distill_kl(const Var& student, const Tensor& teacher, float temperature) {
  const Tensor& sv = f32_value(student, "distill_kl", "student");
  check_nchw(sv, "distill_kl", "student");
  BFCN_CHECK(teacher.dtype() == DType::f32 && teacher.shape() == sv.shape(),
             "distill_kl: teacher logits must be f32 of the student's shape ", sv.shape(), ", got ",
             teacher.shape());
  BFCN_CHECK(std::isfinite(temperature) && temperature > 0.0f,
             "distill_kl: temperature must be > 0, got ", temperature);
  const int64_t n = sv.dim(0), c = sv.dim(1), hw = sv.dim(2) * sv.dim(3), pix = n * hw;
  const float inv_t = 1.0f / temperature;
  // Softmaxes at temperature T, kept for backward (p_s - p_t is the gradient).
  Tensor ps = Tensor::empty(sv.shape()), pt = Tensor::empty(sv.shape());
  const float* s = sv.f32();
  const float* t = teacher.f32();
  float* psp = ps.f32();
  float* ptp = pt.f32();
  double loss = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : loss)
  for (int64_t p = 0; p < pix; ++p) {
    const int64_t b = p / hw, i = p % hw;
    const int64_t base = b * c * hw + i;
    float ms = -INFINITY, mt = -INFINITY;
    for (int64_t k = 0; k < c; ++k) {
      ms = std::max(ms, s[base + k * hw] * inv_t);
      mt = std::max(mt, t[base + k * hw] * inv_t);
    }
    double zs = 0, zt = 0;
    for (int64_t k = 0; k < c; ++k) {
      zs += std::exp(double(s[base + k * hw] * inv_t - ms));
      zt += std::exp(double(t[base + k * hw] * inv_t - mt));
    }
    const double lzs = std::log(zs), lzt = std::log(zt);
    double kl = 0;
    for (int64_t k = 0; k < c; ++k) {
      const double ls = double(s[base + k * hw] * inv_t - ms) - lzs;  // log p_s
      const double lt = double(t[base + k * hw] * inv_t - mt) - lzt;  // log p_t
      const double pk = std::exp(lt);
      kl += pk * (lt - ls);
      psp[base + k * hw] = static_cast<float>(std::exp(ls));
      ptp[base + k * hw] = static_cast<float>(pk);
    }
    loss += kl;
  }
  const float scale_t2 = temperature * temperature;
  Tensor out = Tensor::full(Shape{1}, static_cast<float>(loss / double(pix)) * scale_t2);
  return make_op(
      "distill_kl", out, {student},
      [ps, pt, temperature, pix](const Tensor& dy, const GradMask&) -> std::vector<Tensor> {
        const float g = dy.f32()[0] * temperature / static_cast<float>(pix);
        Tensor dx = Tensor::empty(ps.shape());
        const int64_t m = ps.numel();
        for (int64_t i = 0; i < m; ++i) dx.f32()[i] = g * (ps.f32()[i] - pt.f32()[i]);
        return {dx};
      });
}

}  // namespace bfcn
