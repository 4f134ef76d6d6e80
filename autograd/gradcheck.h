// Finite-difference gradient check for any function of Vars. The output y = f(x...) is projected
// onto a fixed random R (loss = Σ y·R, accumulated in double); backward (seeded with R) must match
// central differences (loss(x+eps) - loss(x-eps)) / 2eps for every element of every input.
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
  std::string message() const;  // "gradcheck failed: input 1 element 7: analytic 0.5 vs ..."
};

using GradcheckFn = std::function<Var(const std::vector<Var>&)>;

// inputs are copied; each becomes a leaf that requires grad. f must be deterministic.
GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options = {});

}  // namespace bfcn
