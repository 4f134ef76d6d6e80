// Synchronised batch norm (set_batch_norm_sync) with two replicas simulated in one process: replica
// A runs the real op on its half of a batch, the replica sum adds replica B's contributions
// (computed here in double from B's half), and A's output, input gradient and running statistics
// must equal those of one per-process batch_norm2d over the whole batch. The single-replica path
// is in THE gradient-check table (grad_cases_test.cpp, "batch_norm2d train synced").
#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

Tensor slice_batch(const Tensor& t, int64_t b0, int64_t b1) {
  const int64_t per = t.numel() / t.dim(0);
  std::vector<float> v(t.f32() + b0 * per, t.f32() + b1 * per);
  return Tensor::from_vector(Shape{b1 - b0, t.dim(1), t.dim(2), t.dim(3)}, v);
}

double max_abs_diff(const float* a, const float* b, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) m = std::max(m, std::abs(double(a[i]) - double(b[i])));
  return m;
}

}  // namespace

TEST_CASE("synchronised batch norm over two replicas equals batch norm over the whole batch",
          "[autograd][sync_bn]") {
  Rng rng(41);
  const int64_t n = 4, c = 3, h = 5, w = 6, hw = h * w, half = n / 2;
  const float eps = 1e-5f, momentum = 0.1f;
  const Tensor x = test::random_tensor(Shape{n, c, h, w}, rng, -2.0f, 3.0f);
  const Tensor seed = test::random_tensor(Shape{n, c, h, w}, rng);  // dL/dy
  const Tensor gamma = test::random_tensor(Shape{c}, rng, 0.5f, 1.5f);
  const Tensor beta = test::random_tensor(Shape{c}, rng);
  const Tensor rm0 = test::random_tensor(Shape{c}, rng), rv0 = Tensor::full(Shape{c}, 1.0f);

  // Reference: one batch_norm2d over all n samples.
  Tensor rm_ref = rm0.clone(), rv_ref = rv0.clone();
  Var xr(x.clone(), true), gr(gamma.clone(), true), br(beta.clone(), true);
  Var yr = batch_norm2d(xr, gr, br, rm_ref, rv_ref, true, momentum, eps);
  const Tensor y_ref = yr.value().clone();
  yr.backward(seed.clone());

  // Global statistics in double (what replica B needs for its backward sums).
  std::vector<double> mu(c, 0.0), var(c, 0.0);
  for (int64_t ch = 0; ch < c; ++ch) {
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < hw; ++i) mu[ch] += x.f32()[(b * c + ch) * hw + i];
    mu[ch] /= double(n * hw);
    for (int64_t b = 0; b < n; ++b)
      for (int64_t i = 0; i < hw; ++i) {
        const double d = x.f32()[(b * c + ch) * hw + i] - mu[ch];
        var[ch] += d * d;
      }
    var[ch] /= double(n * hw);
  }
  // Replica B = samples [half, n): forward adds (sum, sum of squares, count), backward adds
  // (sum dy, sum dy * xhat).
  int forward_calls = 0, backward_calls = 0;
  set_batch_norm_sync([&](double* d, size_t len) {
    if (len == size_t(2 * c + 1)) {
      ++forward_calls;
      for (int64_t ch = 0; ch < c; ++ch)
        for (int64_t b = half; b < n; ++b)
          for (int64_t i = 0; i < hw; ++i) {
            const double v = x.f32()[(b * c + ch) * hw + i];
            d[ch] += v;
            d[c + ch] += v * v;
          }
      d[2 * c] += double((n - half) * hw);
    } else {
      REQUIRE(len == size_t(2 * c));
      ++backward_calls;
      for (int64_t ch = 0; ch < c; ++ch) {
        const double invstd = 1.0 / std::sqrt(var[ch] + eps);
        for (int64_t b = half; b < n; ++b)
          for (int64_t i = 0; i < hw; ++i) {
            const int64_t k = (b * c + ch) * hw + i;
            d[ch] += seed.f32()[k];
            d[c + ch] += seed.f32()[k] * (x.f32()[k] - mu[ch]) * invstd;
          }
      }
    }
  });
  Tensor rm_a = rm0.clone(), rv_a = rv0.clone();
  Var xa(slice_batch(x, 0, half), true), ga(gamma.clone(), true), ba(beta.clone(), true);
  Var ya = batch_norm2d(xa, ga, ba, rm_a, rv_a, true, momentum, eps);
  ya.backward(slice_batch(seed, 0, half));
  set_batch_norm_sync({});
  CHECK(forward_calls == 1);
  CHECK(backward_calls == 1);

  const int64_t na = half * c * hw;
  CHECK(max_abs_diff(ya.value().f32(), y_ref.f32(), na) < 1e-5);
  CHECK(max_abs_diff(xa.grad().f32(), xr.grad().f32(), na) < 1e-5);
  CHECK(max_abs_diff(rm_a.f32(), rm_ref.f32(), c) < 1e-6);
  CHECK(max_abs_diff(rv_a.f32(), rv_ref.f32(), c) < 1e-5);
  // gamma/beta gradients stay per replica (the trainer averages them like every gradient): A's
  // share of the whole-batch sums.
  for (int64_t ch = 0; ch < c; ++ch) {
    double sdy = 0, sdyx = 0;
    for (int64_t b = 0; b < half; ++b)
      for (int64_t i = 0; i < hw; ++i) {
        const int64_t k = (b * c + ch) * hw + i;
        sdy += seed.f32()[k];
        sdyx += seed.f32()[k] * (x.f32()[k] - mu[ch]) / std::sqrt(var[ch] + eps);
      }
    CHECK(std::abs(ba.grad().f32()[ch] - sdy) < 1e-4);
    CHECK(std::abs(ga.grad().f32()[ch] - sdyx) < 1e-4);
  }

  // Without the replica sum, A normalises with its own statistics: visibly different.
  Tensor rm_l = rm0.clone(), rv_l = rv0.clone();
  Var yl = batch_norm2d(Var(slice_batch(x, 0, half)), Var(gamma), Var(beta), rm_l, rv_l, true,
                        momentum, eps);
  CHECK(max_abs_diff(yl.value().f32(), y_ref.f32(), na) > 1e-2);
}
