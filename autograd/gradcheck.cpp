// gradcheck: analytic gradients from one backward pass vs central differences in double, the
// differences taken through f's f32 forward (gradcheck) or a double reference
// (gradcheck_reference). The worst element is the one with the largest violation ratio |a-n| /
// tolerance.
#include "autograd/gradcheck.h"

#include <algorithm>
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
       << worst_analytic << " vs numeric " << worst_numeric << " (" << worst_ratio
       << " x tolerance)";
  if (!forward_error.empty()) os << "; forward: " << forward_error;
  if (forward_worst_index >= 0)
    os << "; forward " << (forward_ok ? "matches" : "MISMATCH")
       << ": max |f32 - reference| / max |reference| " << forward_max_error << " at element "
       << forward_worst_index << " (" << forward_worst_f32 << " vs " << forward_worst_reference
       << ")";
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

double projected(const RefTensor& y, const Tensor& r) {
  double s = 0.0;
  const float* rp = r.f32();
  for (size_t i = 0; i < y.v.size(); ++i) s += y.v[i] * rp[i];
  return s;
}

// Leaves that require grad, y = f(leaves), and backward seeded with a random projection R.
struct AnalyticPass {
  std::vector<Var> leaves;
  Tensor y, r;
};

AnalyticPass analytic_pass(const GradcheckFn& f, const std::vector<Tensor>& inputs, uint64_t seed) {
  AnalyticPass p;
  for (const Tensor& t : inputs) {
    BFCN_CHECK(t.defined() && t.dtype() == DType::f32,
               "gradcheck: expected defined f32 inputs, but got ",
               t.defined() ? dtype_name(t.dtype()) : "undefined");
    p.leaves.emplace_back(t.clone(), true);
  }
  Var y = f(p.leaves);
  BFCN_CHECK(y.defined() && y.requires_grad(),
             "gradcheck: the function output does not depend on its inputs");
  Rng rng(seed);
  p.r = Tensor::empty(y.shape());
  for (float& v : p.r.span<float>()) v = rng.uniform(-1.0f, 1.0f);
  p.y = y.value();
  y.backward(p.r);
  return p;
}

// Records one comparison in res; tolerance > 0.
void compare(GradcheckResult& res, int input, int64_t index, double analytic, double numeric,
             double tolerance) {
  const double err = std::fabs(analytic - numeric);
  const double ratio = err / tolerance;
  res.max_abs_error = std::max(res.max_abs_error, err);
  if (ratio > 1.0) res.ok = false;
  if (res.worst_input < 0 || ratio > res.worst_ratio) {
    res.worst_ratio = ratio;
    res.worst_input = input;
    res.worst_index = index;
    res.worst_analytic = analytic;
    res.worst_numeric = numeric;
  }
}

}  // namespace

GradcheckResult gradcheck(const GradcheckFn& f, const std::vector<Tensor>& inputs,
                          const GradcheckOptions& options) {
  AnalyticPass p = analytic_pass(f, inputs, options.seed);
  GradcheckResult res;
  NoGradGuard no_grad;
  for (size_t i = 0; i < p.leaves.size(); ++i) {
    Tensor& x = p.leaves[i].mutable_value();
    const Tensor g = p.leaves[i].grad();
    float* xp = x.f32();
    for (int64_t j = 0; j < x.numel(); ++j) {
      const float orig = xp[j];
      xp[j] = static_cast<float>(orig + options.eps);
      const double fp = projected(f(p.leaves).value(), p.r);
      xp[j] = static_cast<float>(orig - options.eps);
      const double fm = projected(f(p.leaves).value(), p.r);
      xp[j] = orig;
      // Use the step actually taken in f32, not the nominal eps.
      const double step = static_cast<double>(static_cast<float>(orig + options.eps)) -
                          static_cast<double>(static_cast<float>(orig - options.eps));
      const double numeric = (fp - fm) / step;
      const double analytic = g.defined() ? g.f32()[j] : 0.0;
      compare(res, static_cast<int>(i), j, analytic, numeric,
              options.atol + options.rtol * std::fabs(numeric));
    }
  }
  return res;
}

GradcheckResult gradcheck_reference(const GradcheckFn& f, const ReferenceFn& reference,
                                    const std::vector<Tensor>& inputs,
                                    const ReferenceGradcheckOptions& options) {
  AnalyticPass p = analytic_pass(f, inputs, options.seed);
  // The reference sees exactly the f32 input values, widened.
  std::vector<RefTensor> x(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    x[i].shape = inputs[i].shape();
    x[i].v.assign(inputs[i].f32(), inputs[i].f32() + inputs[i].numel());
  }
  GradcheckResult res;

  // Forward: f32 output against the reference, relative to the reference's largest magnitude.
  const RefTensor y_ref = reference(x);
  if (y_ref.shape != p.y.shape() || static_cast<int64_t>(y_ref.v.size()) != p.y.numel()) {
    std::ostringstream os;
    os << "the reference output has shape " << y_ref.shape << " (" << y_ref.v.size()
       << " values) but f gives " << p.y.shape();
    res.forward_error = os.str();
    res.forward_ok = res.ok = false;
    return res;
  }
  double y_scale = 0.0;
  for (double v : y_ref.v) y_scale = std::max(y_scale, std::fabs(v));
  y_scale = std::max(y_scale, 1e-30);
  for (int64_t j = 0; j < p.y.numel(); ++j) {
    const double err = std::fabs(p.y.f32()[j] - y_ref.v[j]) / y_scale;
    if (res.forward_worst_index < 0 || err > res.forward_max_error) {
      res.forward_max_error = err;
      res.forward_worst_index = j;
      res.forward_worst_f32 = p.y.f32()[j];
      res.forward_worst_reference = y_ref.v[j];
    }
  }
  if (res.forward_max_error > options.forward_tol) res.forward_ok = res.ok = false;

  // Gradients: central differences of the projected reference, element by element.
  for (size_t i = 0; i < x.size(); ++i) {
    std::vector<double> numeric(x[i].v.size());
    for (size_t j = 0; j < x[i].v.size(); ++j) {
      const double orig = x[i].v[j];
      x[i].v[j] = orig + options.eps;
      const double xp = x[i].v[j];
      const double fp = projected(reference(x), p.r);
      x[i].v[j] = orig - options.eps;
      const double xm = x[i].v[j];
      const double fm = projected(reference(x), p.r);
      x[i].v[j] = orig;
      numeric[j] = (fp - fm) / (xp - xm);  // the step actually taken
    }
    double scale = 0.0;
    for (double v : numeric) scale = std::max(scale, std::fabs(v));
    const Tensor g = p.leaves[i].grad();
    for (size_t j = 0; j < numeric.size(); ++j) {
      const double analytic = g.defined() ? g.f32()[j] : 0.0;
      // The floor keeps an all-zero gradient well defined: analytic must then be ~0 too.
      const double tol =
          std::max(options.atol * scale + options.rtol * std::fabs(numeric[j]), 1e-12);
      compare(res, static_cast<int>(i), static_cast<int64_t>(j), analytic, numeric[j], tol);
    }
  }
  return res;
}

}  // namespace bfcn
