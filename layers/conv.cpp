// Conv2d / QConv2d (see layers/conv.h). QConv2d re-quantizes its FP32 master weight on every
// forward; the quantizer is a few cheap elementwise ops over the (small) weight tensor.
#include "layers/conv.h"

#include "core/error.h"
#include "layers/init.h"

namespace bfcn {

void check_conv2d_options(const Conv2dOptions& o) {
  BFCN_CHECK(o.in_channels > 0, "Conv2d: in_channels must be > 0, got ", o.in_channels);
  BFCN_CHECK(o.out_channels > 0, "Conv2d: out_channels must be > 0, got ", o.out_channels);
  BFCN_CHECK(o.kernel > 0, "Conv2d: kernel must be > 0, got ", o.kernel);
  BFCN_CHECK(o.stride > 0, "Conv2d: stride must be > 0, got ", o.stride);
  BFCN_CHECK(o.padding >= 0, "Conv2d: padding must be >= 0, got ", o.padding);
  BFCN_CHECK(o.dilation > 0, "Conv2d: dilation must be > 0, got ", o.dilation);
  BFCN_CHECK(o.groups > 0, "Conv2d: groups must be > 0, got ", o.groups);
  BFCN_CHECK(o.in_channels % o.groups == 0, "Conv2d: groups (", o.groups,
             ") must divide in_channels (", o.in_channels, ")");
  BFCN_CHECK(o.out_channels % o.groups == 0, "Conv2d: groups (", o.groups,
             ") must divide out_channels (", o.out_channels, ")");
}

Conv2d::Conv2d(const Conv2dOptions& o, Rng& rng) : Conv2d("Conv2d", o, rng) {}

Conv2d::Conv2d(const char* type, const Conv2dOptions& o, Rng& rng) : Module(type), opt_(o) {
  check_conv2d_options(o);
  Tensor w = Tensor::empty({o.out_channels, o.in_channels / o.groups, o.kernel, o.kernel});
  kaiming_normal_fan_out(w, rng);
  const int64_t fan_in = conv_fan_in(w.shape());
  weight_ = register_parameter("weight", w);
  if (o.bias) {
    Tensor b = Tensor::empty({o.out_channels});
    conv_bias_init(b, fan_in, rng);
    bias_ = register_parameter("bias", b);
  }
}

Var Conv2d::forward(const Var& x) { return conv2d(x, weight_, bias_, opt_.args()); }

QConv2d::QConv2d(const Conv2dOptions& o, const QuantSpec& q, Rng& rng)
    : Conv2d("QConv2d", o, rng), q_(q), grad_rng_(rng.fork(0x9f)) {
  check_bits(q.w_bits, "w_bits", "");
  check_bits(q.a_bits, "a_bits", "");
  check_bits(q.g_bits, "g_bits", "");
  BFCN_CHECK_CONFIG(!q.w_symmetric || (q.w_bits >= 2 && q.w_bits <= 8) || q.w_bits == 32,
                    "QConv2d: symmetric weights need w_bits 2..8, got ", q.w_bits);
}

Var QConv2d::quantized_weight() const { return quantize_weight(weight(), q_); }

Var QConv2d::forward(const Var& x) {
  Var y = conv2d(x, quantized_weight(), bias(), options().args());
  return quantize_gradient(y, q_.g_bits, grad_rng_);
}

}  // namespace bfcn
