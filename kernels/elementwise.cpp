// Elementwise kernels: plain loops the compiler vectorises, threaded only above kParallelMin.
// Reductions use fixed blocks (kBlock): see Note [Deterministic reductions].
#include "kernels/elementwise.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/variant.h"

namespace bfcn {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // below this, threads cost more than they save
constexpr int64_t kBlock = 1 << 14;        // reduction block (elements)

template <class F>
void map1(const float* x, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <class F>
void map2(const float* a, const float* b, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
}

template <class F>
void map2_scalar(const float* a, float b, float* y, int64_t n, F f) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b);
}

template <class F>
void binary(const float* a, const float* b, bool b_scalar, float* y, int64_t n, F f) {
  if (b_scalar)
    map2_scalar(a, b[0], y, n, f);
  else
    map2(a, b, y, n, f);
}

// Note [Deterministic reductions]
// Floating-point sums depend on their order, and `omp reduction` combines per-thread partials in
// an unspecified order, so the same seed could train differently run to run. Every reduction in
// the op kernels (elementwise, pool, norm, upsample, loss) instead cuts its range into pieces fixed
// by the SIZE of the data (kBlock elements here; channels in norm.cpp, planes in pool.cpp, pixel
// blocks in loss.cpp), sums each piece serially in double, and adds the pieces in index order. The
// result is bit-identical for any thread count (stronger than the "fixed thread count" the issue
// asks for) at no measurable cost.

// Σ f(i) over [b, e) in 8 fixed lanes (lane = offset mod 8, combined in order): a fixed order,
// without the latency of one serial add chain.
template <class F>
double lane_sum(int64_t b, int64_t e, F f) {
  double acc[8] = {};
  int64_t i = b;
  for (; i + 8 <= e; i += 8)
    for (int j = 0; j < 8; ++j) acc[j] += f(i + j);
  for (; i < e; ++i) acc[(i - b) % 8] += f(i);
  double s = 0.0;
  for (double v : acc) s += v;
  return s;
}

// Sum over fixed blocks of block_sum(begin, end), combined in block order.
template <class F>
double blocked_sum(int64_t n, F block_sum) {
  const int64_t nb = (n + kBlock - 1) / kBlock;
  if (nb <= 1) return n > 0 ? block_sum(0, n) : 0.0;
  std::vector<double> part(static_cast<size_t>(nb));
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t end = b * kBlock + kBlock < n ? b * kBlock + kBlock : n;
    part[static_cast<size_t>(b)] = block_sum(b * kBlock, end);
  }
  double s = 0.0;
  for (double p : part) s += p;
  return s;
}
}  // namespace

void add_inplace_f32(float* y, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += x[i];
}

void axpy_f32(float* y, float a, const float* x, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

void scale_inplace_f32(float* y, float a, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] *= a;
}

void binary_f32(BinaryOp op, const float* a, const float* b, bool b_scalar, float* y, int64_t n) {
  switch (op) {
    case BinaryOp::add:
      return binary(a, b, b_scalar, y, n, [](float p, float q) { return p + q; });
    case BinaryOp::sub:
      return binary(a, b, b_scalar, y, n, [](float p, float q) { return p - q; });
    case BinaryOp::mul:
      return binary(a, b, b_scalar, y, n, [](float p, float q) { return p * q; });
    case BinaryOp::div:
      return binary(a, b, b_scalar, y, n, [](float p, float q) { return p / q; });
  }
}

void scale_f32(const float* x, float s, float* y, int64_t n) {
  map2_scalar(x, s, y, n, [](float p, float q) { return p * q; });
}
void add_scalar_f32(const float* x, float c, float* y, int64_t n) {
  map2_scalar(x, c, y, n, [](float p, float q) { return p + q; });
}
void neg_f32(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](float v) { return -v; });
}
void mul_f32(const float* a, const float* b, float* y, int64_t n) {
  map2(a, b, y, n, [](float p, float q) { return p * q; });
}

void div_grad_b_f32(const float* dy, const float* a, const float* b, bool b_scalar, float* y,
                    int64_t n) {
  if (b_scalar) {
    const float bb = b[0] * b[0];
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] = -dy[i] * a[i] / bb;
  } else {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) y[i] = -dy[i] * a[i] / (b[i] * b[i]);
  }
}

void relu_f32(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](float v) { return v > 0.0f ? v : 0.0f; });
}
void relu_backward_f32(const float* dy, const float* y, float* dx, int64_t n) {
  map2(dy, y, dx, n, [](float g, float v) { return v > 0.0f ? g : 0.0f; });
}

void clamp_f32(const float* x, float lo, float hi, float* y, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] < lo ? lo : (x[i] > hi ? hi : x[i]);
}
void clamp_backward_f32(const float* dy, const float* x, float lo, float hi, float* dx, int64_t n) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = (x[i] >= lo && x[i] <= hi) ? dy[i] : 0.0f;
}

void tanh_f32(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](float v) { return std::tanh(v); });
}
void tanh_backward_f32(const float* dy, const float* y, float* dx, int64_t n) {
  map2(dy, y, dx, n, [](float g, float v) { return g * (1.0f - v * v); });
}

void abs_f32(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](float v) { return std::fabs(v); });
}
void abs_backward_f32(const float* dy, const float* x, float* dx, int64_t n) {
  map2(dy, x, dx, n, [](float g, float v) { return v > 0.0f ? g : (v < 0.0f ? -g : 0.0f); });
}

void round_half_even_f32(const float* x, float* y, int64_t n) {
  // std::nearbyint honours the current rounding mode, which is round-to-nearest-even by default.
  map1(x, y, n, [](float v) { return std::nearbyint(v); });
}
void sign_f32(const float* x, float* y, int64_t n) {
  map1(x, y, n, [](float v) { return v >= 0.0f ? 1.0f : -1.0f; });
}

void quantize_levels_f32__ref(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                              int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    const float c = clip ? (v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v)) : v;  // as clamp_f32
    y[i] = std::nearbyint(c * levels) / levels;  // as scale_f32, round_half_even_f32, div
    if (clip && mask != nullptr) mask[i] = (v >= 0.0f && v <= 1.0f) ? 1 : 0;
  }
}

void mask_select_f32__ref(const float* dy, const uint8_t* mask, float* dx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dx[i] = mask[i] != 0 ? dy[i] : 0.0f;
}

std::span<const ElementwiseVariant> elementwise_variants() {
  static const ElementwiseVariant kVariants[] = {
    {Isa::ref, "elementwise__ref", quantize_levels_f32__ref, mask_select_f32__ref},
#if BFCN_X86
    {Isa::avx2, "elementwise__avx2", quantize_levels_f32__avx2, mask_select_f32__avx2},
#endif
  };
  return kVariants;
}

void quantize_levels_f32(const float* x, float levels, bool clip, float* y, uint8_t* mask,
                         int64_t n) {
  static const QuantizeLevelsFn quantize = best_variant(elementwise_variants()).quantize_levels;
  // Blocks of 4096 (a multiple of every vector width) so each thread's range starts aligned.
  constexpr int64_t kQBlock = 4096;
  const int64_t nb = (n + kQBlock - 1) / kQBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * kQBlock, m = std::min(kQBlock, n - i0);
    uint8_t* mb = mask != nullptr ? mask + i0 : nullptr;
    quantize(x + i0, levels, clip, y + i0, mb, m);
  }
}

void mask_select_f32(const float* dy, const uint8_t* mask, float* dx, int64_t n) {
  static const MaskSelectFn select = best_variant(elementwise_variants()).mask_select;
  constexpr int64_t kMBlock = 4096;
  const int64_t nb = (n + kMBlock - 1) / kMBlock;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t i0 = b * kMBlock, m = std::min(kMBlock, n - i0);
    select(dy + i0, mask + i0, dx + i0, m);
  }
}

void scaled_sign_f32(const float* w, const float* e, int64_t rows, int64_t per, float* y) {
#pragma omp parallel for schedule(static) if (rows * per >= kParallelMin)
  for (int64_t r = 0; r < rows; ++r) {
    const float er = e[r];
    const float* wr = w + r * per;
    float* yr = y + r * per;
#pragma omp simd
    for (int64_t i = 0; i < per; ++i) yr[i] = er * (wr[i] >= 0.0f ? 1.0f : -1.0f);
  }
}

double sum_f64(const float* x, int64_t n) {
  return blocked_sum(n, [x](int64_t b, int64_t e) {
    return lane_sum(b, e, [x](int64_t i) { return static_cast<double>(x[i]); });
  });
}

double dot_f64(const float* a, const float* b, int64_t n) {
  return blocked_sum(n, [a, b](int64_t s0, int64_t e) {
    return lane_sum(s0, e, [a, b](int64_t i) { return static_cast<double>(a[i]) * b[i]; });
  });
}

int64_t argmax_first_f32(const float* x, int64_t n) {
  int64_t best = 0;
  for (int64_t i = 1; i < n; ++i)
    if (x[i] > x[best] || (std::isnan(x[best]) && !std::isnan(x[i]))) best = i;
  return best;
}

}  // namespace bfcn
