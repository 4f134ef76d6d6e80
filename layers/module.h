// Module: a named tree of parameters (Vars that require grad), buffers (Tensors such as BN running
// statistics) and child modules, with train/eval mode — the PyTorch nn.Module shape, so parameter
// names match torchvision's state_dict ("layer1.0.conv1.weight", "layer1.0.bn1.running_mean").
// Handles are shallow: named_parameters()/named_buffers() return handles to the module's own
// storage, so an optimizer update or a weight load (Tensor::copy_from) changes the module.
// Buffers are updated in place (batch_norm2d writes into the existing running-stat storage).
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "autograd/var.h"

namespace bfcn {

class Module {
 public:
  explicit Module(std::string type) : type_(std::move(type)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Single-input forward. Modules with several inputs/outputs add their own methods.
  virtual Var forward(const Var& x) = 0;

  void train(bool on = true);  // recursive
  void eval() { train(false); }
  bool training() const { return training_; }
  const std::string& type() const { return type_; }  // "Conv2d", "BatchNorm2d", ...

  // Recursive, in registration order, with dotted names relative to this module.
  std::vector<std::pair<std::string, Var>> named_parameters() const;
  std::vector<std::pair<std::string, Tensor>> named_buffers() const;
  std::vector<std::pair<std::string, Module*>> named_modules() const;  // includes this as ""
  // Direct children.
  const std::vector<std::pair<std::string, std::shared_ptr<Module>>>& children() const {
    return children_;
  }
  int64_t parameter_count() const;
  void zero_grad();

 protected:
  Var register_parameter(const std::string& name, Tensor init);
  Tensor register_buffer(const std::string& name, Tensor init);
  template <class M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> m) {
    add_child(name, m);
    return m;
  }

 private:
  void add_child(const std::string& name, std::shared_ptr<Module> m);
  std::string type_;
  bool training_ = true;
  std::vector<std::pair<std::string, Var>> params_;
  std::vector<std::pair<std::string, Tensor>> buffers_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
};

}  // namespace bfcn
