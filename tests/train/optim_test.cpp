// Optimizers against hand-computed steps (SGD momentum / Nesterov / decay exclusion, Adam and AdamW
// bias correction), state save/load, gradient clipping, and torch.optim when PyTorch is present.
#include "train/optim.h"

#include <cmath>
#include <fstream>
#include <map>

#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

Var param(const Shape& s, std::vector<float> v) { return Var(Tensor::from_vector(s, v), true); }
void set_grad(Var& p, std::vector<float> g) { p.node()->grad = Tensor::from_vector(p.shape(), g); }

}  // namespace

TEST_CASE("sgd momentum matches hand-computed steps, bias excluded from decay", "[train]") {
  Var w = param({1, 2}, {1.0f, 2.0f});
  Var b = param({1}, {1.0f});
  OptimOptions o;
  o.momentum = 0.9;
  o.weight_decay = 0.01;
  auto opt = make_optimizer({{"w", w}, {"b", b}}, o);
  set_grad(w, {0.5f, -1.0f});
  set_grad(b, {0.5f});
  opt->step(0.1);
  // d = g + wd*p = [0.51, -0.98]; buf = d; p -= lr*buf
  CHECK(w.value().f32()[0] == Approx(0.949).epsilon(1e-6));
  CHECK(w.value().f32()[1] == Approx(2.098).epsilon(1e-6));
  CHECK(b.value().f32()[0] == Approx(0.95).epsilon(1e-6));  // 1-D: no decay
  opt->step(0.1);
  // d = [0.50949, -0.97902]; buf = 0.9*[0.51,-0.98] + d = [0.96849, -1.86102]
  CHECK(w.value().f32()[0] == Approx(0.852151).epsilon(1e-6));
  CHECK(w.value().f32()[1] == Approx(2.284102).epsilon(1e-6));
  CHECK(opt->steps() == 2);
}

TEST_CASE("sgd nesterov first step is lr*(1+momentum)*g", "[train]") {
  Var w = param({1, 2}, {1.0f, 2.0f});
  OptimOptions o;
  o.momentum = 0.9;
  o.nesterov = true;
  o.weight_decay = 0.01;
  o.wd_exclude_bn_bias = false;
  auto opt = make_optimizer({{"w", w}}, o);
  set_grad(w, {0.5f, -1.0f});
  opt->step(0.1);
  CHECK(w.value().f32()[0] == Approx(1.0 - 0.1 * 1.9 * 0.51).epsilon(1e-6));
  CHECK(w.value().f32()[1] == Approx(2.0 + 0.1 * 1.9 * 0.98).epsilon(1e-6));
}

TEST_CASE("adam vs adamw: L2 in the gradient vs decoupled decay, bias-corrected", "[train]") {
  for (const char* type : {"adam", "adamw"}) {
    Var w = param({1, 1}, {1.0f});
    OptimOptions o;
    o.type = type;
    o.weight_decay = 0.1;
    auto opt = make_optimizer({{"w", w}}, o);
    set_grad(w, {0.5f});
    opt->step(0.1);
    // Bias correction makes step 1 lr*d/(|d|+eps) whatever the betas.
    const double want = std::string(type) == "adam" ? 1.0 - 0.1 : 0.99 - 0.1;
    CHECK(w.value().f32()[0] == Approx(want).epsilon(1e-6));
    // Step 2, g = 0.25, written out (adamw; adam adds wd*p to g).
    set_grad(w, {0.25f});
    const double p1 = w.value().f32()[0];
    const bool l2 = std::string(type) == "adam";
    const double d1 = 0.5 + (l2 ? 0.1 : 0.0);
    const double p = l2 ? p1 : p1 * (1 - 0.1 * 0.1);
    const double d2 = 0.25 + (l2 ? 0.1 * p1 : 0.0);
    const double m = 0.9 * 0.1 * d1 + 0.1 * d2;
    const double v = 0.999 * 0.001 * d1 * d1 + 0.001 * d2 * d2;
    const double upd = 0.1 / (1 - 0.81) * m / (std::sqrt(v) / std::sqrt(1 - 0.998001) + 1e-8);
    opt->step(0.1);
    CHECK(w.value().f32()[0] == Approx(p - upd).epsilon(1e-5));
  }
}

TEST_CASE("optimizer state round-trips by name and rejects a mismatch", "[train]") {
  auto run = [](Var& w, Optimizer& opt, float g) {
    set_grad(w, {g, -g, 2 * g});
    opt.step(0.05);
  };
  OptimOptions o;
  o.type = "adamw";
  o.weight_decay = 0.01;
  Var a = param({3, 1}, {1, 2, 3});
  auto oa = make_optimizer({{"x", a}}, o);
  run(a, *oa, 0.3f);
  run(a, *oa, -0.2f);
  auto st = oa->state();
  REQUIRE(st.size() == 2);
  CHECK(st[0].first == "x/exp_avg");
  Var b = Var(a.value().clone(), true);
  auto ob = make_optimizer({{"x", b}}, o);
  std::map<std::string, Tensor> m(st.begin(), st.end());
  ob->load_state(m, oa->steps());
  run(a, *oa, 0.7f);
  run(b, *ob, 0.7f);
  for (int i = 0; i < 3; ++i) CHECK(a.value().f32()[i] == b.value().f32()[i]);

  Var c = param({3, 1}, {1, 2, 3});
  auto oc = make_optimizer({{"y", c}}, o);
  CHECK_THROWS_WITH(oc->load_state(m, 2), Catch::Contains("missing 'y/exp_avg'"));
  OptimOptions sgd;
  auto os = make_optimizer({{"x", c}}, sgd);
  CHECK_THROWS_WITH(os->load_state(m, 2), Catch::Contains("expected 1 tensors"));
}

TEST_CASE("clip_grad_norm scales to the max norm and reports the old norm", "[train]") {
  Var w = param({2}, {0, 0});
  set_grad(w, {3.0f, 4.0f});
  const NamedParams ps{{"w", w}};
  CHECK(clip_grad_norm(ps, 0.0) == Approx(5.0));
  CHECK(w.grad().f32()[0] == 3.0f);
  CHECK(clip_grad_norm(ps, 1.0) == Approx(5.0));
  CHECK(w.grad().f32()[0] == Approx(0.6).epsilon(1e-5));
  CHECK(w.grad().f32()[1] == Approx(0.8).epsilon(1e-5));
  CHECK_THROWS_WITH(make_optimizer({}, OptimOptions{"lamb"}), Catch::Contains("lamb"));
}

TEST_CASE("optimizers match torch.optim over 5 steps", "[train][torch]") {
  if (!test::torch_available()) BFCN_SKIP("PyTorch not available");
  test::TempDir dir;
  Rng rng(7);
  const int steps = 5;
  Tensor w0 = test::random_tensor({4, 3}, rng);
  Tensor b0 = test::random_tensor({3}, rng);
  Tensor gw = test::random_tensor({steps, 4, 3}, rng);
  Tensor gb = test::random_tensor({steps, 3}, rng);
  test::write_f32(dir / "w0", w0);
  test::write_f32(dir / "b0", b0);
  test::write_f32(dir / "gw", gw);
  test::write_f32(dir / "gb", gb);
  struct Case {
    const char* name;
    OptimOptions o;
    const char* torch;
  };
  std::vector<Case> cases = {
      {"sgd", {"sgd", 0.9, false, 0.01, true}, "torch.optim.SGD(groups, lr=0.1, momentum=0.9)"},
      {"nesterov",
       {"sgd", 0.9, true, 0.01, true},
       "torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)"},
      {"adam", {"adam", 0, false, 0.01, true}, "torch.optim.Adam(groups, lr=0.1)"},
      {"adamw", {"adamw", 0, false, 0.01, true}, "torch.optim.AdamW(groups, lr=0.1)"},
  };
  for (const auto& c : cases) {
    Var w(w0.clone(), true), b(b0.clone(), true);
    auto opt = make_optimizer({{"w", w}, {"b", b}}, c.o);
    for (int s = 0; s < steps; ++s) {
      w.node()->grad = Tensor::from_vector(
          {4, 3}, std::vector<float>(gw.f32() + s * 12, gw.f32() + s * 12 + 12));
      b.node()->grad =
          Tensor::from_vector({3}, std::vector<float>(gb.f32() + s * 3, gb.f32() + s * 3 + 3));
      opt->step(0.1);
    }
    const std::string py = dir.path().string() + "/opt.py";
    std::ofstream(py)
        << "import numpy as np, torch\n"
        << "d='" << dir.path().string() << "/'\n"
        << "rd=lambda n,s: torch.tensor(np.fromfile(d+n,dtype=np.float32).reshape(s))\n"
        << "w=rd('w0',(4,3)).requires_grad_(); b=rd('b0',(3,)).requires_grad_()\n"
        << "gw=rd('gw',(5,4,3)); gb=rd('gb',(5,3))\n"
        << "groups=[{'params':[w],'weight_decay':0.01},{'params':[b],"
           "'weight_decay':0.0}]\n"
        << "opt=" << c.torch << "\n"
        << "for s in range(5):\n  w.grad=gw[s].clone(); b.grad=gb[s].clone(); "
           "opt.step()\n"
        << "w.detach().numpy().tofile(d+'w_out'); b.detach().numpy().tofile(d+'b_out')\n";
    auto r = test::run_command("/usr/bin/python3 " + py);
    INFO(c.name << ": " << r.output);
    REQUIRE(r.status == 0);
    CHECK(test::all_close(w.value(), test::read_f32(dir / "w_out", {4, 3}), 1e-4f, 1e-5f));
    CHECK(test::all_close(b.value(), test::read_f32(dir / "b_out", {3}), 1e-4f, 1e-5f));
  }
}
