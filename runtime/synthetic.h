// Random-weight .bfcn models of the ResNet-18/34 FCN-8s graph (the layout `bfcn export` writes),
// for `bfcn bench runtime` without a trained model and for tests. BN affines are chosen so that
// every quantizer's levels are all used (a test with all-zero activations would prove nothing).
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <vector>

#include "runtime/format.h"

namespace bfcn::rt {

struct SyntheticOptions {
  int w_bits = 1, a_bits = 2;
  int num_classes = 21;
  int base_channels = 64;               // 64 = ResNet-18 widths; tests use 8
  std::vector<int> blocks{2, 2, 2, 2};  // {3,4,6,3} = ResNet-34
  uint64_t seed = 1;
};

// The header and blobs of a random model (write with write_model_file / serialize_model).
void make_synthetic_fcn8s(const SyntheticOptions& o, nlohmann::json& header,
                          std::vector<BlobData>& blobs);

}  // namespace bfcn::rt
