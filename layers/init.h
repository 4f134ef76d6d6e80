// Parameter initialisers, matching torchvision's ResNet/FCN init so runs are comparable with
// PyTorch: conv weights kaiming-normal (fan_out, relu gain), BN gamma 1 / beta 0, running stats
// 0 / 1, conv bias as PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)). All draw from an
// explicit Rng, in element order, so a seed fixes the weights.
#pragma once

#include "core/rng.h"
#include "core/tensor.h"

namespace bfcn {

// w [K,C/g,kh,kw]: fan_in = C/g*kh*kw, fan_out = K*kh*kw (PyTorch's definition, groups ignored).
int64_t conv_fan_in(const Shape& w);
int64_t conv_fan_out(const Shape& w);

void kaiming_normal_fan_out(Tensor& w, Rng& rng);             // N(0, sqrt(2/fan_out))
void uniform_init(Tensor& t, float bound, Rng& rng);          // U(-bound, bound)
void conv_bias_init(Tensor& bias, int64_t fan_in, Rng& rng);  // bound 1/sqrt(fan_in)

}  // namespace bfcn
