// Reductions to one element (shape [1]): sum, mean, max_all.
// Sums accumulate in double over fixed blocks (deterministic for any thread count);
// max_all sends its gradient to the first maximal element only, as PyTorch's max() does.
#include "autograd/ops.h"
#include "autograd/ops/op_util.h"
#include "kernels/elementwise.h"

namespace bfcn {

using ops_detail::f32_value;

namespace {
Tensor scalar_tensor(double v) { return Tensor::full(Shape{1}, static_cast<float>(v)); }
}  // namespace

Var sum(const Var& x) {
  const Tensor& xv = f32_value(x, "sum", "x");
  Tensor y = scalar_tensor(sum_f64(xv.f32(), xv.numel()));
  const Shape shape = xv.shape();
  return make_op("sum", y, {x}, [shape](const Tensor& dy, const GradMask&) {
    return std::vector<Tensor>{Tensor::full(shape, dy.item())};
  });
}

Var mean(const Var& x) {
  const Tensor& xv = f32_value(x, "mean", "x");
  BFCN_CHECK(xv.numel() > 0, "mean: expected a non-empty tensor, but got shape ", xv.shape());
  const int64_t n = xv.numel();
  Tensor y = scalar_tensor(sum_f64(xv.f32(), n) / static_cast<double>(n));
  const Shape shape = xv.shape();
  return make_op("mean", y, {x}, [shape, n](const Tensor& dy, const GradMask&) {
    return std::vector<Tensor>{
        Tensor::full(shape, static_cast<float>(dy.item() / static_cast<double>(n)))};
  });
}

Var max_all(const Var& x) {
  const Tensor& xv = f32_value(x, "max_all", "x");
  BFCN_CHECK(xv.numel() > 0, "max_all: expected a non-empty tensor, but got shape ", xv.shape());
  const int64_t idx = argmax_first_f32(xv.f32(), xv.numel());
  Tensor y = Tensor::full(Shape{1}, xv.f32()[idx]);
  const Shape shape = xv.shape();
  return make_op("max_all", y, {x}, [shape, idx](const Tensor& dy, const GradMask&) {
    Tensor dx = Tensor::zeros(shape);
    dx.f32()[idx] = dy.item();
    return std::vector<Tensor>{dx};
  });
}

}  // namespace bfcn
