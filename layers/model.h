// SegmentationModel: a ResNet backbone + an FCN head, built from the config's "model" section.
// The backbone's and the head's layers are registered at the top level, so parameter names are
// torchvision's ("layer1.0.conv1.weight") plus the head's ("score_layer4.weight") and a converted
// torchvision ResNet loads straight into it (non-strict: the head stays at its init).
//   {"backbone": "resnet18", "head": "fcn8s", "n_classes": 21, "output_stride": 32,
//    "quant": {"w_bits": 1, "a_bits": 2, "first_last_fp": true}}
// Required: backbone, head, n_classes. Optional: output_stride (32; 8 for "dilated"), quant
// (all FP), head_channels (0, dilated only), in_channels (3), name (free text).
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/fcn.h"
#include "layers/module.h"
#include "layers/resnet.h"
#include "layers/summary.h"

namespace bfcn {

class SegmentationModel : public Module {
 public:
  // `resolved` is the validated model config with defaults filled in (see build_model).
  SegmentationModel(nlohmann::json resolved, std::shared_ptr<ResNet> backbone,
                    std::shared_ptr<FcnHead> head);
  Var forward(const Var& x) override;                // x [N,3,H,W] → logits [N,n_classes,H,W]
  std::vector<Var> backbone_features(const Var& x);  // layer1..layer4 outputs
  int n_classes() const;
  int output_stride() const;
  const nlohmann::json& config() const { return config_; }
  // One row per layer for an input [1,3,height,width] (analytic; no forward pass).
  std::vector<LayerInfo> summary(int height, int width) const;
  // Appends the runtime layers of the whole network reading tensor `image`; returns the logits
  // tensor (layers/export_graph.h).
  std::string export_to(ExportGraph& g, const std::string& image) const;
  const ResNet& backbone() const { return *backbone_; }
  const FcnHead& head() const { return *head_; }

 private:
  nlohmann::json config_;
  std::shared_ptr<ResNet> backbone_;
  std::shared_ptr<FcnHead> head_;
};

// Validates EVERYTHING in the model section (unknown keys, missing keys, types, values) and throws
// ConfigError with the JSON path and the allowed values, e.g. "model.backbone: expected one of
// resnet18, resnet34, resnet50, resnet18_preact, but got 'resnet19'". `path` is the JSON path of
// model_cfg ("model"). Weights are drawn from an Rng seeded with `seed`.
std::shared_ptr<SegmentationModel> build_model(const nlohmann::json& model_cfg, uint64_t seed,
                                               const std::string& path = "model");

// The model section with defaults filled in, validated (what SegmentationModel::config() holds).
nlohmann::json resolve_model_config(const nlohmann::json& model_cfg,
                                    const std::string& path = "model");

}  // namespace bfcn
