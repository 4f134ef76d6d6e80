// Learning-rate schedules as pure functions of the iteration, so resuming needs no schedule state:
// poly (lr * (1 - it/total)^power, the segmentation standard), step (lr * gamma^floor(it/step)),
// cosine (lr * (1 + cos(pi * it/total)) / 2) and constant, each optionally preceded by a linear
// warmup from warmup_factor*lr to the scheduled value over warmup_iters iterations.
#pragma once

#include <cstdint>
#include <string>

namespace bfcn {

struct LrSchedule {
  std::string type = "poly";  // "poly" | "step" | "cosine" | "constant"
  double power = 0.9;         // poly
  int64_t step = 1000;        // step: iterations between decays
  double gamma = 0.1;         // step: decay factor
  int64_t warmup_iters = 0;
  double warmup_factor = 0.1;  // lr multiplier at iteration 0 of the warmup
};

// Learning rate for 0-based iteration `iter` of `total` (iter is clamped to [0, total]).
double lr_at(const LrSchedule& s, double base_lr, int64_t iter, int64_t total);

}  // namespace bfcn
