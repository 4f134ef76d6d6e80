// The fused fake-quantization kernels: every variant of elementwise_variants() against the scalar
// reference bit for bit (values, -0, NaN, mask) on every tail length, and the dispatching entry
// point on a threaded size.
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu_features.h"
#include "kernels/elementwise.h"
#include "tests/support/test_support.h"
#include "tests/support/variants.h"

using namespace bfcn;

namespace {
// Random values around [0,1], exact level ties t/(2n) for the rounding, and edge values.
std::vector<float> quant_inputs(int64_t n, float levels, Rng& rng) {
  std::vector<float> v(static_cast<size_t>(n));
  const float edges[] = {0.0f,
                         -0.0f,
                         1.0f,
                         -1e-30f,
                         1.0000001f,
                         std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(),
                         1e30f,
                         -3.5f,
                         2.5f};
  for (int64_t i = 0; i < n; ++i) {
    const float u = rng.uniform();
    if (u < 0.15f)
      v[i] = edges[rng.randint(0, 11)];
    else if (u < 0.35f)
      v[i] = static_cast<float>(rng.randint(-2, 2 * static_cast<int>(levels) + 3)) / (2 * levels);
    else
      v[i] = rng.uniform(-0.5f, 1.5f);
  }
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}
}  // namespace

TEST_CASE("elementwise variant table: ref first, by ISA level, dispatch takes the best allowed") {
  const ElementwiseVariant& best = best_variant(elementwise_variants());
  test::check_variant_table(elementwise_variants(), best);
}

TEST_CASE("quantize_levels_f32 of every variant matches the reference bit for bit, mask included") {
  test::for_each_variant(elementwise_variants(), [](const ElementwiseVariant& v) {
    Rng rng(11);
    for (int k = 1; k <= 8; ++k)
      for (bool clip : {true, false})
        for (int64_t n = 0; n <= 41; ++n) {
          const float levels = static_cast<float>((1 << k) - 1);
          const std::vector<float> x = quant_inputs(n, levels, rng);
          std::vector<float> y_ref(x.size(), 7.0f), y_var(x.size(), 7.0f);
          std::vector<uint8_t> m_ref(x.size(), 9), m_var(x.size(), 9);
          quantize_levels_f32__ref(x.data(), levels, clip, y_ref.data(), m_ref.data(), n);
          v.quantize_levels(x.data(), levels, clip, y_var.data(), m_var.data(), n);
          INFO("k = " << k << " clip = " << clip << " n = " << n);
          REQUIRE(same_bits(y_var, y_ref));
          REQUIRE(m_var == m_ref);
        }
  });
}

TEST_CASE("quantize_levels_f32 reference: levels, clipping, -0, NaN and the inclusive mask") {
  const std::vector<float> x = {-0.2f,    -0.0f, 0.0f,
                                1.0f / 6, 0.5f,  5.0f / 6,
                                1.0f,     1.2f,  std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> y(x.size());
  std::vector<uint8_t> m(x.size());
  quantize_levels_f32__ref(x.data(), 3.0f, true, y.data(), m.data(), 9);
  // 2 bits: levels j/3; 1/6*3 = 0.5 and 5/6*3 = 2.5 are ties that go to the even level.
  CHECK(y[0] == 0.0f);
  CHECK(std::signbit(y[1]));  // clamp keeps -0 as clamp_f32 does
  CHECK(y[3] == 0.0f);
  CHECK(y[4] == 2.0f / 3);
  CHECK(y[5] == 2.0f / 3);
  CHECK(y[6] == 1.0f);
  CHECK(y[7] == 1.0f);
  CHECK(std::isnan(y[8]));
  CHECK(m == std::vector<uint8_t>{0, 1, 1, 1, 1, 1, 1, 0, 0});
  // Unclipped: values outside [0,1] land on the extended grid j/n.
  quantize_levels_f32__ref(x.data(), 3.0f, false, y.data(), nullptr, 9);
  CHECK(y[0] == -1.0f / 3);
  CHECK(y[7] == 4.0f / 3);
}

TEST_CASE(
    "quantize_levels_f32 dispatch equals the reference on a threaded size for 1 and 2 "
    "threads") {
  Rng rng(12);
  const int64_t n = (int64_t{1} << 16) + 13;
  const std::vector<float> x = quant_inputs(n, 3.0f, rng);
  std::vector<float> y_ref(x.size()), y1(x.size()), y2(x.size());
  std::vector<uint8_t> m_ref(x.size()), m1(x.size()), m2(x.size());
  quantize_levels_f32__ref(x.data(), 3.0f, true, y_ref.data(), m_ref.data(), n);
  const int old = omp_get_max_threads();
  omp_set_num_threads(1);
  quantize_levels_f32(x.data(), 3.0f, true, y1.data(), m1.data(), n);
  omp_set_num_threads(2);
  quantize_levels_f32(x.data(), 3.0f, true, y2.data(), m2.data(), n);
  omp_set_num_threads(old);
  CHECK(same_bits(y1, y_ref));
  CHECK(same_bits(y2, y_ref));
  CHECK(m1 == m_ref);
  CHECK(m2 == m_ref);
}

TEST_CASE("mask_select_f32 and scaled_sign_f32") {
  const std::vector<float> dy = {1.5f, -2.0f, 3.0f, -0.0f};
  const std::vector<uint8_t> m = {1, 0, 1, 1};
  std::vector<float> dx(4, 9.0f);
  mask_select_f32(dy.data(), m.data(), dx.data(), 4);
  CHECK(dx == std::vector<float>{1.5f, 0.0f, 3.0f, -0.0f});
  const std::vector<float> w = {0.0f, -0.0f, -1e-30f, 2.0f, -3.0f, 0.5f};
  const std::vector<float> e = {0.25f, 4.0f};
  std::vector<float> y(6);
  scaled_sign_f32(w.data(), e.data(), 2, 3, y.data());
  CHECK(y == std::vector<float>{0.25f, 0.25f, -0.25f, 4.0f, -4.0f, 4.0f});
}

TEST_CASE("mask_select_f32: every variant and dispatch equal the scalar select, also in place") {
  Rng rng(13);
  for (int64_t n : {int64_t{0}, int64_t{5}, int64_t{8}, int64_t{41}, int64_t{70001}}) {
    std::vector<float> dy(static_cast<size_t>(n));
    std::vector<uint8_t> m(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      dy[i] = rng.uniform(-2.0f, 2.0f);
      m[i] = rng.uniform() < 0.5f ? 1 : 0;
    }
    std::vector<float> want(dy.size());
    for (int64_t i = 0; i < n; ++i) want[i] = m[i] != 0 ? dy[i] : 0.0f;
    std::vector<float> got(dy.size(), 9.0f), inplace = dy;
    mask_select_f32(dy.data(), m.data(), got.data(), n);
    mask_select_f32(inplace.data(), m.data(), inplace.data(), n);
    INFO("n = " << n);
    CHECK(got == want);
    CHECK(inplace == want);
    test::for_each_variant(elementwise_variants(), [&](const ElementwiseVariant& v) {
      std::vector<float> var(dy.size(), 9.0f);
      v.mask_select(dy.data(), m.data(), var.data(), n);
      CHECK(var == want);
    });
  }
}
