// Inverted dropout. The mask comes from one draw of the caller's Rng (advancing it) that seeds
// fixed-size chunks via Rng::fork(chunk), so masks are reproducible for a seed at any thread count.
#include "autograd/ops.h"
#include "autograd/ops/op_util.h"
#include "kernels/elementwise.h"

namespace bfcn {

using ops_detail::empty_like;
using ops_detail::f32_value;

namespace {
constexpr int64_t kChunk = 1 << 14;
}

Var dropout(const Var& x, float p, bool training, Rng& rng) {
  const Tensor& xv = f32_value(x, "dropout", "x");
  BFCN_CHECK(p >= 0.0f && p <= 1.0f, "dropout: expected 0 <= p <= 1, but got ", p);
  if (!training || p == 0.0f) return x;
  const int64_t n = xv.numel();
  // mask [numel]: 0 or 1/(1-p) (all 0 when p == 1).
  Tensor mask = empty_like(xv);
  const float keep_scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const Rng base(rng.next_u64());
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  float* m = mask.f32();
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t ci = 0; ci < chunks; ++ci) {
    Rng r = base.fork(static_cast<uint64_t>(ci));
    const int64_t end = (ci + 1) * kChunk < n ? (ci + 1) * kChunk : n;
    for (int64_t i = ci * kChunk; i < end; ++i) m[i] = r.uniform() < p ? 0.0f : keep_scale;
  }
  Tensor y = empty_like(xv);
  mul_f32(xv.f32(), m, y.f32(), n);
  return make_op("dropout", y, {x}, [mask](const Tensor& dy, const GradMask&) {
    Tensor dx = empty_like(dy);
    mul_f32(dy.f32(), mask.f32(), dx.f32(), dy.numel());
    return std::vector<Tensor>{dx};
  });
}

}  // namespace bfcn
