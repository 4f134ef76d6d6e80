#include "core/tensor.h"

#include "core/rng.h"
#include "tests/support/test_support.h"

using namespace bfcn;

TEST_CASE("tensor: shape, dtype, alignment", "[core]") {
  Tensor t = Tensor::zeros({2, 3, 4, 5});
  REQUIRE(t.numel() == 120);
  REQUIRE(t.ndim() == 4);
  REQUIRE(t.dtype() == DType::f32);
  REQUIRE(reinterpret_cast<uintptr_t>(t.raw()) % 64 == 0);
  for (float v : t.span<float>()) REQUIRE(v == 0.0f);
  Tensor l = Tensor::zeros({2, 4, 5}, DType::u8);
  REQUIRE(l.nbytes() == 40);
  REQUIRE_THROWS_WITH(l.data<float>(), Catch::Contains("expected dtype f32, but got u8"));
}

TEST_CASE("tensor: copy is shallow, clone is deep, reshape shares", "[core]") {
  Tensor a = Tensor::full({2, 2}, 1.0f);
  Tensor b = a;
  b.f32()[0] = 5.0f;
  REQUIRE(a.f32()[0] == 5.0f);
  Tensor c = a.clone();
  c.f32()[1] = 7.0f;
  REQUIRE(a.f32()[1] == 1.0f);
  Tensor r = a.reshape({4});
  REQUIRE(r.same_storage(a));
  REQUIRE(r.shape() == Shape{4});
  REQUIRE_THROWS_WITH(a.reshape({3}), Catch::Contains("cannot reshape [2,2]"));
}

TEST_CASE("tensor: shape errors say expected and got", "[core]") {
  Tensor t = Tensor::zeros({2, 3});
  REQUIRE_THROWS_WITH(check_shape(t, {2, 4}, "conv2d"),
                      Catch::Contains("conv2d: expected shape [2,4], but got [2,3]"));
  REQUIRE_THROWS_WITH(Tensor::from_vector({2}, {1, 2, 3}), Catch::Contains("needs 2 values"));
}

TEST_CASE("rng: deterministic for a seed, forks independent", "[core]") {
  Rng a(42), b(42), c(43);
  std::vector<uint64_t> va, vb, vc;
  for (int i = 0; i < 8; ++i) {
    va.push_back(a.next_u64());
    vb.push_back(b.next_u64());
    vc.push_back(c.next_u64());
  }
  REQUIRE(va == vb);
  REQUIRE(va != vc);
  Rng f1 = a.fork(1), f1b = a.fork(1), f2 = a.fork(2);
  REQUIRE(f1.next_u64() == f1b.next_u64());
  REQUIRE(a.fork(1).next_u64() != f2.next_u64());
  // uniform in range; normal has roughly unit variance.
  Rng r(7);
  double s = 0, s2 = 0;
  for (int i = 0; i < 20000; ++i) {
    float u = r.uniform();
    REQUIRE(u >= 0.0f);
    REQUIRE(u < 1.0f);
    float n = r.normal();
    s += n;
    s2 += n * n;
  }
  REQUIRE(std::abs(s / 20000) < 0.05);
  REQUIRE(std::abs(s2 / 20000 - 1.0) < 0.05);
  // state round-trip
  Rng q(9);
  q.normal();
  auto st = q.state();
  float x1 = q.normal(), x2 = q.uniform();
  q.set_state(st);
  REQUIRE(q.normal() == x1);
  REQUIRE(q.uniform() == x2);
}
