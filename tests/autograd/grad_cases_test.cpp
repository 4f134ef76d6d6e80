// THE gradient-check table: every differentiable op of autograd/ops.h (and each interesting
// mode) at three shapes with their own inputs and projection seeds: odd sizes, batch 1 and > 1,
// 1x3x7x5, 3x2x6x9, 2x4x5x5 (conv and pool add stride/dilation/padding/ceil/groups variants).
// Each case runs gradcheck_reference: the numeric gradient comes from central differences of an
// independent double-precision forward (tests/autograd/reference_ops.h, eps 1e-6), the analytic
// one from the op's real f32 backward, so the tolerance is set by f32 rounding alone (see
// ReferenceGradcheckOptions) and a backward off by 0.1% fails (the negative test below proves it
// for every case). The f32 forward is checked against the same reference.
//
// Inputs are kept away from kinks: relu/abs away from 0, clamp and pact away from their edges,
// pool windows and max_all without near-ties (distinct values 0.05 apart >> eps).
//
// Left out on purpose: the straight-through estimators (round_ste, sign_ste, quantize_levels_ste,
// clip_quantize_levels_ste, scaled_sign_ste, pact_quantize at k < 32). Their backward is a
// declared surrogate, not the derivative of their piecewise-constant forward (which is 0 almost
// everywhere), so finite differences cannot check it; tests/autograd/quant_test.cpp and
// ops_test.cpp pin those gradients value for value. argmax_channels is not differentiable.
#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <string>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "tests/autograd/reference_ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::random_tensor;

namespace {

using Vars = std::vector<Var>;
using Refs = std::vector<RefTensor>;

constexpr double kBnEps = 1e-5f;  // batch_norm2d's default eps, as the float it is

struct GradCase {
  std::string name;
  std::vector<Tensor> inputs;
  GradcheckFn fn;
  ReferenceFn ref;
  uint64_t seed = 0;  // projection R
};

// Uniform magnitude in [lo, hi] with a random sign: far from 0.
Tensor away_from_zero(const Shape& s, Rng& rng, float lo = 0.1f, float hi = 1.0f) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>()) v = rng.uniform(lo, hi) * (rng.uniform() < 0.5f ? -1.0f : 1.0f);
  return t;
}

// Distinct values spaced `gap` apart in random order, centred on 0: no ties within eps.
Tensor distinct(const Shape& s, Rng& rng, float gap = 0.05f) {
  const int64_t n = s.numel();
  std::vector<int64_t> perm(static_cast<size_t>(n));
  std::iota(perm.begin(), perm.end(), 0);
  for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng.randint(0, i + 1)]);
  Tensor t = Tensor::empty(s);
  for (int64_t i = 0; i < n; ++i) t.f32()[i] = (static_cast<float>(perm[i]) - n / 2.0f) * gap;
  return t;
}

// Uniform in [-1, 1] but never within `margin` of the edges a or b.
Tensor away_from(const Shape& s, Rng& rng, float a, float b, float margin = 0.05f) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>()) {
    do v = rng.uniform(-1.0f, 1.0f);
    while (std::fabs(v - a) < margin || std::fabs(v - b) < margin);
  }
  return t;
}

// Labels in [0, classes) with about ignore_frac of them 255 (ignored).
std::vector<int64_t> random_labels(int64_t count, Rng& rng, int classes, float ignore_frac) {
  std::vector<int64_t> v(static_cast<size_t>(count));
  for (int64_t& l : v) l = rng.uniform() < ignore_frac ? 255 : rng.randint(0, classes);
  return v;
}

std::vector<double> widen(const Tensor& t) { return {t.f32(), t.f32() + t.numel()}; }

Pool2dArgs pool(int kh, int kw, int sh, int sw, int ph, int pw, bool ceil, bool include_pad) {
  return {kh, kw, sh, sw, ph, pw, ceil, include_pad};
}

std::vector<GradCase> make_cases() {
  Rng rng(1234);
  std::vector<GradCase> c;
  const auto add_case = [&c](const std::string& name, std::vector<Tensor> in, GradcheckFn fn,
                             ReferenceFn ref) {
    const std::string full = name + " " + in[0].shape().str();
    c.push_back({full, std::move(in), std::move(fn), std::move(ref), c.size()});
  };
  const Shape shapes[] = {{1, 3, 7, 5}, {3, 2, 6, 9}, {2, 4, 5, 5}};

  for (const Shape& s : shapes) {
    const int64_t n = s[0], ch = s[1], h = s[2], w = s[3];
    const Tensor one = Tensor::full(Shape{1}, rng.uniform(0.5f, 1.5f));

    // ---- elementwise (b of a's shape, or one element broadcast) ----
    add_case(
        "add", {random_tensor(s, rng), random_tensor(s, rng)},
        [](const Vars& v) { return add(v[0], v[1]); },
        [](const Refs& r) { return ref::add(r[0], r[1]); });
    add_case(
        "add scalar b", {random_tensor(s, rng), one.clone()},
        [](const Vars& v) { return add(v[0], v[1]); },
        [](const Refs& r) { return ref::add(r[0], r[1]); });
    add_case(
        "sub", {random_tensor(s, rng), random_tensor(s, rng)},
        [](const Vars& v) { return sub(v[0], v[1]); },
        [](const Refs& r) { return ref::sub(r[0], r[1]); });
    add_case(
        "sub scalar b", {random_tensor(s, rng), one.clone()},
        [](const Vars& v) { return sub(v[0], v[1]); },
        [](const Refs& r) { return ref::sub(r[0], r[1]); });
    add_case(
        "mul", {random_tensor(s, rng), random_tensor(s, rng)},
        [](const Vars& v) { return mul(v[0], v[1]); },
        [](const Refs& r) { return ref::mul(r[0], r[1]); });
    add_case(
        "mul scalar b", {random_tensor(s, rng), one.clone()},
        [](const Vars& v) { return mul(v[0], v[1]); },
        [](const Refs& r) { return ref::mul(r[0], r[1]); });
    add_case(
        "div", {random_tensor(s, rng), away_from_zero(s, rng, 0.5f, 1.5f)},
        [](const Vars& v) { return div(v[0], v[1]); },
        [](const Refs& r) { return ref::div(r[0], r[1]); });
    add_case(
        "div scalar b", {random_tensor(s, rng), one.clone()},
        [](const Vars& v) { return div(v[0], v[1]); },
        [](const Refs& r) { return ref::div(r[0], r[1]); });
    add_case(
        "scale", {random_tensor(s, rng)}, [](const Vars& v) { return scale(v[0], -1.7f); },
        [](const Refs& r) { return ref::map(r[0], [](double x) { return double{-1.7f} * x; }); });
    add_case(
        "add_scalar", {random_tensor(s, rng)}, [](const Vars& v) { return add_scalar(v[0], 0.3f); },
        [](const Refs& r) { return ref::map(r[0], [](double x) { return x + double{0.3f}; }); });
    add_case(
        "relu", {away_from_zero(s, rng)}, [](const Vars& v) { return relu(v[0]); },
        [](const Refs& r) { return ref::map(r[0], [](double x) { return std::max(x, 0.0); }); });
    add_case(
        "clamp", {away_from(s, rng, -0.5f, 0.5f)},
        [](const Vars& v) { return clamp(v[0], -0.5f, 0.5f); },
        [](const Refs& r) { return ref::clamp(r[0], -0.5, 0.5); });
    add_case(
        "tanh", {random_tensor(s, rng, -2.0f, 2.0f)},
        [](const Vars& v) { return bfcn::tanh(v[0]); },
        [](const Refs& r) { return ref::map(r[0], [](double x) { return std::tanh(x); }); });
    add_case(
        "abs", {away_from_zero(s, rng)}, [](const Vars& v) { return bfcn::abs(v[0]); },
        [](const Refs& r) { return ref::map(r[0], [](double x) { return std::fabs(x); }); });

    // ---- reductions and shape ----
    add_case(
        "sum", {random_tensor(s, rng)}, [](const Vars& v) { return sum(v[0]); },
        [](const Refs& r) { return ref::sum(r[0]); });
    add_case(
        "mean", {random_tensor(s, rng)}, [](const Vars& v) { return mean(v[0]); },
        [](const Refs& r) { return ref::mean(r[0]); });
    add_case(
        "max_all", {distinct(s, rng)}, [](const Vars& v) { return max_all(v[0]); },
        [](const Refs& r) { return ref::max_all(r[0]); });
    const Shape flat{n * ch, h * w};
    add_case(
        "reshape", {random_tensor(s, rng)}, [flat](const Vars& v) { return reshape(v[0], flat); },
        [flat](const Refs& r) { return ref::reshape(r[0], flat); });
    add_case(
        "concat_channels",
        {random_tensor(s, rng), random_tensor(Shape{n, 1, h, w}, rng),
         random_tensor(Shape{n, 2, h, w}, rng)},
        [](const Vars& v) {
          return concat_channels({v[0], v[1], v[2]});
        },
        [](const Refs& r) {
          return ref::concat_channels({r[0], r[1], r[2]});
        });

    // ---- pooling ----
    const auto max_pool_case = [&](const std::string& name, Pool2dArgs a) {
      add_case(
          "max_pool2d " + name, {distinct(s, rng)},
          [a](const Vars& v) { return max_pool2d(v[0], a); },
          [a](const Refs& r) { return ref::max_pool2d(r[0], a); });
    };
    const auto avg_pool_case = [&](const std::string& name, Pool2dArgs a) {
      add_case(
          "avg_pool2d " + name, {random_tensor(s, rng)},
          [a](const Vars& v) { return avg_pool2d(v[0], a); },
          [a](const Refs& r) { return ref::avg_pool2d(r[0], a); });
    };
    max_pool_case("k2s2", pool(2, 2, 2, 2, 0, 0, false, true));
    max_pool_case("k3s2p1 ceil", pool(3, 3, 2, 2, 1, 1, true, true));
    max_pool_case("k3s1 overlapping", pool(3, 3, 1, 1, 0, 0, false, true));
    max_pool_case("k3x2 s1x2 p1x0 ceil", pool(3, 2, 1, 2, 1, 0, true, true));
    avg_pool_case("k2s2 ceil", pool(2, 2, 2, 2, 0, 0, true, true));
    avg_pool_case("k3s2p1 include_pad", pool(3, 3, 2, 2, 1, 1, false, true));
    avg_pool_case("k3s2p1 ceil exclude_pad", pool(3, 3, 2, 2, 1, 1, true, false));
    avg_pool_case("k2x3 s2x1 p1x1 ceil include_pad", pool(2, 3, 2, 1, 1, 1, true, true));
    add_case(
        "global_avg_pool", {random_tensor(s, rng)},
        [](const Vars& v) { return global_avg_pool(v[0]); },
        [](const Refs& r) { return ref::global_avg_pool(r[0]); });

    // ---- batch norm (running stats are copied per call so every evaluation sees the same) ----
    const Tensor rm = random_tensor(Shape{ch}, rng, -0.5f, 0.5f);
    const Tensor rv = random_tensor(Shape{ch}, rng, 0.5f, 1.5f);
    // affine: gamma and/or beta present; they follow x in the inputs in that order.
    // synced: through the synchronised-BN path (set_batch_norm_sync) with one replica, whose sum
    // is the identity: statistics from (count, sum, sum of squares), the backward's sums passed
    // through the replica sum (tests/autograd/batch_norm_sync_test.cpp checks two replicas).
    const auto bn_case = [&](const std::string& name, bool training, bool has_gamma, bool has_beta,
                             bool synced = false) {
      std::vector<Tensor> in{random_tensor(s, rng, -2.0f, 2.0f)};
      if (has_gamma) in.push_back(random_tensor(Shape{ch}, rng, 0.5f, 1.5f));
      if (has_beta) in.push_back(random_tensor(Shape{ch}, rng));
      add_case(
          "batch_norm2d " + name, std::move(in),
          [rm, rv, training, has_gamma, has_beta, synced](const Vars& v) {
            Tensor m = rm.clone(), var = rv.clone();
            if (synced) set_batch_norm_sync([](double*, size_t) {});
            Var y = batch_norm2d(v[0], has_gamma ? v[1] : Var(),
                                 has_beta ? v[has_gamma ? 2 : 1] : Var(), m, var, training);
            set_batch_norm_sync({});
            return y;
          },
          [rm_d = widen(rm), rv_d = widen(rv), training, has_gamma, has_beta](const Refs& r) {
            return ref::batch_norm2d(r[0], has_gamma ? &r[1] : nullptr,
                                     has_beta ? &r[has_gamma ? 2 : 1] : nullptr, rm_d, rv_d,
                                     training, kBnEps);
          });
    };
    bn_case("train", true, true, true);
    bn_case("train no affine", true, false, false);
    bn_case("train beta only", true, false, true);
    bn_case("eval", false, true, true);
    bn_case("train synced", true, true, true, /*synced=*/true);

    // ---- upsample: up to odd sizes, down to sizes that include 1 (align_corners' 0/0 case) ----
    for (bool ac : {false, true}) {
      const std::string tag = ac ? " align_corners" : "";
      const int up_h = static_cast<int>(h + 3), up_w = static_cast<int>(2 * w + 1);
      const int down_h = static_cast<int>(h / 2), down_w = static_cast<int>(w / 3);
      add_case(
          "upsample_bilinear up" + tag, {random_tensor(s, rng)},
          [ac, up_h, up_w](const Vars& v) { return upsample_bilinear(v[0], up_h, up_w, ac); },
          [ac, up_h, up_w](const Refs& r) { return ref::upsample_bilinear(r[0], up_h, up_w, ac); });
      add_case(
          "upsample_bilinear down" + tag, {random_tensor(s, rng)},
          [ac, down_h, down_w](const Vars& v) {
            return upsample_bilinear(v[0], down_h, down_w, ac);
          },
          [ac, down_h, down_w](const Refs& r) {
            return ref::upsample_bilinear(r[0], down_h, down_w, ac);
          });
    }

    // ---- dropout (a fresh Rng of the same seed per call: the same mask each time) ----
    const uint64_t drop_seed = rng.next_u64();
    add_case(
        "dropout p=0.3", {random_tensor(s, rng)},
        [drop_seed](const Vars& v) {
          Rng r(drop_seed);
          return dropout(v[0], 0.3f, true, r);
        },
        [drop_seed](const Refs& r) { return ref::dropout(r[0], 0.3f, drop_seed); });

    // ---- losses (classes = C; about 20% of the pixels ignored) ----
    const std::vector<int64_t> labels = random_labels(n * h * w, rng, static_cast<int>(ch), 0.2f);
    std::vector<int32_t> lab_i32(labels.begin(), labels.end());
    std::vector<uint8_t> lab_u8(labels.begin(), labels.end());
    const Tensor labels_i32 = Tensor::from_vector_i32(Shape{n, h, w}, lab_i32);
    const Tensor labels_u8 = Tensor::from_vector_u8(Shape{n, h, w}, lab_u8);
    const Tensor weights = random_tensor(Shape{ch}, rng, 0.5f, 2.0f);
    add_case(
        "softmax_cross_entropy ignore", {random_tensor(s, rng, -2.0f, 2.0f)},
        [labels_i32](const Vars& v) { return softmax_cross_entropy(v[0], labels_i32); },
        [labels](const Refs& r) { return ref::softmax_cross_entropy(r[0], labels, 255, {}); });
    add_case(
        "softmax_cross_entropy u8 weights", {random_tensor(s, rng, -2.0f, 2.0f)},
        [labels_u8, weights](const Vars& v) {
          return softmax_cross_entropy(v[0], labels_u8, 255, weights);
        },
        [labels, weights_d = widen(weights)](const Refs& r) {
          return ref::softmax_cross_entropy(r[0], labels, 255, weights_d);
        });
    const Tensor teacher = random_tensor(s, rng, -2.0f, 2.0f);
    for (float t : {2.0f, 1.0f, 0.5f})
      add_case(
          "distill_kl T=" + std::to_string(t).substr(0, 3), {random_tensor(s, rng, -2.0f, 2.0f)},
          [teacher, t](const Vars& v) { return distill_kl(v[0], teacher, t); },
          [teacher_d = RefTensor{s, widen(teacher)}, t](const Refs& r) {
            return ref::distill_kl(r[0], teacher_d, t);
          });

    // ---- low-bit recipe ----
    // pact_quantize at k = 32 is clamp(x, 0, alpha) exactly: its x and alpha gradients are true
    // derivatives (x kept away from the kinks at 0 and alpha = 0.6; the STE part is pinned by
    // tests/autograd/quant_test.cpp). alpha is the second input, so its gradient (a sum) is checked
    // too.
    add_case(
        "pact_quantize k=32 (x and alpha)",
        {away_from(s, rng, 0.0f, 0.6f), Tensor::full(Shape{1}, 0.6f)},
        [](const Vars& v) { return pact_quantize(v[0], v[1], 32); },
        [](const Refs& r) { return ref::pact_k32(r[0], r[1]); });

    // ---- conv2d: w [K, C/groups, kh, kw], bias [K] when asked ----
    const auto conv_case = [&](const std::string& name, Shape w_shape, bool bias, Conv2dArgs a) {
      std::vector<Tensor> in{random_tensor(s, rng), random_tensor(w_shape, rng)};
      if (bias) in.push_back(random_tensor(Shape{w_shape[0]}, rng));
      add_case(
          "conv2d " + name, std::move(in),
          [a, bias](const Vars& v) { return conv2d(v[0], v[1], bias ? v[2] : Var(), a); },
          [a, bias](const Refs& r) { return ref::conv2d(r[0], r[1], bias ? &r[2] : nullptr, a); });
    };
    conv_case("3x3 stride 2 pad 1 bias", Shape{4, ch, 3, 3}, true, Conv2dArgs::square(2, 1));
    conv_case("3x3 dilation 2 pad 2", Shape{3, ch, 3, 3}, false, Conv2dArgs::square(1, 2, 2));
    conv_case("3x3 stride 2 dilation 2 pad 1", Shape{2, ch, 3, 3}, true,
              Conv2dArgs::square(2, 1, 2));
    conv_case("depthwise x2 (groups C) bias", Shape{2 * ch, 1, 3, 3}, true,
              Conv2dArgs::square(1, 1, 1, static_cast<int>(ch)));
    conv_case("1x1 no bias", Shape{5, ch, 1, 1}, false, Conv2dArgs::square(1, 0));
    conv_case("2x3 asymmetric stride/pad/dilation", Shape{2, ch, 2, 3}, true,
              Conv2dArgs{1, 2, 1, 0, 2, 1, 1});
  }
  return c;
}

const std::vector<GradCase>& cases() {
  static const std::vector<GradCase> all = make_cases();
  return all;
}

// f with its backward scaled by `factor`: an identity op after f whose backward multiplies the
// gradient reaching f by factor, so f's whole backward is off by that factor and its forward is
// untouched.
GradcheckFn scaled_backward(const GradcheckFn& f, float factor) {
  return [f, factor](const Vars& v) {
    const Var y = f(v);
    return make_op("scaled_backward", y.value(), {y}, [factor](const Tensor& dy, const GradMask&) {
      Tensor d = dy.clone();
      for (float& g : d.span<float>()) g *= factor;
      return std::vector<Tensor>{d};
    });
  };
}

}  // namespace

TEST_CASE("gradcheck: every op against a double reference, at three shapes", "[gradcheck]") {
  const size_t i = GENERATE(range(size_t{0}, cases().size()));
  const GradCase& gc = cases()[i];
  INFO("case " << i << ": " << gc.name);
  ReferenceGradcheckOptions opt;
  opt.seed = gc.seed;
  const GradcheckResult r = gradcheck_reference(gc.fn, gc.ref, gc.inputs, opt);
  INFO(r.message());
  CHECK(r.forward_ok);
  CHECK(r.ok);
}

TEST_CASE("gradcheck: every case fails when its backward is off by 0.1%", "[gradcheck]") {
  const size_t i = GENERATE(range(size_t{0}, cases().size()));
  const float factor = GENERATE(1.001f, 0.999f);
  const GradCase& gc = cases()[i];
  INFO("case " << i << ": " << gc.name << ", backward scaled by " << factor);
  ReferenceGradcheckOptions opt;
  opt.seed = gc.seed;
  const GradcheckResult r =
      gradcheck_reference(scaled_backward(gc.fn, factor), gc.ref, gc.inputs, opt);
  INFO(r.message());
  CHECK(r.forward_ok);  // the forward is untouched: only the gradient may fail
  CHECK_FALSE(r.ok);
  CHECK(r.message().find("gradcheck failed") != std::string::npos);
}

TEST_CASE("gradcheck table: three shapes per case, batch > 1 and odd sizes", "[gradcheck]") {
  // Every case name ends with its first input's shape; each op/mode appears at all three.
  std::map<std::string, std::set<std::string>> shapes_of;
  for (const GradCase& gc : cases()) {
    const size_t cut = gc.name.rfind(' ');
    shapes_of[gc.name.substr(0, cut)].insert(gc.name.substr(cut + 1));
  }
  for (const auto& [name, shapes] : shapes_of) {
    INFO(name);
    CHECK(shapes.size() == 3);
  }
  CHECK(shapes_of.size() * 3 == cases().size());
}

TEST_CASE("gradcheck_reference reports a wrong forward and a wrong output shape", "[gradcheck]") {
  Rng rng(5);
  const Tensor x = random_tensor(Shape{2, 3, 4, 5}, rng);
  const GradcheckFn f = [](const Vars& v) { return bfcn::tanh(v[0]); };
  // A reference off by 1e-4 of its scale: the forward check alone must catch it.
  const GradcheckResult off =
      gradcheck_reference(f,
                          [](const Refs& r) {
                            RefTensor y = ref::map(r[0], [](double v) { return std::tanh(v); });
                            y.v[7] += 1e-4;
                            return y;
                          },
                          {x});
  CHECK_FALSE(off.forward_ok);
  CHECK_FALSE(off.ok);
  CHECK(off.forward_worst_index == 7);
  CHECK(off.message().find("forward MISMATCH") != std::string::npos);
  const GradcheckResult shape = gradcheck_reference(f,
                                                    [](const Refs& r) {
                                                      return ref::reshape(r[0], Shape{6, 20});
                                                    },
                                                    {x});
  CHECK_FALSE(shape.ok);
  CHECK(shape.message().find("reference output has shape [6,20]") != std::string::npos);
}

TEST_CASE("gradcheck detects a wrong gradient", "[gradcheck]") {
  // A deliberately broken op: forward 2x, backward claims 3x.
  const GradcheckFn broken = [](const std::vector<Var>& v) {
    return make_op("broken", scale(v[0], 2.0f).value(), {v[0]},
                   [](const Tensor& dy, const GradMask&) {
                     Tensor dx = dy.clone();
                     for (float& g : dx.span<float>()) g *= 3.0f;
                     return std::vector<Tensor>{dx};
                   });
  };
  Rng rng(3);
  const GradcheckResult r = gradcheck(broken, {random_tensor(Shape{4}, rng)});
  CHECK_FALSE(r.ok);
  CHECK(r.worst_input == 0);
  CHECK(r.message().find("gradcheck failed") != std::string::npos);
}
