// SGD and Adam/AdamW updates, written as PyTorch's torch.optim (foreach=False) computes them:
//   SGD:   g += wd*p;  buf = momentum*buf + g;  g = nesterov ? g + momentum*buf : buf;  p -= lr*g
//   Adam:  g += wd*p (L2);        m = b1*m + (1-b1)g;  v = b2*v + (1-b2)g^2
//          p -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)
//   AdamW: p *= 1 - lr*wd (decoupled), then the Adam step without L2.
#include "train/optim.h"

#include <cmath>

#include "core/error.h"

namespace bfcn {

Optimizer::Optimizer(NamedParams params, OptimOptions opt)
    : params_(std::move(params)), opt_(std::move(opt)) {}

bool Optimizer::decays(const Var& p) const {
  if (opt_.weight_decay == 0.0) return false;
  return !(opt_.wd_exclude_bn_bias && p.value().ndim() <= 1);
}

void Optimizer::zero_grad() {
  for (auto& [name, p] : params_) p.zero_grad();
}

void Optimizer::step(double lr) {
  if (slots_.empty()) {
    const size_t n_slots = slot_names().size();
    slots_.resize(params_.size());
    for (size_t i = 0; i < params_.size(); ++i)
      for (size_t k = 0; k < n_slots; ++k)
        slots_[i].push_back(Tensor::zeros(params_[i].second.value().shape()));
  }
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Var& p = params_[i].second;
    if (!p.requires_grad() || !p.grad().defined()) continue;
    Tensor& v = p.mutable_value();
    update(i, v.f32(), p.grad().f32(), v.numel(), lr, steps_);
  }
}

std::vector<std::pair<std::string, Tensor>> Optimizer::state() const {
  std::vector<std::pair<std::string, Tensor>> out;
  const auto names = slot_names();
  for (size_t i = 0; i < slots_.size(); ++i)
    for (size_t k = 0; k < names.size(); ++k)
      out.emplace_back(params_[i].first + "/" + names[k], slots_[i][k]);
  return out;
}

void Optimizer::load_state(const std::map<std::string, Tensor>& tensors, int64_t steps) {
  steps_ = steps;
  slots_.clear();
  if (steps == 0 && tensors.empty()) return;
  const auto names = slot_names();
  BFCN_CHECK(tensors.size() == params_.size() * names.size(), "optimizer state: expected ",
             params_.size() * names.size(), " tensors (", params_.size(), " parameters x ",
             names.size(), " slots of ", opt_.type, "), but got ", tensors.size(),
             "; was the checkpoint written with another optimizer or model?");
  slots_.resize(params_.size());
  for (size_t i = 0; i < params_.size(); ++i) {
    for (const auto& slot : names) {
      const std::string key = params_[i].first + "/" + slot;
      auto it = tensors.find(key);
      BFCN_CHECK(it != tensors.end(), "optimizer state: missing '", key, "'");
      const Shape& want = params_[i].second.value().shape();
      BFCN_CHECK(it->second.shape() == want && it->second.dtype() == DType::f32,
                 "optimizer state '", key, "': expected f32 ", want.str(), ", but got ",
                 dtype_name(it->second.dtype()), " ", it->second.shape().str());
      slots_[i].push_back(it->second.clone());
    }
  }
}

namespace {

class Sgd final : public Optimizer {
 public:
  using Optimizer::Optimizer;

 protected:
  std::vector<std::string> slot_names() const override {
    if (options().momentum == 0.0) return {};
    return {"momentum"};
  }
  void update(size_t i, float* p, const float* g, int64_t n, double lr, int64_t) override {
    const auto& o = options();
    const float wd = decays(params()[i].second) ? static_cast<float>(o.weight_decay) : 0.0f;
    const float mu = static_cast<float>(o.momentum);
    const float flr = static_cast<float>(lr);
    float* buf = mu != 0.0f ? slots_[i][0].f32() : nullptr;
    const bool nesterov = o.nesterov;
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      float d = g[j] + wd * p[j];
      if (buf) {
        buf[j] = mu * buf[j] + d;
        d = nesterov ? d + mu * buf[j] : buf[j];
      }
      p[j] -= flr * d;
    }
  }
};

class Adam final : public Optimizer {
 public:
  Adam(NamedParams params, OptimOptions opt, bool decoupled)
      : Optimizer(std::move(params), std::move(opt)), decoupled_(decoupled) {}

 protected:
  std::vector<std::string> slot_names() const override { return {"exp_avg", "exp_avg_sq"}; }
  void update(size_t i, float* p, const float* g, int64_t n, double lr, int64_t t) override {
    const auto& o = options();
    const float wd = decays(params()[i].second) ? static_cast<float>(o.weight_decay) : 0.0f;
    const float b1 = static_cast<float>(o.beta1), b2 = static_cast<float>(o.beta2);
    const double bc1 = 1.0 - std::pow(o.beta1, static_cast<double>(t));
    const double bc2 = 1.0 - std::pow(o.beta2, static_cast<double>(t));
    const float step_size = static_cast<float>(lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const float eps = static_cast<float>(o.eps);
    const float decay = decoupled_ ? static_cast<float>(1.0 - lr * wd) : 1.0f;
    const float l2 = decoupled_ ? 0.0f : wd;
    float* m = slots_[i][0].f32();
    float* v = slots_[i][1].f32();
#pragma omp parallel for if (n > 65536) schedule(static)
    for (int64_t j = 0; j < n; ++j) {
      p[j] *= decay;
      const float d = g[j] + l2 * p[j];
      m[j] = b1 * m[j] + (1.0f - b1) * d;
      v[j] = b2 * v[j] + (1.0f - b2) * d * d;
      p[j] -= step_size * m[j] / (std::sqrt(v[j]) / bc2_sqrt + eps);
    }
  }

 private:
  bool decoupled_;
};

}  // namespace

std::unique_ptr<Optimizer> make_optimizer(NamedParams params, const OptimOptions& opt) {
  if (opt.type == "sgd") return std::make_unique<Sgd>(std::move(params), opt);
  if (opt.type == "adam") return std::make_unique<Adam>(std::move(params), opt, false);
  if (opt.type == "adamw") return std::make_unique<Adam>(std::move(params), opt, true);
  throw ConfigError("train.optimizer: expected one of sgd, adam, adamw, but got '" + opt.type +
                    "'");
}

double clip_grad_norm(const NamedParams& params, double max_norm) {
  double sq = 0.0;
  for (const auto& [name, p] : params) {
    if (!p.grad().defined()) continue;
    for (float g : p.grad().span<float>()) sq += static_cast<double>(g) * g;
  }
  const double norm = std::sqrt(sq);
  if (max_norm > 0.0 && norm > max_norm) {
    const float s = static_cast<float>(max_norm / (norm + 1e-6));
    for (const auto& [name, p] : params) {
      if (!p.grad().defined()) continue;
      Tensor g = p.grad();  // shallow handle: scales the stored gradient
      for (float& x : g.span<float>()) x *= s;
    }
  }
  return norm;
}

}  // namespace bfcn
