// Finite-difference gradient checks for any function of Vars. The output y = f(x...) is projected
// onto a fixed random R (loss = Σ y·R, accumulated in double); backward (seeded with R) must match
// central differences (loss(x+eps) - loss(x-eps)) / 2eps for every element of every input.
//
// Two modes:
//  - gradcheck: differences through f's own f32 forward. f32 rounding forces a large eps (1e-2)
//    and loose tolerances (1%): fine for composite functions (tests/autograd/quant_test.cpp), blind
//    to small errors.
//  - gradcheck_reference: differences through an independent double-precision reference forward
//    (eps 1e-6: truncation and rounding both ~1e-9 of the gradient), against f's real f32
//    backward. The tolerance is then set by f32 backward rounding alone, tight enough that a
//    backward scaled by 1.001 fails. It also checks f's f32 forward against the reference.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "autograd/var.h"

namespace bfcn {

struct GradcheckOptions {
  double eps = 1e-2;   // f32 forward: 1e-2 balances truncation against rounding error
  double atol = 1e-3;  // pass when |analytic - numeric| <= atol + rtol*|numeric|
  double rtol = 1e-2;
  uint64_t seed = 0;  // for the projection R
};

struct GradcheckResult {
  bool ok = true;
  double max_abs_error = 0.0;  // over all inputs and elements
  int worst_input = -1;        // where the largest violation (or error) is
  int64_t worst_index = -1;
  double worst_analytic = 0.0, worst_numeric = 0.0;
  double worst_ratio = 0.0;  // largest |a-n| / tolerance: > 1 fails
  // gradcheck_reference only: the f32 forward against the double reference.
  bool forward_ok = true;
  double forward_max_error = 0.0;  // max |f32 - reference| / max |reference|
  int64_t forward_worst_index = -1;
  double forward_worst_f32 = 0.0, forward_worst_reference = 0.0;
  std::string forward_error;    // shape mismatch, if any
  std::string message() const;  // "gradcheck failed: input 1 element 7: analytic 0.5 vs ..."
};

using GradcheckFn = std::function<Var(const std::vector<Var>&)>;

// inputs are copied; each becomes a leaf that requires grad. f must be deterministic.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

// A double-precision tensor for reference forwards: row-major values of `shape`.
struct RefTensor {
  Shape shape;
  std::vector<double> v;
};
// The reference forward: the same inputs as f (as doubles, same order), f's output as doubles.
using ReferenceFn = std::function<RefTensor(const std::vector<RefTensor>&)>;

struct ReferenceGradcheckOptions {
  double eps = 1e-6;  // double forward: truncation ~eps^2, rounding ~1e-16/eps, both negligible
  // Pass when |analytic - numeric| <= atol*scale + rtol*|numeric|, with scale the largest
  // |numeric| over that input: atol is relative to the gradient's own size, so a loss averaged
  // over many pixels (gradients ~1e-3) is held to the same relative standard as a sum.
  double atol = 2e-5;
  double rtol = 1e-4;
  // Forward: |f32 - reference| <= forward_tol * max|reference| for every output element.
  double forward_tol = 1e-5;
  uint64_t seed = 0;  // for the projection R
};

// inputs are copied; f and reference must be deterministic and take the inputs in the same order.
GradcheckResult gradcheck_reference(const GradcheckFn& f, const ReferenceFn& reference,
                                    const std::vector<Tensor>& inputs,
                                    const ReferenceGradcheckOptions& options = {});

}  // namespace bfcn
