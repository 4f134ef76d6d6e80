#include "autograd/var.h"

#include <unordered_map>
#include <unordered_set>

#include "kernels/elementwise.h"

namespace bfcn {

namespace {
thread_local bool t_grad_enabled = true;
}

bool grad_enabled() { return t_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(t_grad_enabled) { t_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { t_grad_enabled = prev_; }

Var::Var(Tensor value, bool requires_grad) : node_(std::make_shared<Node>()) {
  BFCN_CHECK(value.defined(), "Var: cannot wrap an undefined tensor");
  node_->value = std::move(value);
  node_->requires_grad = requires_grad;
}

const Tensor& Var::value() const {
  BFCN_CHECK(defined(), "Var: use of an undefined Var");
  return node_->value;
}
Tensor& Var::mutable_value() {
  BFCN_CHECK(defined(), "Var: use of an undefined Var");
  return node_->value;
}
const Tensor& Var::grad() const {
  BFCN_CHECK(defined(), "Var: use of an undefined Var");
  return node_->grad;
}
void Var::zero_grad() {
  if (node_) node_->grad = Tensor();
}
bool Var::requires_grad() const { return node_ && node_->requires_grad; }
const char* Var::op() const { return node_ ? node_->op : "undefined"; }

Var make_op(const char* op, Tensor value, const std::vector<Var>& inputs, BackwardFn backward) {
  auto node = std::make_shared<Node>();
  node->value = std::move(value);
  node->op = op;
  bool any = false;
  for (const Var& in : inputs) any = any || in.requires_grad();
  if (any && grad_enabled()) {
    node->requires_grad = true;
    node->inputs.reserve(inputs.size());
    for (const Var& in : inputs) node->inputs.push_back(in.node());
    node->backward = std::move(backward);
  }
  return Var(std::move(node));
}

void Var::backward(const LeafGradReady& on_leaf_ready) const {
  BFCN_CHECK(value().numel() == 1, "backward: the output has shape ", value().shape(),
             "; backward() without a seed needs a scalar (1 element), or pass a seed gradient");
  backward(Tensor::full(value().shape(), 1.0f), on_leaf_ready);
}

namespace {
// In-place accumulation: g += d (fresh tensors from closures may be adopted without a copy).
void accumulate(Tensor& g, Tensor d, const char* op, const Shape& want) {
  BFCN_CHECK(d.shape() == want, "backward: op '", op, "' produced a gradient of shape ", d.shape(),
             " for an input of shape ", want);
  if (!g.defined()) {
    g = std::move(d);
    return;
  }
  // A gradient tensor may be shared with a saved value; copy before the first in-place add.
  if (g.same_storage(d)) g = g.clone();
  add_inplace_f32(g.f32(), d.f32(), g.numel());
}
}  // namespace

void Var::backward(const Tensor& seed, const LeafGradReady& on_leaf_ready) const {
  BFCN_CHECK(requires_grad(),
             "backward: this value does not require grad (no parameter feeds it, "
             "or it was computed under NoGradGuard)");
  BFCN_CHECK(seed.shape() == value().shape(), "backward: seed of shape ", seed.shape(),
             " for a value of shape ", value().shape());
  // Iterative DFS post-order gives a topological order (inputs before users).
  // `order` owns its nodes: freeing a node's edges below must not destroy an intermediate that
  // only that edge kept alive (temporaries such as quantize_k's inner round_ste) before it runs.
  std::vector<std::shared_ptr<Node>> order;
  std::unordered_set<Node*> seen;
  std::vector<std::pair<std::shared_ptr<Node>, size_t>> stack{{node_, 0}};
  seen.insert(node_.get());
  while (!stack.empty()) {
    auto& [n, i] = stack.back();
    if (i < n->inputs.size()) {
      std::shared_ptr<Node> child = n->inputs[i++];
      if (child->requires_grad && !seen.count(child.get())) {
        seen.insert(child.get());
        stack.push_back({std::move(child), 0});
      }
    } else {
      order.push_back(n);
      stack.pop_back();
    }
  }
  // With on_leaf_ready: how many op edges still feed each leaf's gradient (a leaf's gradient is
  // final when the last op using it has run).
  std::unordered_map<Node*, int> leaf_uses;
  if (on_leaf_ready)
    for (const auto& n : order)
      if (n->backward)
        for (const auto& in : n->inputs)
          if (in->requires_grad && !in->backward) ++leaf_uses[in.get()];
  accumulate(node_->grad, seed.clone(), node_->op, node_->value.shape());
  if (on_leaf_ready && !node_->backward) on_leaf_ready(*node_);  // backward() from a leaf
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Node* n = it->get();
    if (!n->backward) continue;  // a leaf: keeps its grad
    if (n->grad.defined()) {
      GradMask need(n->inputs.size());
      for (size_t i = 0; i < n->inputs.size(); ++i) need[i] = n->inputs[i]->requires_grad;
      std::vector<Tensor> grads = n->backward(n->grad, need);
      BFCN_ASSERT(grads.size() == n->inputs.size());
      for (size_t i = 0; i < grads.size(); ++i) {
        if (!need[i]) continue;
        BFCN_CHECK(grads[i].defined(), "backward: op '", n->op, "' returned no gradient for input ",
                   i);
        Node* in = n->inputs[i].get();
        accumulate(in->grad, std::move(grads[i]), n->op, in->value.shape());
      }
    }
    if (on_leaf_ready)
      for (const auto& in : n->inputs)
        if (in->requires_grad && !in->backward && --leaf_uses.at(in.get()) == 0) on_leaf_ready(*in);
    // Free the closure (and what it saved), the edges and this intermediate's gradient.
    n->backward = nullptr;
    n->inputs.clear();
    n->grad = Tensor();
    it->reset();  // every user of n has run: release it (an intermediate dies here)
  }
}

}  // namespace bfcn
