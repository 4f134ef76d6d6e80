// Helpers shared by the kernel tests: random inputs and the max-abs error relative to the
// reference's scale (max(1, max|want|)), so near-zero outputs are not over-weighted.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/gemm.h"

namespace bfcn::test {

inline std::vector<float> random_vec(int64_t n, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = rng.uniform(-1.0f, 1.0f);
  return v;
}

inline double rel_err(const std::vector<float>& got, const std::vector<float>& want) {
  double worst = 0.0, scale = 1.0;
  for (size_t i = 0; i < want.size(); ++i) scale = std::max(scale, std::fabs(double(want[i])));
  for (size_t i = 0; i < want.size(); ++i)
    worst = std::max(worst, std::fabs(double(got[i]) - double(want[i])));
  return worst / scale;
}

// Every sgemm entry point runs v while this lives (sgemm_use_variant), then the previous choice.
class UseGemmVariant {
 public:
  explicit UseGemmVariant(const GemmVariant& v) : prev_(sgemm_use_variant(&v)) {}
  ~UseGemmVariant() { sgemm_use_variant(prev_); }
  UseGemmVariant(const UseGemmVariant&) = delete;
  UseGemmVariant& operator=(const UseGemmVariant&) = delete;

 private:
  const GemmVariant* prev_;
};

}  // namespace bfcn::test
