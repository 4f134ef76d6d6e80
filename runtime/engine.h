// The bit-convolution inference engine: executes a validated .bfcn graph (docs/format.md) on one
// image. Tensors are NHWC; quantized activations stay bit-packed between bit layers (the bitconv
// epilogue re-quantizes directly), floats appear only around FP layers and residual sums.
// Depends on kernels/ and nlohmann_json only (no autograd, HDF5 or OpenCV).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
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

// One layer's output as run() produced it (Model::set_trace), NHWC: codes 0..2^bits-1 of a packed
// tensor (bits > 0), else float values in the runtime's units (docs/format.md: a float tensor may
// be stored scaled by its consumer's clip). A fused stem head reports its quant_act's output; the
// final upsample writes the logits straight to run()'s output and reports no values.
struct TracedTensor {
  std::string layer, tensor;
  int h = 0, w = 0, c = 0, bits = 0;
  std::vector<uint8_t> codes;
  std::vector<float> values;
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
  // The RGB stem (a 7x7 conv, fused with its pool and 2-bit quantizer or its float pool) in
  // integers (kernels/conv_stem_int8.h): the image as bytes (exact for an image of 8-bit levels),
  // the weights rounded to weight_bits (15: two VNNI passes, outputs within ~1e-4 of the FP32
  // stem's; 8: one pass, faster, ~1e-2), VNNI dot products where the CPU has them. Off by
  // default: the FP32 stem's codes match the training engine's (`bfcn export --verify`); the
  // int8 stem's codes flip where a value is within its rounding of a quantizer boundary, and the
  // flips carry through the network: labels differ at ~1 % (15) or ~2.5 % (8) of the pixels, with
  // no measurable mIoU change (docs/runtime.md). Not to be changed while run() is running.
  void set_stem_int8(bool on, int weight_bits = 15);
  bool stem_int8() const;
  int stem_int8_weight_bits() const;
  // When set, run() appends one timing per layer (bench).
  void set_profile(std::vector<LayerTiming>* sink) const;
  // When set, run() hands every layer's output to the sink, in execution order (a debugging aid
  // for comparing engines: it unpacks every packed tensor, so runs are slower). Like
  // set_profile, not to be changed while another thread runs the model; empty function: off.
  void set_trace(std::function<void(const TracedTensor&)> sink) const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace bfcn::rt
