// LR schedules at known iterations: poly, step, cosine, constant, and the linear warmup.
#include "train/lr_schedule.h"

#include <cmath>

#include "tests/support/test_support.h"

using namespace bfcn;

TEST_CASE("lr schedules at known iterations", "[train]") {
  LrSchedule s;
  CHECK(lr_at(s, 0.01, 0, 100) == Approx(0.01));
  CHECK(lr_at(s, 0.01, 50, 100) == Approx(0.01 * std::pow(0.5, 0.9)));
  CHECK(lr_at(s, 0.01, 100, 100) == 0.0);
  s.type = "step";
  s.step = 30;
  CHECK(lr_at(s, 0.01, 29, 100) == Approx(0.01));
  CHECK(lr_at(s, 0.01, 30, 100) == Approx(0.001));
  CHECK(lr_at(s, 0.01, 60, 100) == Approx(0.0001));
  s.type = "cosine";
  CHECK(lr_at(s, 0.01, 0, 100) == Approx(0.01));
  CHECK(lr_at(s, 0.01, 50, 100) == Approx(0.005));
  CHECK(lr_at(s, 0.01, 100, 100) == Approx(0.0).margin(1e-12));
  s.type = "constant";
  CHECK(lr_at(s, 0.01, 77, 100) == 0.01);
  s.type = "exp";
  CHECK_THROWS_WITH(lr_at(s, 0.01, 1, 100), Catch::Contains("lr_schedule.type"));
}

TEST_CASE("linear warmup ramps from warmup_factor to the schedule", "[train]") {
  LrSchedule s;
  s.type = "constant";
  s.warmup_iters = 10;
  s.warmup_factor = 0.1;
  CHECK(lr_at(s, 1.0, 0, 100) == Approx(0.1));
  CHECK(lr_at(s, 1.0, 5, 100) == Approx(0.55));
  CHECK(lr_at(s, 1.0, 10, 100) == Approx(1.0));
  s.type = "poly";
  CHECK(lr_at(s, 1.0, 5, 100) == Approx(0.55 * std::pow(0.95, 0.9)));
}
