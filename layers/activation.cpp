// ReLU and QuantAct (see layers/activation.h).
#include "layers/activation.h"

#include "autograd/ops.h"
#include "autograd/quant.h"

namespace bfcn {

Var ReLU::forward(const Var& x) { return relu(x); }

QuantAct::QuantAct(int a_bits, int g_bits, uint64_t seed)
    : Module("QuantAct"), a_bits_(a_bits), g_bits_(g_bits), rng_(seed) {
  check_bits(a_bits, "a_bits", "");
  check_bits(g_bits, "g_bits", "");
}

Var QuantAct::forward(const Var& x) {
  // DoReFa's activate(): ReLU at full precision, clip[0,1] + k-bit quantize otherwise.
  Var y = a_bits_ == 32 ? relu(x) : quantize_activation(x, a_bits_);
  return quantize_gradient(y, g_bits_, rng_);
}

}  // namespace bfcn
