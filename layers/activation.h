// Activation modules. QuantAct is DoReFa's activate(): clip to [0,1] then k-bit quantize (gradient
// masked to 0 <= x <= 1); with a_bits = 32 it is a plain ReLU, as in the tensorpack FP scripts.
#pragma once

#include <cstdint>

#include "core/rng.h"
#include "layers/module.h"

namespace bfcn {

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Var forward(const Var& x) override;
};

class QuantAct : public Module {
 public:
  // a_bits/g_bits: 1..8 or 32 (ConfigError otherwise). g_bits < 32 quantizes the gradient that
  // reaches this module's output with fg (noise from an Rng seeded with `seed`). Use either this or
  // QConv2d's g_bits for a block, not both.
  explicit QuantAct(int a_bits, int g_bits = 32, uint64_t seed = 0);
  Var forward(const Var& x) override;
  int a_bits() const { return a_bits_; }
  int g_bits() const { return g_bits_; }

 private:
  int a_bits_, g_bits_;
  Rng rng_;
};

}  // namespace bfcn
