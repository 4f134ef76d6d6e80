// Per-layer bit widths from the model config's "quant" object: a model-level default plus
// overrides keyed by layer name or dotted prefix ("layer4" covers "layer4.0.conv1"). Overrides
// are layered from the shortest to the longest matching key, so the longest match wins per field.
//   {"w_bits":1,"a_bits":2,"g_bits":32,"w_scale":"layer"|"channel","first_last_fp":true,
//    "overrides": {"layer4": {"w_bits": 2}, "layer2.0.conv1": {"a_bits": 4}}}
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "autograd/quant.h"

namespace bfcn {

class QuantConfig {
 public:
  QuantConfig() = default;  // everything FP32, first_last_fp true
  // `path` is where j sits in the config ("model.quant"); errors are ConfigError naming it, e.g.
  // "model.quant.overrides.layer2.0.conv1: layer 'layer2.0.conv1': w_bits must be 1..8 or 32, got
  // 0".
  static QuantConfig from_json(const nlohmann::json& j, const std::string& path);

  QuantSpec spec_for(const std::string& layer_name) const;
  const QuantSpec& default_spec() const { return default_; }
  bool first_last_fp() const { return first_last_fp_; }
  // Precision policy (docs/quantization.md), all defaulting to the paper's recipe:
  //   "residual": "quantized" (the block output/identity path is the 2-bit activation) | "fp"
  //     (Bi-Real style: each block quantizes its input in front of conv1, the add stays FP);
  //   "downsample": "quant" (the default spec) | "fp32" | "w8" (8-bit DoReFa weights) for the
  //     1x1 downsample convs; "score": "fp32" | "w8" for the FCN score/skip convs (first_last_fp
  //     already keeps them FP32); "act_clip": "fixed" (DoReFa [0,1]) | "learned" (PACT/LSQ clip);
  //   "w_quantizer": "dorefa" (tanh/max fw) | "scaled" (per-channel statistics-scaled levels for
  //     2..8-bit weights, quantize_weight_scaled; every layer's spec gets w_scaled).
  bool residual_fp() const { return residual_fp_; }
  const std::string& downsample_policy() const { return downsample_; }
  const std::string& score_policy() const { return score_; }
  bool learned_clip() const { return act_clip_ == "learned"; }
  // The spec of a downsample / score conv after its policy.
  QuantSpec downsample_spec(const std::string& layer_name) const;
  // Override keys, sorted; and a check that every key names (or prefixes) one of `layer_names`
  // (ConfigError "<path>.overrides: key 'layr4' matches no layer").
  std::vector<std::string> override_keys() const;
  void check_overrides_match(const std::vector<std::string>& layer_names) const;

  nlohmann::json to_json() const;

 private:
  // A partial spec: only the fields the override sets.
  struct Override {
    int w_bits = 0, a_bits = 0, g_bits = 0;  // 0 = not set
    int w_scale_channel = -1;                // -1 = not set
  };
  std::string path_ = "quant";
  QuantSpec default_;
  bool first_last_fp_ = true;
  bool residual_fp_ = false;
  std::string downsample_ = "quant", score_ = "fp32", act_clip_ = "fixed";
  std::map<std::string, Override> overrides_;
};

}  // namespace bfcn
