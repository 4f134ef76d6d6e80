// The small synthetic FCN-8s the engine tests load, plan and run (shared by format_test.cpp and
// engine_fusion_test.cpp).
#pragma once

#include <cstring>
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

// A second reader of block's downsample output (a max pool), which keeps the downsample a
// stored tensor instead of a residual conv computed in the block's conv2 (kResidualConv).
inline void add_downsample_reader(nlohmann::json& header, const std::string& block) {
  header["layers"].push_back({{"name", block + ".extra_pool"},
                              {"type", "maxpool"},
                              {"inputs", {block + ".downsample"}},
                              {"output", block + ".extra_pool"},
                              {"kernel", 2},
                              {"stride", 2},
                              {"pad", 0}});
}

// The trained models' block outputs (bfcn export of a float residual stream): layer1.0.conv2 and
// layer2.0.conv2 write a float map with ReLU (their offsets moved to -0.4), which an affine
// quant_act "<block>.act" quantizes for the next block's convs (layer1.0's conv2 has a packed
// residual, layer2.0's the float downsample output).
inline void float_block_outputs(SyntheticGraph& g) {
  for (const std::string block : {"layer1.0", "layer2.0"}) {
    nlohmann::json& layers = g.header["layers"];
    size_t at = 0;
    int channels = 0;
    for (size_t i = 0; i < layers.size(); ++i)
      if (layers[i]["name"] == block + ".conv2") {
        layers[i]["out_bits"] = 0;
        layers[i]["relu"] = true;
        channels = layers[i]["out_c"].get<int>();
        at = i + 1;
      }
    for (nlohmann::json& L : layers)  // the next block's convs read the codes
      for (nlohmann::json& in : L["inputs"])
        if (in == block && L["name"] != block + ".act") in = block + ".act";
    std::vector<float> mul(static_cast<size_t>(channels)), add(static_cast<size_t>(channels));
    for (int c = 0; c < channels; ++c) {
      mul[size_t(c)] = 0.6f + 0.1f * float(c % 5);
      add[size_t(c)] = 0.05f * float(c % 3);
    }
    for (rt::BlobData& b : g.blobs)  // an offset that sends many sums below 0: the ReLU clips
      if (b.name == block + ".conv2.add")
        for (size_t i = 0; i + sizeof(float) <= b.bytes.size(); i += sizeof(float)) {
          const float shift = -0.4f;
          std::memcpy(b.bytes.data() + i, &shift, sizeof(float));
        }
    g.blobs.push_back(rt::make_blob(block + ".act.mul", mul));
    g.blobs.push_back(rt::make_blob(block + ".act.add", add));
    layers.insert(layers.begin() + std::ptrdiff_t(at),
                  nlohmann::json::object({{"name", block + ".act"},
                                          {"type", "quant_act"},
                                          {"inputs", {block}},
                                          {"output", block + ".act"},
                                          {"bits", 2},
                                          {"affine", true}}));
  }
}

}  // namespace bfcn::test
