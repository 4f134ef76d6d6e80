// The small synthetic FCN-8s the engine tests load, plan and run (shared by format_test.cpp and
// engine_fusion_test.cpp).
#pragma once

#include <string>
#include <vector>

#include "runtime/format.h"
#include "runtime/synthetic.h"

namespace bfcn::test {

struct SyntheticGraph {
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
};

// ResNet-18 layout, 8 base channels, W1A2, 5 classes, as header + blobs.
inline SyntheticGraph synthetic_graph() {
  rt::SyntheticOptions o;
  o.base_channels = 8;
  o.blocks = {1, 1, 1, 1};
  o.num_classes = 5;
  SyntheticGraph g;
  rt::make_synthetic_fcn8s(o, g.header, g.blobs);
  return g;
}

// A second reader of the stem conv's output (a max pool), which keeps that output a float tensor
// and so must stop the stem's fused quantizer.
inline void add_second_stem_reader(nlohmann::json& header) {
  header["layers"].push_back({{"name", "extra_pool"},
                              {"type", "maxpool"},
                              {"inputs", {"conv1"}},
                              {"output", "extra_pool"},
                              {"kernel", 3},
                              {"stride", 2},
                              {"pad", 1}});
}

// A second reader of the stem's pooled map (like a trained model's first residual), which keeps
// the quantizer out of the stem fusion: the conv and its pool fuse alone (kStemPool).
inline void add_second_pool_reader(nlohmann::json& header) {
  const std::string pooled = header["layers"][1]["output"].get<std::string>();
  header["layers"].push_back({{"name", "extra_pool2"},
                              {"type", "maxpool"},
                              {"inputs", {pooled}},
                              {"output", "extra_pool2"},
                              {"kernel", 3},
                              {"stride", 2},
                              {"pad", 1}});
}

}  // namespace bfcn::test
