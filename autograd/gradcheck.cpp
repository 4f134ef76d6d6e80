// gradcheck: analytic gradients from one backward pass vs central differences in double.
// The worst element is the one with the largest violation ratio |a-n| / (atol + rtol*|n|).
#include "autograd/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/rng.h"

namespace bfcn {

std::string GradcheckResult::message() const {
  std::ostringstream os;
  os << (ok ? "gradcheck passed" : "gradcheck failed") << ": max |analytic - numeric| "
     << max_abs_error;
  if (worst_input >= 0)
    os << "; worst at input " << worst_input << " element " << worst_index << ": analytic "
       << worst_analytic << " vs numeric " << worst_numeric;
  return os.str();
}

namespace {
double projected(const Tensor& y, const Tensor& r) {
  double s = 0.0;
  const float* yp = y.f32();
  const float* rp = r.f32();
  for (int64_t i = 0; i < y.numel(); ++i) s += static_cast<double>(yp[i]) * rp[i];
  return s;
}
}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  std::vector<Var> leaves;
  for (const Tensor& t : inputs) {
    BFCN_CHECK(t.defined() && t.dtype() == DType::f32,
               "gradcheck: expected defined f32 inputs, but got ",
               t.defined() ? dtype_name(t.dtype()) : "undefined");
    leaves.emplace_back(t.clone(), true);
  }
  Var y = f(leaves);
  BFCN_CHECK(y.defined() && y.requires_grad(),
             "gradcheck: the function output does not depend on its inputs");
  // R: fixed random projection of the output.
  Rng rng(options.seed);
  Tensor r = Tensor::empty(y.shape());
  for (float& v : r.span<float>()) v = rng.uniform(-1.0f, 1.0f);
  y.backward(r);

  GradcheckResult res;
  double worst_ratio = -1.0;
  NoGradGuard no_grad;
  for (size_t i = 0; i < leaves.size(); ++i) {
    Tensor& x = leaves[i].mutable_value();
    const Tensor g = leaves[i].grad();
    float* xp = x.f32();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const float orig = xp[j];
      xp[j] = static_cast<float>(orig + options.eps);
      const double fp = projected(f(leaves).value(), r);
      xp[j] = static_cast<float>(orig - options.eps);
      const double fm = projected(f(leaves).value(), r);
      xp[j] = orig;
      // Use the step actually taken in f32, not the nominal eps.
      const double step = static_cast<double>(static_cast<float>(orig + options.eps)) -
                          static_cast<double>(static_cast<float>(orig - options.eps));
      const double numeric = (fp - fm) / step;
      const double analytic = g.defined() ? g.f32()[j] : 0.0;
      const double err = std::fabs(analytic - numeric);
      const double ratio = err / (options.atol + options.rtol * std::fabs(numeric));
      res.max_abs_error = std::max(res.max_abs_error, err);
      if (ratio > 1.0) res.ok = false;
      if (ratio > worst_ratio) {
        worst_ratio = ratio;
        res.worst_input = static_cast<int>(i);
        res.worst_index = j;
        res.worst_analytic = analytic;
        res.worst_numeric = numeric;
      }
    }
  }
  return res;
}

}  // namespace bfcn
