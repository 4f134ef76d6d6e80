// BatchNorm2d (see layers/batch_norm.h). The running buffers are the registered buffer storage
// itself, so batch_norm2d's in-place update is what named_buffers() and checkpoints see.
#include "layers/batch_norm.h"

#include "autograd/ops.h"
#include "core/error.h"

namespace bfcn {

BatchNorm2d::BatchNorm2d(int channels, float eps, float momentum)
    : Module("BatchNorm2d"), channels_(channels), eps_(eps), momentum_(momentum) {
  BFCN_CHECK(channels > 0, "BatchNorm2d: channels must be > 0, got ", channels);
  BFCN_CHECK(eps > 0.0f, "BatchNorm2d: eps must be > 0, got ", eps);
  BFCN_CHECK(momentum >= 0.0f && momentum <= 1.0f, "BatchNorm2d: momentum must be in [0,1], got ",
             momentum);
  weight_ = register_parameter("weight", Tensor::ones({channels}));
  bias_ = register_parameter("bias", Tensor::zeros({channels}));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var_ = register_buffer("running_var", Tensor::ones({channels}));
}

Var BatchNorm2d::forward(const Var& x) {
  BFCN_CHECK(x.value().ndim() == 4 && x.dim(1) == channels_, "BatchNorm2d: expected input [N,",
             channels_, ",H,W], but got ", x.shape());
  return batch_norm2d(x, weight_, bias_, running_mean_, running_var_, training(), momentum_, eps_);
}

}  // namespace bfcn
