// Forward values, conventions and errors of the ops: STE surrogates (exact ties, identity
// backward), kink conventions (relu/abs at 0, inclusive clamp, first max), broadcasting,
// pooling geometry, batch-norm running stats, cross-entropy edge cases, dropout, argmax.
#include "autograd/ops.h"

#include <omp.h>

#include <cmath>
#include <cstring>

#include "kernels/pool.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::random_tensor;

namespace {
Var vec(std::vector<float> v, bool rg = true) {
  const int64_t n = static_cast<int64_t>(v.size());
  return Var(Tensor::from_vector(Shape{n}, v), rg);
}
std::vector<float> grad_of(const Var& x) { return x.grad().to_vector(); }
}  // namespace

TEST_CASE("round_ste: round half to even forward, identity backward", "[ste]") {
  Var x = vec({0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 0.49f, -2.7f, 3.2f});
  Var y = round_ste(x);
  const std::vector<float> v = y.value().to_vector();
  CHECK(v == std::vector<float>{0.0f, 2.0f, 2.0f, -0.0f, -2.0f, 0.0f, -3.0f, 3.0f});
  CHECK(std::signbit(v[3]));  // round(-0.5) = -0
  y.backward(Tensor::from_vector(Shape{8}, {1, 2, 3, 4, 5, 6, 7, 8}));
  CHECK(grad_of(x) == std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8});
}

TEST_CASE("sign_ste: sign(0) = +1 forward, identity backward", "[ste]") {
  Var x = vec({0.0f, -0.0f, 1e-30f, -1e-30f, 3.0f, -2.0f});
  Var y = sign_ste(x);
  CHECK(y.value().to_vector() == std::vector<float>{1, 1, 1, -1, 1, -1});
  y.backward(Tensor::from_vector(Shape{6}, {0.5f, -1, 2, 3, 4, 5}));
  CHECK(grad_of(x) == std::vector<float>{0.5f, -1, 2, 3, 4, 5});
}

TEST_CASE("kink conventions: relu and abs have gradient 0 at 0, clamp's mask is inclusive",
          "[ops]") {
  Var x = vec({-1.0f, 0.0f, 2.0f});
  sum(relu(x)).backward();
  CHECK(grad_of(x) == std::vector<float>{0, 0, 1});
  x.zero_grad();
  sum(bfcn::abs(x)).backward();
  CHECK(grad_of(x) == std::vector<float>{-1, 0, 1});

  Var c = vec({-0.5f, 0.0f, 0.5f, 1.0f, 1.5f});
  Var y = clamp(c, 0.0f, 1.0f);
  CHECK(y.value().to_vector() == std::vector<float>{0, 0, 0.5f, 1, 1});
  sum(y).backward();
  CHECK(grad_of(c) == std::vector<float>{0, 1, 1, 1, 0});
}

TEST_CASE("max_all sends the gradient to the first maximal element", "[ops]") {
  Var x = vec({1.0f, 3.0f, -2.0f, 3.0f});
  Var m = max_all(x);
  CHECK(m.value().item() == 3.0f);
  CHECK(m.shape() == Shape{1});
  m.backward();
  CHECK(grad_of(x) == std::vector<float>{0, 1, 0, 0});
}

TEST_CASE("binary ops broadcast a one-element b and sum its gradient", "[ops]") {
  Var a = vec({1.0f, 2.0f, 3.0f});
  Var b = vec({2.0f});
  Var y = div(a, b);
  CHECK(y.value().to_vector() == std::vector<float>{0.5f, 1.0f, 1.5f});
  sum(y).backward();
  CHECK(grad_of(b)[0] == Approx(-(1 + 2 + 3) / 4.0));
  CHECK_THROWS_WITH(add(a, vec({1.0f, 2.0f})),
                    Catch::Contains("add: expected b of shape [3]") && Catch::Contains("[2]"));
}

TEST_CASE("reductions, reshape and concat_channels forward values", "[ops]") {
  Var x(Tensor::from_vector(Shape{2, 3}, {1, 2, 3, 4, 5, 6}), true);
  CHECK(sum(x).value().item() == 21.0f);
  CHECK(mean(x).value().item() == 3.5f);
  Var r = reshape(x, Shape{3, 2});
  CHECK(r.shape() == Shape{3, 2});
  CHECK_THROWS_WITH(reshape(x, Shape{4}), Catch::Contains("reshape: cannot reshape [2,3]"));

  Var a(Tensor::from_vector(Shape{1, 1, 1, 2}, {1, 2}), true);
  Var b(Tensor::from_vector(Shape{1, 2, 1, 2}, {3, 4, 5, 6}), true);
  Var cat = concat_channels({a, b});
  CHECK(cat.shape() == Shape{1, 3, 1, 2});
  CHECK(cat.value().to_vector() == std::vector<float>{1, 2, 3, 4, 5, 6});
  cat.backward(Tensor::from_vector(Shape{1, 3, 1, 2}, {10, 20, 30, 40, 50, 60}));
  CHECK(grad_of(a) == std::vector<float>{10, 20});
  CHECK(grad_of(b) == std::vector<float>{30, 40, 50, 60});
  CHECK_THROWS_WITH(concat_channels({a, Var(Tensor::zeros(Shape{1, 1, 2, 2}))}),
                    Catch::Contains("concat_channels: expected input 1 of shape [1,C,1,2]"));
}

TEST_CASE("pooling output sizes follow PyTorch (floor, ceil, padding)", "[ops]") {
  CHECK(pooling_output_size(5, 2, 2, 0, false) == 2);
  CHECK(pooling_output_size(5, 2, 2, 0, true) == 3);
  CHECK(pooling_output_size(5, 3, 2, 1, true) == 3);  // last window would start in the padding
  CHECK(pooling_output_size(6, 3, 2, 1, true) == 4);
  CHECK(pooling_output_size(6, 3, 2, 1, false) == 3);
  CHECK(pooling_output_size(112, 3, 2, 1, false) == 56);  // ResNet stem pool
  Var x(Tensor::zeros(Shape{1, 1, 4, 4}), true);
  CHECK_THROWS_WITH(max_pool2d(x, Pool2dArgs::square(3, 2, 2)),
                    Catch::Contains("max_pool2d: expected 0 <= padding <= kernel/2"));
  CHECK_THROWS_WITH(avg_pool2d(Var(Tensor::zeros(Shape{2, 2})), Pool2dArgs::square(2, 2)),
                    Catch::Contains("expected 'x' of shape [N,C,H,W], but got [2,2]"));
}

TEST_CASE("max_pool2d gives ties to the first maximum; avg_pool2d padding modes", "[ops]") {
  Var x(Tensor::from_vector(Shape{1, 1, 2, 2}, {5, 5, 1, 5}), true);
  Var y = max_pool2d(x, Pool2dArgs::square(2, 2));
  CHECK(y.value().item() == 5.0f);
  y.backward();
  CHECK(grad_of(x) == std::vector<float>{1, 0, 0, 0});

  Var ones(Tensor::ones(Shape{1, 1, 3, 3}), true);
  Pool2dArgs a = Pool2dArgs::square(3, 2, 1);
  // Corner window covers 4 real pixels of a padded 3x3 window.
  CHECK(avg_pool2d(ones, a).value().f32()[0] == Approx(4.0 / 9.0));
  a.count_include_pad = false;
  CHECK(avg_pool2d(ones, a).value().f32()[0] == Approx(1.0));
}

TEST_CASE("batch_norm2d: batch stats, unbiased running update, eval uses running stats", "[ops]") {
  // One channel, values 1..4: mean 2.5, biased var 1.25, unbiased 5/3.
  Var x(Tensor::from_vector(Shape{2, 1, 1, 2}, {1, 2, 3, 4}), true);
  Tensor rm = Tensor::zeros(Shape{1}), rv = Tensor::ones(Shape{1});
  Var y = batch_norm2d(x, Var(), Var(), rm, rv, true, 0.1f, 0.0f + 1e-5f);
  const float inv = 1.0f / std::sqrt(1.25f + 1e-5f);
  CHECK(y.value().f32()[0] == Approx(-1.5f * inv));
  CHECK(rm.f32()[0] == Approx(0.25f));
  CHECK(rv.f32()[0] == Approx(0.9f + 0.1f * 5.0f / 3.0f));

  Tensor m2 = Tensor::full(Shape{1}, 1.0f), v2 = Tensor::full(Shape{1}, 4.0f);
  Var ye = batch_norm2d(x, Var(), Var(), m2, v2, false);
  CHECK(ye.value().f32()[3] == Approx(3.0f / std::sqrt(4.0f + 1e-5f)));
  CHECK(m2.f32()[0] == 1.0f);  // eval leaves running stats alone
  CHECK_THROWS_WITH(batch_norm2d(x, Var(Tensor::ones(Shape{2}), true), Var(), m2, v2, false),
                    Catch::Contains("batch_norm2d: expected 'gamma' f32 of shape [1]"));
}

TEST_CASE("upsample_bilinear: identity size, align_corners corners, constant planes", "[ops]") {
  Rng rng(5);
  Tensor t = random_tensor(Shape{1, 2, 4, 3}, rng);
  for (bool ac : {false, true}) {
    Var same = upsample_bilinear(Var(t), 4, 3, ac);
    CHECK(bfcn::test::all_close(same.value(), t, 1e-6f, 1e-6f));
  }
  Var up = upsample_bilinear(Var(t), 7, 5, true);
  CHECK(up.value().f32()[0] == t.f32()[0]);
  CHECK(up.value().f32()[7 * 5 - 1] == Approx(t.f32()[11]));
  Var c = upsample_bilinear(Var(Tensor::full(Shape{1, 1, 3, 3}, 2.5f)), 5, 8, false);
  for (float v : c.value().span<float>()) CHECK(v == Approx(2.5f));
}

TEST_CASE("softmax_cross_entropy: value, bad labels, all pixels ignored", "[ops]") {
  // One pixel, two classes, logits (0, ln 3): p(class1) = 3/4.
  Var x(Tensor::from_vector(Shape{1, 2, 1, 1}, {0.0f, std::log(3.0f)}), true);
  Tensor lab = Tensor::from_vector_i32(Shape{1, 1, 1}, {1});
  Var l = softmax_cross_entropy(x, lab);
  CHECK(l.value().item() == Approx(-std::log(0.75f)));
  l.backward();
  CHECK(grad_of(x)[0] == Approx(0.25f));
  CHECK(grad_of(x)[1] == Approx(-0.25f));

  Tensor bad = Tensor::from_vector_i32(Shape{1, 1, 1}, {7});
  CHECK_THROWS_WITH(softmax_cross_entropy(x, bad), Catch::Contains("label 7"));
  Tensor neg = Tensor::from_vector_i32(Shape{1, 1, 1}, {-1});
  CHECK_THROWS_WITH(softmax_cross_entropy(x, neg), Catch::Contains("label -1"));
  CHECK_THROWS_WITH(softmax_cross_entropy(x, Tensor::zeros(Shape{1, 2, 1}, DType::i32)),
                    Catch::Contains("expected labels of shape [1,1,1]"));

  Var z(Tensor::from_vector(Shape{1, 2, 1, 2}, {1, 2, 3, 4}), true);
  Tensor ign = Tensor::from_vector_u8(Shape{1, 1, 2}, {255, 255});
  Var lz = softmax_cross_entropy(z, ign);
  CHECK(lz.value().item() == 0.0f);
  lz.backward();
  for (float g : grad_of(z)) CHECK(g == 0.0f);
}

TEST_CASE("softmax_cross_entropy with class weights is the weighted mean", "[ops]") {
  Rng rng(9);
  Tensor logits = random_tensor(Shape{1, 3, 1, 2}, rng);
  Tensor lab = Tensor::from_vector_i32(Shape{1, 1, 2}, {0, 2});
  Tensor w = Tensor::from_vector(Shape{3}, {2.0f, 1.0f, 0.5f});
  const float* x = logits.f32();
  auto nll = [x](int t, int p) {
    double s = 0;
    for (int c = 0; c < 3; ++c) s += std::exp(x[c * 2 + p]);
    return std::log(s) - x[t * 2 + p];
  };
  const double want = (2.0 * nll(0, 0) + 0.5 * nll(2, 1)) / 2.5;
  CHECK(softmax_cross_entropy(Var(logits), lab, 255, w).value().item() == Approx(want));
}

TEST_CASE("dropout: eval is identity, training keeps ~1-p scaled by 1/(1-p), reproducible",
          "[ops]") {
  Var x(Tensor::ones(Shape{1, 1, 200, 200}), true);
  Rng r1(3), r2(3);
  CHECK(dropout(x, 0.5f, false, r1).value().same_storage(x.value()));
  Var a = dropout(x, 0.25f, true, r1);
  Var b = dropout(x, 0.25f, true, r2);
  CHECK(a.value().to_vector() == b.value().to_vector());
  int64_t kept = 0, other = 0;
  for (float v : a.value().span<float>()) {
    kept += v == 1.0f / 0.75f;
    other += v != 0.0f && v != 1.0f / 0.75f;
  }
  CHECK(other == 0);
  CHECK(static_cast<double>(kept) / 40000.0 == Approx(0.75).margin(0.01));
  Var c = dropout(x, 0.25f, true, r1);  // the Rng advanced: a different mask
  CHECK(c.value().to_vector() != a.value().to_vector());
  sum(a).backward();
  CHECK(x.grad().to_vector() == a.value().to_vector());
}

TEST_CASE("argmax_channels picks the first maximal class", "[ops]") {
  Tensor l = Tensor::from_vector(Shape{1, 3, 1, 2}, {1, 5, 3, 5, 3, 0});
  Tensor a = argmax_channels(l);
  CHECK(a.dtype() == DType::i32);
  CHECK(a.shape() == Shape{1, 1, 2});
  CHECK(a.data<int32_t>()[0] == 1);  // tie between classes 1 and 2 → 1
  CHECK(a.data<int32_t>()[1] == 0);  // tie between classes 0 and 1 → 0
}

TEST_CASE("reductions and their gradients are bit-identical for 1 and 2 threads", "[ops]") {
  Rng rng(21);
  const Tensor x =
      random_tensor(Shape{2, 8, 64, 64}, rng, -3.0f, 3.0f);  // above the threading cutoff
  Tensor labels = Tensor::empty(Shape{2, 64, 64}, DType::u8);
  for (uint8_t& v : labels.span<uint8_t>()) v = static_cast<uint8_t>(rng.randint(0, 8));
  auto run = [&](int threads) {
    omp_set_num_threads(threads);
    Var xv(x.clone(), true);
    Tensor rm = Tensor::zeros(Shape{8}), rv = Tensor::ones(Shape{8});
    Var y = batch_norm2d(xv, Var(), Var(), rm, rv, true);
    Var loss = add(softmax_cross_entropy(y, labels), mean(mul(y, y)));
    loss.backward();
    std::vector<float> out = xv.grad().to_vector();
    out.push_back(loss.value().item());
    out.push_back(rv.f32()[3]);
    return out;
  };
  const int prev = omp_get_max_threads();
  const std::vector<float> one = run(1), two = run(2);
  omp_set_num_threads(prev);
  CHECK(one == two);
}

TEST_CASE("max_pool2d kernel matches a scalar reference on a sweep of geometries with ties",
          "[ops]") {
  Rng rng(31);
  int checked = 0;
  for (int64_t h : {1, 2, 5, 7})
    for (int64_t w : {1, 3, 4, 8})
      for (int k : {1, 2, 3, 4})
        for (int st : {1, 2, 3})
          for (int p = 0; p <= k / 2; ++p)
            for (bool ceil : {false, true}) {
              PoolGeom g;
              g.planes = 2;
              g.h = h;
              g.w = w;
              g.kh = g.kw = k;
              g.sh = g.sw = st;
              g.ph = g.pw = p;
              g.out_h = pooling_output_size(h, k, st, p, ceil);
              g.out_w = pooling_output_size(w, k, st, p, ceil);
              if (g.out_h < 1 || g.out_w < 1) continue;
              // Small integers: many ties, so the first-max rule is exercised.
              std::vector<float> x(static_cast<size_t>(2 * h * w));
              for (float& v : x) v = static_cast<float>(rng.randint(0, 3));
              std::vector<float> y(static_cast<size_t>(2 * g.out_h * g.out_w));
              std::vector<int32_t> idx(y.size());
              max_pool2d_forward(x.data(), y.data(), idx.data(), g);
              bool ok = true;
              for (int64_t pl = 0; pl < 2; ++pl)
                for (int64_t oh = 0; oh < g.out_h; ++oh)
                  for (int64_t ow = 0; ow < g.out_w; ++ow) {
                    float best = -1e30f;
                    int64_t bi = -1;
                    for (int64_t ih = oh * st - p; ih < oh * st - p + k; ++ih)
                      for (int64_t iw = ow * st - p; iw < ow * st - p + k; ++iw)
                        if (ih >= 0 && ih < h && iw >= 0 && iw < w &&
                            x[pl * h * w + ih * w + iw] > best) {
                          best = x[pl * h * w + ih * w + iw];
                          bi = ih * w + iw;
                        }
                    const size_t o = static_cast<size_t>((pl * g.out_h + oh) * g.out_w + ow);
                    ok = ok && y[o] == best && idx[o] == bi;
                  }
              INFO("h=" << h << " w=" << w << " k=" << k << " s=" << st << " p=" << p
                        << " ceil=" << ceil);
              CHECK(ok);
              ++checked;
            }
  CHECK(checked > 300);
}

namespace {
Tensor quant_probe(Rng& rng, int64_t n, float levels) {
  // Random values around [0,1], exact ties of the level grid, and the clamp edges.
  Tensor t = random_tensor({n}, rng, -0.5f, 1.5f);
  float* p = t.f32();
  for (int64_t i = 0; i < n; i += 7)
    p[i] = static_cast<float>(rng.randint(-2, 2 * static_cast<int>(levels) + 3)) / (2 * levels);
  p[1] = 0.0f;
  p[2] = -0.0f;
  p[3] = 1.0f;
  return t;
}
}  // namespace

TEST_CASE("fused fake-quantizers equal the composed ops bit for bit, with the exact STE gradient",
          "[ste]") {
  Rng rng(21);
  for (int k = 1; k <= 8; ++k)
    for (int64_t n : {int64_t{37}, int64_t{70001}}) {  // serial, and threaded with AVX2 blocks
      const float levels = static_cast<float>((1 << k) - 1);
      const Tensor xt = quant_probe(rng, n, levels);
      const Tensor dyt = random_tensor({n}, rng, -2.0f, 2.0f);
      const Var nv(Tensor::full({1}, levels));
      INFO("k = " << k << " n = " << n);
      // clip_quantize_levels_ste vs div(round_ste(scale(clamp(x,0,1), n)), n)
      Var x(xt, true);
      Var y = clip_quantize_levels_ste(x, k);
      const Tensor composed = div(round_ste(scale(clamp(Var(xt), 0.0f, 1.0f), levels)), nv).value();
      REQUIRE(std::memcmp(y.value().f32(), composed.f32(), n * sizeof(float)) == 0);
      y.backward(dyt);
      for (int64_t i = 0; i < n; ++i) {
        const float v = xt.f32()[i];
        REQUIRE(x.grad().f32()[i] == (v >= 0.0f && v <= 1.0f ? dyt.f32()[i] : 0.0f));
      }
      // quantize_levels_ste vs div(round_ste(scale(x, n)), n), identity gradient
      Var x2(xt, true);
      Var y2 = quantize_levels_ste(x2, k);
      const Tensor composed2 = div(round_ste(scale(Var(xt), levels)), nv).value();
      REQUIRE(std::memcmp(y2.value().f32(), composed2.f32(), n * sizeof(float)) == 0);
      y2.backward(dyt);
      REQUIRE(std::memcmp(x2.grad().f32(), dyt.f32(), n * sizeof(float)) == 0);
    }
}

TEST_CASE("scaled_sign_ste: e*sign(w) per tensor or per row, identity backward, checked scale",
          "[ste]") {
  Tensor wt = Tensor::from_vector({2, 3}, {0.0f, -0.0f, -1e-30f, 2.0f, -3.0f, 0.5f});
  Var w(wt, true);
  Var y = scaled_sign_ste(w, Tensor::from_vector({2}, {0.25f, 4.0f}));
  CHECK(y.value().to_vector() == std::vector<float>{0.25f, 0.25f, -0.25f, 4.0f, -4.0f, 4.0f});
  y.backward(Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6}));
  CHECK(grad_of(w) == std::vector<float>{1, 2, 3, 4, 5, 6});
  CHECK(scaled_sign_ste(Var(wt), Tensor::full({1}, 2.0f)).value().to_vector() ==
        std::vector<float>{2, 2, -2, 2, -2, 2});
  CHECK_THROWS_WITH(scaled_sign_ste(Var(wt), Tensor::full({3}, 1.0f)),
                    Catch::Contains("scaled_sign_ste") && Catch::Contains("1 or 2"));
  CHECK_THROWS_WITH(quantize_levels_ste(Var(wt), 0), Catch::Contains("bits must be 1..8, got 0"));
  CHECK_THROWS_WITH(clip_quantize_levels_ste(Var(wt), 9),
                    Catch::Contains("bits must be 1..8, got 9"));
}

TEST_CASE("clip_quantize_levels_ste without grad records no closure", "[ste]") {
  Var x(Tensor::from_vector({3}, {-1.0f, 0.4f, 2.0f}), false);
  Var y = clip_quantize_levels_ste(x, 2);
  CHECK_FALSE(y.requires_grad());
  CHECK(y.value().to_vector() == std::vector<float>{0.0f, 1.0f / 3, 1.0f});
}
