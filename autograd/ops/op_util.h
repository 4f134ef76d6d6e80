// Small helpers shared by the op files in autograd/ops/ (not part of the public op API).
// Closures must never hand the same storage to two inputs: the engine accumulates in place.
#pragma once

#include "autograd/var.h"
#include "core/error.h"
#include "core/tensor.h"

namespace bfcn::ops_detail {

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
