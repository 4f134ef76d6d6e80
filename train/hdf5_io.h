// Named tensors in HDF5 files: the one container for converted torchvision weights and training
// checkpoints. A key "group/dotted.name" is stored as the dataset "/group/dotted/name" (dots become
// HDF5 groups, so h5ls shows the module tree); each dataset also carries its key as the attribute
// "bfcn_key", so groups with slashes ("optim/momentum") round-trip. Writes are atomic: the file is
// written as "<file>.tmp" and renamed, so a failed write never clobbers an existing file.
#pragma once

#include <filesystem>
#include <map>
#include <string>

#include "core/tensor.h"

namespace bfcn {

struct TensorFile {
  std::map<std::string, Tensor> tensors;  // "params/layer1.0.conv1.weight" → tensor (f32/i32/u8)
  std::map<std::string, std::string> attrs;  // string attributes on the root group
};

// Throws IoError naming the file (the old file, if any, is left intact).
void save_tensor_file(const std::filesystem::path& file, const TensorFile& tf);
// Throws IoError naming the file when it is missing, not HDF5, or holds an unsupported dtype.
TensorFile load_tensor_file(const std::filesystem::path& file);

// "params/layer1.0.conv1.weight" → "/params/layer1/0/conv1/weight" (the last '/' splits the group
// from the dotted name) and back, for files written without the "bfcn_key" attribute (h5py).
std::string tensor_key_to_h5_path(const std::string& key);
std::string h5_path_to_tensor_key(const std::string& path);

}  // namespace bfcn
