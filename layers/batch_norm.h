// BatchNorm2d module over batch_norm2d: parameters "weight"/"bias" [C], buffers "running_mean"/
// "running_var" [C] (torchvision names; torchvision's num_batches_tracked is not kept). Training
// mode normalises with batch statistics and updates the running buffers in place; eval uses them.
#pragma once

#include "layers/module.h"

namespace bfcn {

class BatchNorm2d : public Module {
 public:
  BatchNorm2d(int channels, float eps = 1e-5f, float momentum = 0.1f);
  Var forward(const Var& x) override;  // x [N,C,H,W]
  int channels() const { return channels_; }
  float eps() const { return eps_; }
  float momentum() const { return momentum_; }
  // BN re-estimation (train/calibrate.h) sets 1/(i+1) for batch i: an exact running average.
  void set_momentum(float m) { momentum_ = m; }
  Var weight() const { return weight_; }
  Var bias() const { return bias_; }
  Tensor running_mean() const { return running_mean_; }
  Tensor running_var() const { return running_var_; }

 private:
  int channels_;
  float eps_, momentum_;
  Var weight_, bias_;                  // [C]
  Tensor running_mean_, running_var_;  // [C], shared with the registered buffers
};

}  // namespace bfcn
