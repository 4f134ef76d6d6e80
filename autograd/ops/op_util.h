// Small helpers shared by the op files in autograd/ops/ (not part of the public op API).
// Closures must never hand the same storage to two inputs: see Note [Gradient ownership].
#pragma once

#include "autograd/var.h"
#include "core/error.h"
#include "core/tensor.h"

namespace bfcn::ops_detail {

// Note [Gradient ownership]
// The engine adopts the first gradient tensor a closure returns for an input and adds later
// contributions into it IN PLACE (autograd/var.cpp, accumulate()). So a closure may return
// storage that nobody else will read — a fresh tensor, or dy itself (this node's own gradient,
// dropped right after its closure runs) for at most ONE input — but never a saved value (x, y,
// a mask) and never the same dy to two inputs: add() returns dy.clone() for both operands,
// identity-backward ops (add_scalar, round_ste, sign_ste) return dy for their single input, and
// reshape returns a view of dy. For the same reason a closure may overwrite dy in place and
// return it, when it reads dy[i] only to write dx[i] (relu, clamp, tanh, the clipped fake-
// quantizer, batch_norm2d's dx): no new gradient buffer per op in the backward pass.
// tests/autograd/engine_test.cpp pins the aliasing case.

// The f32 value of a Var, checked: "<op>: expected an f32 tensor for 'x', but got i32".
inline const Tensor& f32_value(const Var& v, const char* op, const char* name) {
  BFCN_CHECK(v.defined(), op, ": input '", name, "' is undefined");
  const Tensor& t = v.value();
  BFCN_CHECK(t.dtype() == DType::f32, op, ": expected an f32 tensor for '", name, "', but got ",
             dtype_name(t.dtype()));
  return t;
}

inline void check_nchw(const Tensor& t, const char* op, const char* name) {
  BFCN_CHECK(t.ndim() == 4, op, ": expected '", name, "' of shape [N,C,H,W], but got ", t.shape());
}

// A fresh f32 tensor shaped like t.
inline Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), DType::f32); }

}  // namespace bfcn::ops_detail
