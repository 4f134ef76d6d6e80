// Var: a node of the define-by-run graph. Parameters and intermediate values are both Vars.
// An op computes its output eagerly and records a closure that maps the output gradient to
// input gradients (forward and backward live together in autograd/ops/*.cpp).
// backward() walks the topological order once, accumulates gradients (a value used twice gets
// the sum), and frees each closure (and what it saved) as soon as it has run.
// Only leaves that require grad keep .grad(); intermediate gradients are freed on the way.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace bfcn {

// need[i] says whether input i wants a gradient; a closure may return an undefined Tensor for
// inputs it was not asked about.
using GradMask = std::vector<bool>;
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& dy, const GradMask& need)>;

struct Node {
  Tensor value;
  Tensor grad;  // accumulated gradient (leaves keep it; intermediates free it after use)
  bool requires_grad = false;
  const char* op = "leaf";
  std::vector<std::shared_ptr<Node>> inputs;
  BackwardFn backward;
};

// Told by backward() about each leaf that requires grad as soon as its gradient is final (every
// op that uses the leaf has run), so a caller can start work on early gradients while the rest of
// the pass runs (data-parallel training starts reducing them: train/distributed.h). Each leaf
// reached by the pass is reported once, in the order gradients become final (roughly reverse
// layer order); leaf.grad is undefined if no gradient reached it (and none was accumulated
// before). Called on the thread that runs backward(), between ops (never from inside an op's
// parallel region).
using LeafGradReady = std::function<void(Node& leaf)>;

class Var {
 public:
  Var() = default;
  // A leaf. Parameters pass requires_grad = true.
  explicit Var(Tensor value, bool requires_grad = false);

  bool defined() const { return node_ != nullptr; }
  const Tensor& value() const;
  Tensor& mutable_value();  // for optimizers and loading weights (no graph may hold it)
  const Tensor& grad() const;
  void zero_grad();  // drops the accumulated gradient
  bool requires_grad() const;
  const Shape& shape() const { return value().shape(); }
  int64_t dim(int i) const { return value().dim(i); }
  const char* op() const;

  // Reverse pass from this value. A scalar (numel 1) seeds with 1; otherwise pass `seed`.
  // on_leaf_ready (optional) is told about each leaf gradient once it is final (LeafGradReady).
  void backward(const LeafGradReady& on_leaf_ready = {}) const;
  void backward(const Tensor& seed, const LeafGradReady& on_leaf_ready = {}) const;

  // A new leaf sharing this value, cut from the graph (like PyTorch's detach()).
  Var detach() const { return Var(value(), false); }

  const std::shared_ptr<Node>& node() const { return node_; }
  explicit Var(std::shared_ptr<Node> n) : node_(std::move(n)) {}

 private:
  std::shared_ptr<Node> node_;
};

// Records an op: output `value`, its inputs and the backward closure. When grad mode is off or no
// input requires grad, the closure is dropped and a plain leaf is returned.
Var make_op(const char* op, Tensor value, const std::vector<Var>& inputs, BackwardFn backward);

// Grad mode (thread-local). NoGradGuard turns recording off for its scope (evaluation).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

}  // namespace bfcn
