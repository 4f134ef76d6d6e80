// Model weights inside a TensorFile: parameters under "params/<dotted name>" and buffers (BN
// running statistics) under "buffers/<dotted name>", the same layout in converted torchvision files
// and in training checkpoints, so `--init-from` accepts either. Loading checks every name and
// shape.
#pragma once

#include <string>
#include <vector>

#include "layers/module.h"
#include "train/hdf5_io.h"

namespace bfcn {

inline constexpr const char* kParamsGroup = "params";
inline constexpr const char* kBuffersGroup = "buffers";

// Adds "params/<name>" and "buffers/<name>" for every parameter and buffer of m (shallow handles:
// the file is written from the module's own storage).
void add_model_weights(TensorFile& tf, const Module& m);

// Names are dotted module names with the group prefix ("params/layer1.0.conv1.weight").
struct LoadReport {
  std::vector<std::string> loaded, missing, unexpected, shape_mismatch;
  std::string str() const;  // "loaded 122, missing 3 (score_layer2.weight, ...), ..."
};

// strict: any missing, unexpected (under params/ or buffers/) or shape-mismatched tensor throws
// IoError listing them by name (first 10 of each + counts); nothing is modified then.
// non-strict (backbone-only ImageNet weights into an FCN): loads every tensor whose name and shape
// match, and reports the rest; still throws when nothing at all matched (wrong file).
// Other groups (optimizer state, ...) are ignored. `source` names the file in messages.
LoadReport load_model_weights(Module& m, const TensorFile& tf, bool strict,
                              const std::string& source = "weights");

}  // namespace bfcn
