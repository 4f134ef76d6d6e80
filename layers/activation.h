// Activation modules. QuantAct is DoReFa's activate(): clip to [0,1] then k-bit quantize (gradient
// masked to 0 <= x <= 1); with a_bits = 32 it is a plain ReLU, as in the tensorpack FP scripts.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

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
  // QConv2d's g_bits for a block, not both. learned_clip: the clip is a parameter "clip" [1]
  // (PACT/LSQ, pact_quantize: y = clip*round(clamp(x/clip,0,1)*n)/n) instead of DoReFa's fixed 1.
  explicit QuantAct(int a_bits, int g_bits = 32, uint64_t seed = 0, bool learned_clip = false);
  Var forward(const Var& x) override;
  int a_bits() const { return a_bits_; }
  int g_bits() const { return g_bits_; }
  bool learned_clip() const { return clip_.defined(); }
  // The clip bound: the learned parameter's value, else 1 (DoReFa).
  float clip_value() const;

  // Calibration (learned clip only): while on, forward is the FP ReLU and records a subsample of
  // its input; end_calibration() sets the clip to the value minimising the quantization MSE of
  // relu(x) over the recorded samples (grid search). Returns the chosen clip (1 if no samples).
  void begin_calibration();
  float end_calibration();
  bool calibrating() const { return calibrating_; }

  // A debugging hook (export --verify compares engines quantizer by quantizer): after every
  // quantized forward (a_bits < 32; not while calibrating), called with the quantizer's input and
  // output values; it may overwrite output values in place (use it only in eval without gradients).
  // Empty function: off.
  using Observer = std::function<void(const Tensor& input, Tensor& output)>;
  void set_observer(Observer observer) { observer_ = std::move(observer); }

 private:
  int a_bits_, g_bits_;
  Rng rng_;
  Var clip_;  // [1], undefined for the fixed DoReFa clip
  bool calibrating_ = false;
  std::vector<float> samples_;
  Observer observer_;
};

// The clip (PACT alpha) minimising sum (relu(x) - q_alpha(x))^2 over `x` for k-bit levels, searched
// on a grid of 100 fractions of max(x) (1 when x has no positive value).
float mse_optimal_clip(const std::vector<float>& x, int k);

}  // namespace bfcn
