// Schedules: see lr_schedule.h. The warmup multiplies the scheduled rate (detectron2's
// WarmupParamScheduler shape): factor = warmup_factor + (1 - warmup_factor) * it / warmup_iters.
#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>

#include "core/error.h"

namespace bfcn {

double lr_at(const LrSchedule& s, double base_lr, int64_t iter, int64_t total) {
  const int64_t it = std::clamp<int64_t>(iter, 0, std::max<int64_t>(total, 0));
  const double frac = total > 0 ? static_cast<double>(it) / static_cast<double>(total) : 0.0;
  double lr = base_lr;
  if (s.type == "poly") {
    lr = base_lr * std::pow(1.0 - frac, s.power);
  } else if (s.type == "step") {
    lr = base_lr * std::pow(s.gamma, static_cast<double>(it / std::max<int64_t>(s.step, 1)));
  } else if (s.type == "cosine") {
    lr = base_lr * 0.5 * (1.0 + std::cos(std::numbers::pi * frac));
  } else if (s.type != "constant") {
    throw ConfigError(
        "train.lr_schedule.type: expected one of poly, step, cosine, constant, but got '" + s.type +
        "'");
  }
  if (it < s.warmup_iters) {
    const double a = static_cast<double>(it) / static_cast<double>(s.warmup_iters);
    lr *= s.warmup_factor + (1.0 - s.warmup_factor) * a;
  }
  return lr;
}

}  // namespace bfcn
