// Elementwise ops: add sub mul div scale add_scalar relu clamp tanh abs.
// Binary ops take b of a's shape or one element (a broadcast scalar whose gradient is the sum).
// Each closure saves only the handles its backward reads (relu/tanh save their output); the
// unary backwards overwrite dy in place (Note [Gradient ownership]).
#include "kernels/elementwise.h"

#include <cmath>

#include "autograd/ops.h"
#include "autograd/ops/op_util.h"

namespace bfcn {

using ops_detail::empty_like;
using ops_detail::f32_value;

namespace {

// True when b broadcasts as a scalar; throws unless b matches a's shape or has one element.
bool check_binary(const Tensor& a, const Tensor& b, const char* op) {
  if (a.shape() == b.shape()) return false;
  BFCN_CHECK(b.numel() == 1, op, ": expected b of shape ", a.shape(),
             " (same as a) or one element, but got ", b.shape());
  return true;
}

// Gradient for b: dy-shaped grad g reduced to b's shape when b is a broadcast scalar.
Tensor reduce_for_b(Tensor g, const Shape& b_shape, bool b_scalar) {
  if (!b_scalar) return g;
  Tensor r = Tensor::empty(b_shape);
  r.f32()[0] = static_cast<float>(sum_f64(g.f32(), g.numel()));
  return r;
}

Var binary_op(const char* name, BinaryOp op, const Var& a, const Var& b) {
  const Tensor& av = f32_value(a, name, "a");
  const Tensor& bv = f32_value(b, name, "b");
  const bool b_scalar = check_binary(av, bv, name);
  Tensor y = empty_like(av);
  binary_f32(op, av.f32(), bv.f32(), b_scalar, y.f32(), y.numel());
  return make_op(name, y, {a, b}, [op, av, bv, b_scalar](const Tensor& dy, const GradMask& need) {
    const int64_t n = dy.numel();
    Tensor da, db;
    switch (op) {
      case BinaryOp::add:
        if (need[0]) da = dy.clone();
        if (need[1]) db = reduce_for_b(dy.clone(), bv.shape(), b_scalar);
        break;
      case BinaryOp::sub:
        if (need[0]) da = dy.clone();
        if (need[1]) {
          Tensor g = empty_like(dy);
          neg_f32(dy.f32(), g.f32(), n);
          db = reduce_for_b(g, bv.shape(), b_scalar);
        }
        break;
      case BinaryOp::mul:
        if (need[0]) {
          da = empty_like(dy);
          binary_f32(BinaryOp::mul, dy.f32(), bv.f32(), b_scalar, da.f32(), n);
        }
        if (need[1]) {
          if (b_scalar) {
            db = Tensor::empty(bv.shape());
            db.f32()[0] = static_cast<float>(dot_f64(dy.f32(), av.f32(), n));
          } else {
            db = empty_like(dy);
            mul_f32(dy.f32(), av.f32(), db.f32(), n);
          }
        }
        break;
      case BinaryOp::div:
        if (need[0]) {
          da = empty_like(dy);
          binary_f32(BinaryOp::div, dy.f32(), bv.f32(), b_scalar, da.f32(), n);
        }
        if (need[1]) {
          Tensor g = empty_like(dy);
          div_grad_b_f32(dy.f32(), av.f32(), bv.f32(), b_scalar, g.f32(), n);
          db = reduce_for_b(g, bv.shape(), b_scalar);
        }
        break;
    }
    return std::vector<Tensor>{da, db};
  });
}

}  // namespace

Var add(const Var& a, const Var& b) { return binary_op("add", BinaryOp::add, a, b); }
Var sub(const Var& a, const Var& b) { return binary_op("sub", BinaryOp::sub, a, b); }
Var mul(const Var& a, const Var& b) { return binary_op("mul", BinaryOp::mul, a, b); }
Var div(const Var& a, const Var& b) { return binary_op("div", BinaryOp::div, a, b); }

Var scale(const Var& x, float s) {
  const Tensor& xv = f32_value(x, "scale", "x");
  Tensor y = empty_like(xv);
  scale_f32(xv.f32(), s, y.f32(), y.numel());
  return make_op("scale", y, {x}, [s](const Tensor& dy, const GradMask&) {
    Tensor dx = empty_like(dy);
    scale_f32(dy.f32(), s, dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

Var add_scalar(const Var& x, float c) {
  const Tensor& xv = f32_value(x, "add_scalar", "x");
  Tensor y = empty_like(xv);
  add_scalar_f32(xv.f32(), c, y.f32(), y.numel());
  // dy is this node's own gradient: handed on as is (Note [Gradient ownership]).
  return make_op("add_scalar", y, {x},
                 [](const Tensor& dy, const GradMask&) { return std::vector<Tensor>{dy}; });
}

Var relu(const Var& x) {
  const Tensor& xv = f32_value(x, "relu", "x");
  Tensor y = empty_like(xv);
  relu_f32(xv.f32(), y.f32(), y.numel());
  // y > 0 exactly where x > 0, so the output alone gives the mask (gradient 0 at x == 0).
  return make_op("relu", y, {x}, [y](const Tensor& dy, const GradMask&) {
    Tensor dx = dy;  // in place: see Note [Gradient ownership]
    relu_backward_f32(dy.f32(), y.f32(), dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

Var clamp(const Var& x, float lo, float hi) {
  const Tensor& xv = f32_value(x, "clamp", "x");
  BFCN_CHECK(lo <= hi, "clamp: expected lo <= hi, but got lo=", lo, ", hi=", hi);
  Tensor y = empty_like(xv);
  clamp_f32(xv.f32(), lo, hi, y.f32(), y.numel());
  return make_op("clamp", y, {x}, [xv, lo, hi](const Tensor& dy, const GradMask&) {
    Tensor dx = dy;  // in place: see Note [Gradient ownership]
    clamp_backward_f32(dy.f32(), xv.f32(), lo, hi, dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

Var tanh(const Var& x) {
  const Tensor& xv = f32_value(x, "tanh", "x");
  Tensor y = empty_like(xv);
  tanh_f32(xv.f32(), y.f32(), y.numel());
  return make_op("tanh", y, {x}, [y](const Tensor& dy, const GradMask&) {
    Tensor dx = dy;  // in place: see Note [Gradient ownership]
    tanh_backward_f32(dy.f32(), y.f32(), dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

Var abs(const Var& x) {
  const Tensor& xv = f32_value(x, "abs", "x");
  Tensor y = empty_like(xv);
  abs_f32(xv.f32(), y.f32(), y.numel());
  return make_op("abs", y, {x}, [xv](const Tensor& dy, const GradMask&) {
    Tensor dx = empty_like(dy);
    abs_backward_f32(dy.f32(), xv.f32(), dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

}  // namespace bfcn
