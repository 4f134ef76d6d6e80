// Parity with PyTorch (Debian python3-torch): forward outputs, input gradients and batch-norm
// running statistics of conv2d, batch_norm2d, pooling, bilinear upsample and cross-entropy agree
// within 1e-4 relative. All cases go to ONE run of tests/python/torch_oracle.py through raw f32
// files in a TempDir (importing torch costs seconds); nothing binary is committed.
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/ops.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using bfcn::test::all_close;
using bfcn::test::random_tensor;
using nlohmann::json;

namespace {

struct ParityCase {
  std::string name, op;
  json params;
  std::vector<Tensor> inputs;
  std::vector<bool> diff;  // which inputs are differentiable
  // Runs our op on the leaves; may append side outputs (running stats) to `extras`.
  std::function<Var(const std::vector<Var>&, std::vector<Tensor>& extras)> fn;
  // Filled by run_ours():
  Tensor out, gout;
  std::vector<Tensor> grads, extras;
};

void run_ours(ParityCase& c, Rng& rng) {
  std::vector<Var> leaves;
  for (size_t i = 0; i < c.inputs.size(); ++i) leaves.emplace_back(c.inputs[i].clone(), c.diff[i]);
  Var y = c.fn(leaves, c.extras);
  c.out = y.value();
  c.gout = random_tensor(y.shape(), rng);
  y.backward(c.gout);
  for (size_t i = 0; i < leaves.size(); ++i)
    c.grads.push_back(c.diff[i] ? leaves[i].grad() : Tensor());
}

Tensor labels_f32(const Shape& s, Rng& rng, int classes, float ignore_frac) {
  Tensor t = Tensor::empty(s);
  for (float& v : t.span<float>())
    v = rng.uniform() < ignore_frac ? 255.0f : static_cast<float>(rng.randint(0, classes));
  return t;
}

Tensor to_i32(const Tensor& t) {
  Tensor r = Tensor::empty(t.shape(), DType::i32);
  for (int64_t i = 0; i < t.numel(); ++i) r.data<int32_t>()[i] = static_cast<int32_t>(t.f32()[i]);
  return r;
}

std::vector<ParityCase> make_cases() {
  Rng rng(2024);
  std::vector<ParityCase> cs;
  using Fn = decltype(ParityCase::fn);
  auto add = [&cs](std::string name, std::string op, json params, std::vector<Tensor> in,
                   std::vector<bool> diff, Fn fn) {
    ParityCase c;
    c.name = std::move(name);
    c.op = std::move(op);
    c.params = std::move(params);
    c.inputs = std::move(in);
    c.diff = std::move(diff);
    c.fn = std::move(fn);
    cs.push_back(std::move(c));
  };

  // ---- conv2d ----
  auto conv = [&](std::string name, Shape x, Shape w, bool bias, Conv2dArgs a) {
    json p = {{"stride", {a.stride_h, a.stride_w}},
              {"pad", {a.pad_h, a.pad_w}},
              {"dilation", {a.dilation_h, a.dilation_w}},
              {"groups", a.groups}};
    std::vector<Tensor> in{random_tensor(x, rng), random_tensor(w, rng)};
    if (bias) in.push_back(random_tensor(Shape{w[0]}, rng));
    std::vector<bool> diff(in.size(), true);
    add(std::move(name), "conv2d", p, std::move(in), diff,
        [a, bias](const std::vector<Var>& v, std::vector<Tensor>&) {
          return conv2d(v[0], v[1], bias ? v[2] : Var(), a);
        });
  };
  conv("conv_s2_p1_bias", Shape{2, 4, 9, 9}, Shape{6, 4, 3, 3}, true, Conv2dArgs::square(2, 1));
  conv("conv_d2_p2", Shape{2, 3, 10, 8}, Shape{5, 3, 3, 3}, false, Conv2dArgs::square(1, 2, 2));
  conv("conv_groups2_bias", Shape{1, 4, 7, 7}, Shape{6, 2, 3, 3}, true,
       Conv2dArgs::square(1, 1, 1, 2));
  conv("conv_depthwise_s2", Shape{2, 3, 8, 8}, Shape{3, 1, 3, 3}, false,
       Conv2dArgs::square(2, 1, 1, 3));
  conv("conv_7x7_s2_p3", Shape{1, 3, 16, 16}, Shape{4, 3, 7, 7}, false, Conv2dArgs::square(2, 3));
  conv("conv_asym", Shape{2, 3, 9, 7}, Shape{4, 3, 2, 3}, true, Conv2dArgs{1, 2, 1, 0, 2, 1, 1});

  // ---- batch_norm2d ----
  for (bool training : {true, false}) {
    const Shape s{4, 5, 6, 7};
    json p = {{"training", training}, {"momentum", 0.1}, {"eps", 1e-5}};
    add(training ? "bn_train" : "bn_eval", "batch_norm2d", p,
        {random_tensor(s, rng, -2.0f, 3.0f), random_tensor(Shape{5}, rng, 0.5f, 1.5f),
         random_tensor(Shape{5}, rng), random_tensor(Shape{5}, rng),
         random_tensor(Shape{5}, rng, 0.5f, 2.0f)},
        {true, true, true, false, false},
        [training](const std::vector<Var>& v, std::vector<Tensor>& extras) {
          Tensor rm = v[3].value().clone(), rv = v[4].value().clone();
          Var y = batch_norm2d(v[0], v[1], v[2], rm, rv, training, 0.1f, 1e-5f);
          extras = {rm, rv};
          return y;
        });
  }

  // ---- pooling ----
  auto pool = [&](std::string name, std::string op, Shape x, int k, int st, int pad, bool ceil,
                  bool include_pad) {
    json p = {{"kernel", k},
              {"stride", st},
              {"pad", pad},
              {"ceil_mode", ceil},
              {"count_include_pad", include_pad}};
    Pool2dArgs a = Pool2dArgs::square(k, st, pad);
    a.ceil_mode = ceil;
    a.count_include_pad = include_pad;
    const bool is_max = op == "max_pool2d";
    add(std::move(name), op, p, {random_tensor(x, rng)}, {true},
        [a, is_max](const std::vector<Var>& v, std::vector<Tensor>&) {
          return is_max ? max_pool2d(v[0], a) : avg_pool2d(v[0], a);
        });
  };
  pool("maxpool_k2s2", "max_pool2d", Shape{2, 3, 8, 8}, 2, 2, 0, false, true);
  pool("maxpool_k3s2p1", "max_pool2d", Shape{2, 3, 9, 9}, 3, 2, 1, false, true);
  pool("maxpool_k3s2_ceil", "max_pool2d", Shape{2, 3, 10, 10}, 3, 2, 0, true, true);
  pool("maxpool_k3s2p1_ceil", "max_pool2d", Shape{1, 2, 8, 11}, 3, 2, 1, true, true);
  pool("avgpool_k2s2_ceil", "avg_pool2d", Shape{2, 3, 7, 7}, 2, 2, 0, true, true);
  pool("avgpool_k3s2p1", "avg_pool2d", Shape{2, 3, 9, 8}, 3, 2, 1, false, true);
  pool("avgpool_k3s2p1_nopad", "avg_pool2d", Shape{2, 3, 9, 8}, 3, 2, 1, false, false);
  pool("avgpool_k3s2p1_ceil_nopad", "avg_pool2d", Shape{1, 3, 8, 8}, 3, 2, 1, true, false);
  pool("avgpool_k3s2p1_ceil_pad", "avg_pool2d", Shape{1, 3, 8, 8}, 3, 2, 1, true, true);

  // ---- bilinear upsample (up and down, both align_corners modes) ----
  for (bool ac : {false, true}) {
    const std::vector<std::pair<int, int>> sizes{{15, 12}, {32, 32}, {4, 5}, {3, 2}, {1, 1}};
    for (auto [oh, ow] : sizes) {
      json p = {{"size", {oh, ow}}, {"align_corners", ac}};
      add("upsample_" + std::to_string(oh) + "x" + std::to_string(ow) + (ac ? "_ac" : ""),
          "upsample_bilinear", p, {random_tensor(Shape{2, 3, 7, 9}, rng)}, {true},
          [oh, ow, ac](const std::vector<Var>& v, std::vector<Tensor>&) {
            return upsample_bilinear(v[0], oh, ow, ac);
          });
    }
  }

  // ---- cross-entropy with ignore_index 255 (and class weights) ----
  for (bool weighted : {false, true}) {
    const Shape s{2, 5, 6, 7};
    std::vector<Tensor> in{random_tensor(s, rng, -3.0f, 3.0f),
                           labels_f32(Shape{2, 6, 7}, rng, 5, 0.25f)};
    if (weighted) in.push_back(random_tensor(Shape{5}, rng, 0.2f, 2.0f));
    std::vector<bool> diff{true, false};
    if (weighted) diff.push_back(false);
    add(weighted ? "xent_weighted" : "xent", "softmax_cross_entropy", json{{"ignore_index", 255}},
        std::move(in), diff, [weighted](const std::vector<Var>& v, std::vector<Tensor>&) {
          return softmax_cross_entropy(v[0], to_i32(v[1].value()), 255,
                                       weighted ? v[2].value() : Tensor());
        });
  }
  return cs;
}

}  // namespace

TEST_CASE("PyTorch parity: conv2d, batch_norm2d, pooling, upsample, cross-entropy", "[torch]") {
  if (!bfcn::test::torch_available())
    BFCN_SKIP("PyTorch (/usr/bin/python3 -c 'import torch') is unavailable");
  bfcn::test::TempDir dir("bfcn_torch_parity");
  std::vector<ParityCase> cases = make_cases();
  Rng rng(77);
  json manifest = json::array();
  for (ParityCase& c : cases) {
    run_ours(c, rng);
    json shapes = json::array();
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      bfcn::test::write_f32(dir / (c.name + "_in" + std::to_string(i) + ".f32"), c.inputs[i]);
      json sh = json::array();
      for (int d = 0; d < c.inputs[i].ndim(); ++d) sh.push_back(c.inputs[i].dim(d));
      shapes.push_back(sh);
    }
    bfcn::test::write_f32(dir / (c.name + "_gout.f32"), c.gout);
    manifest.push_back({{"name", c.name},
                        {"op", c.op},
                        {"params", c.params},
                        {"inputs", shapes},
                        {"diff", c.diff}});
  }
  std::ofstream(dir / "manifest.json") << manifest.dump(1);
  const auto script = bfcn::test::source_dir() / "tests" / "python" / "torch_oracle.py";
  const auto r =
      bfcn::test::run_command("/usr/bin/python3 " + script.string() + " " + dir.path().string());
  INFO(r.output);
  REQUIRE(r.status == 0);

  for (const ParityCase& c : cases) {
    INFO("case " << c.name);
    {
      INFO("forward output");
      CHECK(all_close(c.out, bfcn::test::read_f32(dir / (c.name + "_out.f32"), c.out.shape())));
    }
    for (size_t i = 0; i < c.grads.size(); ++i) {
      if (!c.diff[i]) continue;
      INFO("gradient of input " << i);
      const Tensor want = bfcn::test::read_f32(dir / (c.name + "_gin" + std::to_string(i) + ".f32"),
                                               c.inputs[i].shape());
      CHECK(all_close(c.grads[i], want));
    }
    for (size_t k = 0; k < c.extras.size(); ++k) {
      INFO("side output " << k << " (running statistics)");
      const Tensor want = bfcn::test::read_f32(
          dir / (c.name + "_extra" + std::to_string(k) + ".f32"), c.extras[k].shape());
      CHECK(all_close(c.extras[k], want));
    }
  }
}
