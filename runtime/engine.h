// The bit-convolution inference engine: executes a validated .bfcn graph (docs/format.md) on one
// image. Tensors are NHWC; quantized activations stay bit-packed between bit layers (the bitconv
// epilogue re-quantizes directly), floats appear only around FP layers and residual sums.
// Depends on kernels/ and nlohmann_json only (no autograd, HDF5 or OpenCV).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/format.h"

namespace bfcn::rt {

struct LayerTiming {
  std::string name, type;
  double ms = 0;
  int64_t macs = 0;
  std::string kernel;  // bit-conv layers: the bgemm variant that ran (bgemm_for_shape)
};

class Model {
 public:
  Model();
  ~Model();
  Model(Model&&) noexcept;
  Model& operator=(Model&&) noexcept;

  static Model load(const std::string& path);
  // Validates the graph against the blobs of an already parsed file.
  static Model from_file(ModelFile file);

  // image [3,h,w] RGB in [0,1]; applies the header's mean/std when normalize. logits [C,h,w]
  // (optional), labels [h,w] argmax (optional).
  void run(const float* image_nchw, int h, int w, std::vector<float>* logits,
           std::vector<uint8_t>* labels, bool normalize = true) const;

  // A cost model for benchmarks ("our FP32 path"), not the same network: every bit conv becomes
  // an FP32 conv on float activations that drops its residual input, and quant_act a clip-like
  // add; only its time is meaningful (docs/runtime.md).
  Model to_fp32() const;

  int num_classes() const;
  const std::vector<std::string>& class_names() const;
  const std::vector<std::array<uint8_t, 3>>& palette() const;
  const nlohmann::json& header() const;
  // When set, run() appends one timing per layer (bench).
  void set_profile(std::vector<LayerTiming>* sink) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace bfcn::rt
