// The bfcn::conv2d op on top of the kernels: shape errors with PyTorch-style messages, bias
// optional, and only the requested gradients computed (checked against the direct references).
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/rng.h"
#include "kernels/conv.h"
#include "tests/support/test_support.h"

namespace bfcn {
namespace {

std::string error_of(const Tensor& x, const Tensor& w, const Tensor& b, const Conv2dArgs& a) {
  try {
    conv2d(Var(x), Var(w), b.defined() ? Var(b) : Var(), a);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("conv2d op rejects bad shapes with PyTorch-style messages") {
  const Tensor w = Tensor::zeros({8, 3, 3, 3});
  CHECK(error_of(Tensor::zeros({1, 5, 8, 8}), w, Tensor(), Conv2dArgs::square(1, 1, 1, 2)) ==
        "conv2d: given groups=2, weight of shape [8,3,3,3], expected input [N,6,H,W] to have 6 "
        "channels, but got 5 (input shape [1,5,8,8])");
  CHECK(error_of(Tensor::zeros({5, 8, 8}), w, Tensor(), Conv2dArgs{})
            .find("expected 4-D input [N,C,H,W], but got input of shape [5,8,8]") !=
        std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 9, 8, 8}), w, Tensor(), Conv2dArgs::square(1, 1, 1, 3))
            .find("out-channels (8) divisible by 3") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 8, 8}), w, Tensor::zeros({7}), Conv2dArgs{})
            .find("expected f32 bias of shape [8]") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 2, 2}), w, Tensor(), Conv2dArgs{})
            .find("smaller than the dilated kernel size (3x3)") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 8, 8}), w, Tensor(), Conv2dArgs::square(0, 1))
            .find("stride must be >= 1, got (0,0)") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 8, 8}), w, Tensor(), Conv2dArgs::square(1, -1))
            .find("padding must be >= 0") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 8, 8}), w, Tensor(), Conv2dArgs::square(1, 1, 0))
            .find("dilation must be >= 1") != std::string::npos);
  CHECK(error_of(Tensor::zeros({1, 3, 8, 8}), w, Tensor(), Conv2dArgs::square(1, 1, 1, 0))
            .find("groups must be >= 1, got 0") != std::string::npos);
}

TEST_CASE("conv2d op forward/backward match the references and honour the grad mask") {
  Rng rng(17);
  const Conv2dArgs a{2, 1, 1, 2, 1, 2, 2};  // stride (2,1), pad (1,2), dilation (1,2), groups 2
  const Tensor x = test::random_tensor({2, 4, 9, 7}, rng);
  const Tensor w = test::random_tensor({6, 2, 3, 3}, rng);
  const Tensor b = test::random_tensor({6}, rng);
  ConvGeom g;
  g.n = 2;
  g.c = 4;
  g.h = 9;
  g.w = 7;
  g.k = 6;
  g.kh = g.kw = 3;
  g.stride_h = 2;
  g.pad_w = 2;
  g.pad_h = 1;
  g.dilation_w = 2;
  g.groups = 2;
  REQUIRE(g.valid());
  const Shape yshape{2, 6, g.out_h(), g.out_w()};

  for (bool with_bias : {false, true}) {
    Var xv(x.clone(), true), wv(w.clone(), true), bv(b.clone(), true);
    const Var y = conv2d(xv, wv, with_bias ? bv : Var(), a);
    REQUIRE(y.shape() == yshape);
    Tensor want_y = Tensor::empty(yshape);
    conv2d_forward__ref(g, x.f32(), w.f32(), with_bias ? b.f32() : nullptr, want_y.f32());
    CHECK(test::all_close(y.value(), want_y));

    const Tensor dy = test::random_tensor(yshape, rng);
    y.backward(dy);
    Tensor want_dx = Tensor::empty(x.shape()), want_dw = Tensor::empty(w.shape()),
           want_db = Tensor::empty({6});
    conv2d_backward_input__ref(g, dy.f32(), w.f32(), want_dx.f32());
    conv2d_backward_weight__ref(g, x.f32(), dy.f32(), want_dw.f32());
    conv2d_backward_bias__ref(g, dy.f32(), want_db.f32());
    CHECK(test::all_close(xv.grad(), want_dx));
    CHECK(test::all_close(wv.grad(), want_dw));
    if (with_bias) {
      CHECK(test::all_close(bv.grad(), want_db));
    } else {
      CHECK_FALSE(bv.grad().defined());
    }
  }

  // Only w requires grad: x gets none (and the closure never computes it).
  Var xv(x.clone(), false), wv(w.clone(), true);
  const Var y = conv2d(xv, wv, Var(), a);
  y.backward(Tensor::ones(yshape));
  CHECK_FALSE(xv.grad().defined());
  CHECK(wv.grad().defined());
}

}  // namespace bfcn
