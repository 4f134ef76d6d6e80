#include "layers/module.h"

#include "core/error.h"

namespace bfcn {

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

namespace {
std::string join(const std::string& prefix, const std::string& name) {
  // The module itself is named "" in named_modules(): no trailing dot for it.
  if (prefix.empty()) return name;
  return name.empty() ? prefix : prefix + "." + name;
}
}  // namespace

std::vector<std::pair<std::string, Var>> Module::named_parameters() const {
  std::vector<std::pair<std::string, Var>> out;
  for (const auto& [path, m] : named_modules())
    for (const auto& [name, p] : m->params_) out.emplace_back(join(path, name), p);
  return out;
}

std::vector<std::pair<std::string, Tensor>> Module::named_buffers() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& [path, m] : named_modules())
    for (const auto& [name, b] : m->buffers_) out.emplace_back(join(path, name), b);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() const {
  std::vector<std::pair<std::string, Module*>> out{{"", const_cast<Module*>(this)}};
  for (const auto& [name, child] : children_)
    for (const auto& [sub, m] : child->named_modules()) out.emplace_back(join(name, sub), m);
  return out;
}

int64_t Module::parameter_count() const {
  int64_t n = 0;
  for (const auto& [name, p] : named_parameters()) n += p.value().numel();
  return n;
}

void Module::zero_grad() {
  for (auto& [name, p] : named_parameters()) p.zero_grad();
}

Var Module::register_parameter(const std::string& name, Tensor init) {
  for (const auto& [n, p] : params_) BFCN_ASSERT(n != name);
  Var v(std::move(init), /*requires_grad=*/true);
  params_.emplace_back(name, v);
  return v;
}

Tensor Module::register_buffer(const std::string& name, Tensor init) {
  for (const auto& [n, b] : buffers_) BFCN_ASSERT(n != name);
  buffers_.emplace_back(name, init);
  return init;
}

void Module::add_child(const std::string& name, std::shared_ptr<Module> m) {
  BFCN_ASSERT(m != nullptr);
  for (const auto& [n, c] : children_) BFCN_ASSERT(n != name);
  children_.emplace_back(name, std::move(m));
}

}  // namespace bfcn
