// A random segmentation model calibrated as the trainer does (learned clips from FP statistics,
// then BN re-estimated with the quantizers on) on random 48x48 images, then BN betas shifted so
// every quantizer sees values spread over its levels. Shared by the export tests.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>

#include "core/rng.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/calibrate.h"

namespace bfcn::test {

// vary_clips: scale every learned clip by a random factor in [0.8, 1.25], so clips differ from
// layer to layer (exercises the rescaling of packed residuals).
inline std::shared_ptr<SegmentationModel> calibrated_model(const nlohmann::json& quant,
                                                           uint64_t seed, Rng& rng,
                                                           bool vary_clips = false) {
  const nlohmann::json cfg = {
      {"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 6}, {"quant", quant}};
  auto model = build_model(cfg, seed);
  int left = 3;
  const BatchSource next = [&](Tensor& x) {
    if (left-- <= 0) return false;
    x = random_tensor(Shape{2, 3, 64, 64}, rng, -2.0f, 2.0f);
    return true;
  };
  calibrate_learned_clips(*model, next, 3);
  left = 3;
  if (reestimate_batch_norm(*model, next, 3) != 3) return nullptr;
  for (const auto& [name, m] : model->named_modules()) {
    if (auto* bn = dynamic_cast<BatchNorm2d*>(m))
      for (float& b : bn->bias().mutable_value().span<float>()) b += rng.uniform(0.2f, 0.6f);
    if (auto* q = dynamic_cast<QuantAct*>(m); vary_clips && q && q->learned_clip())
      q->named_parameters()[0].second.mutable_value().f32()[0] *= rng.uniform(0.8f, 1.25f);
  }
  model->eval();
  return model;
}

}  // namespace bfcn::test
