// Pooling modules (thin wrappers over max_pool2d / avg_pool2d) so models can list them as layers.
#pragma once

#include "autograd/ops.h"
#include "layers/module.h"

namespace bfcn {

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(const Pool2dArgs& a) : Module("MaxPool2d"), args_(a) {}
  Var forward(const Var& x) override { return max_pool2d(x, args_); }
  const Pool2dArgs& args() const { return args_; }

 private:
  Pool2dArgs args_;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(const Pool2dArgs& a) : Module("AvgPool2d"), args_(a) {}
  Var forward(const Var& x) override { return avg_pool2d(x, args_); }
  const Pool2dArgs& args() const { return args_; }

 private:
  Pool2dArgs args_;
};

}  // namespace bfcn
