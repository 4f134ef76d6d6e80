// Optimizers over a model's named parameters: SGD (momentum, Nesterov, weight decay) and Adam /
// AdamW (bias-corrected), with PyTorch's update rules so results can be checked against
// torch.optim. State (momentum buffers, moments, step count) is keyed by parameter name, so a
// checkpoint restores it by name and a missing or mis-shaped entry is an error, never a silent
// reset. Weight decay can skip 1-D parameters (BN gamma/beta and biases), the usual segmentation
// recipe.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace bfcn {

using NamedParams = std::vector<std::pair<std::string, Var>>;

struct OptimOptions {
  std::string type = "sgd";  // "sgd" | "adam" | "adamw"
  double momentum = 0.9;     // sgd
  bool nesterov = false;     // sgd
  double weight_decay = 0.0;
  bool wd_exclude_bn_bias = true;                 // no decay on parameters with ndim <= 1
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // adam / adamw
};

class Optimizer {
 public:
  Optimizer(NamedParams params, OptimOptions opt);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update with learning rate lr; parameters without a gradient are skipped.
  void step(double lr);
  void zero_grad();
  int64_t steps() const { return steps_; }
  const OptimOptions& options() const { return opt_; }
  const NamedParams& params() const { return params_; }
  // Whether weight decay applies to this parameter.
  bool decays(const Var& p) const;

  // State as named tensors ("<param>/<slot>", e.g. "layer1.0.conv1.weight/momentum"); the step
  // count travels separately. load_state() requires exactly the slots this optimizer uses.
  std::vector<std::pair<std::string, Tensor>> state() const;
  void load_state(const std::map<std::string, Tensor>& tensors, int64_t steps);

 protected:
  // Updates parameter i (value p, gradient g, n elements) at step t (1-based).
  virtual void update(size_t i, float* p, const float* g, int64_t n, double lr, int64_t t) = 0;
  virtual std::vector<std::string> slot_names() const = 0;
  // slots_[i][k]: slot k of parameter i, same shape as the parameter.
  std::vector<std::vector<Tensor>> slots_;

 private:
  NamedParams params_;
  OptimOptions opt_;
  int64_t steps_ = 0;
};

// Throws ConfigError for an unknown type.
std::unique_ptr<Optimizer> make_optimizer(NamedParams params, const OptimOptions& opt);

// Scales all gradients so their global L2 norm is at most max_norm (PyTorch clip_grad_norm_);
// returns the norm before clipping. max_norm <= 0 only measures.
double clip_grad_norm(const NamedParams& params, double max_norm);

}  // namespace bfcn
