// Conv2d and QConv2d modules. Parameters use torchvision names ("weight" [K,C/g,k,k], "bias" [K]).
// QConv2d keeps FP32 master weights and quantizes them on every forward (DoReFa fw), so the
// optimizer always updates full-precision weights; activations are quantized by QuantAct in front
// of it (DoReFa ordering conv -> BN -> QuantAct -> next conv), not here.
#pragma once

#include "autograd/ops.h"
#include "autograd/quant.h"
#include "core/rng.h"
#include "layers/module.h"

namespace bfcn {

struct Conv2dOptions {
  int in_channels = 0, out_channels = 0, kernel = 3, stride = 1, padding = 0, dilation = 1,
      groups = 1;
  bool bias = false;
  Conv2dArgs args() const { return Conv2dArgs::square(stride, padding, dilation, groups); }
};

// Throws bfcn::Error naming the bad field ("Conv2d: groups (2) must divide in_channels (3)").
void check_conv2d_options(const Conv2dOptions& o);

class Conv2d : public Module {
 public:
  // Weight: kaiming-normal fan_out/relu; bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (layers/init.h).
  Conv2d(const Conv2dOptions& o, Rng& rng);
  Var forward(const Var& x) override;  // x [N,C,H,W] -> [N,K,Ho,Wo]
  const Conv2dOptions& options() const { return opt_; }
  Var weight() const { return weight_; }
  Var bias() const { return bias_; }  // undefined if none

 protected:
  Conv2d(const char* type, const Conv2dOptions& o, Rng& rng);

 private:
  Conv2dOptions opt_;
  Var weight_;  // [K,C/g,k,k]
  Var bias_;    // [K] or undefined
};

class QConv2d : public Conv2d {
 public:
  // q.w_bits/g_bits are checked (ConfigError). w_bits 32 behaves as Conv2d. When g_bits < 32 the
  // output's gradient is quantized with fg (tensorpack's placement: conv -> fg -> BN); the noise
  // stream is forked from rng at construction.
  QConv2d(const Conv2dOptions& o, const QuantSpec& q, Rng& rng);
  Var forward(const Var& x) override;
  const QuantSpec& quant() const { return q_; }
  Var quantized_weight() const;  // what forward convolves with (in the current grad mode)

 private:
  QuantSpec q_;
  Rng grad_rng_;
};

}  // namespace bfcn
