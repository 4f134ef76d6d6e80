// Post-quantization calibration of a model before (or after) low-bit fine-tuning
// (docs/quantization.md): learned activation clips from FP statistics, and BN running-stat
// re-estimation with the quantizers on. Both run without gradients.
#pragma once

#include <cstdint>
#include <functional>

#include "core/tensor.h"

namespace bfcn {

class Module;

// Supplies the next input batch [N,3,H,W]; returns false when no batch is left.
using BatchSource = std::function<bool(Tensor& images)>;

// Every QuantAct with a learned clip records its input over `batches` forward passes in which the
// quantizers are the FP ReLU (BN in training mode, so the statistics do not depend on stale
// running stats), then takes the clip that minimises the 2-bit quantization MSE. Returns the
// number of clips set.
int calibrate_learned_clips(Module& model, const BatchSource& next, int batches);

// Re-estimates every BatchNorm2d's running mean/var as the average over `batches` batches of the
// batch statistics, with the quantizers on (training-mode forward without gradients). The model
// is left in training mode and the BN momenta are restored. Returns the batches used.
int reestimate_batch_norm(Module& model, const BatchSource& next, int batches);

}  // namespace bfcn
