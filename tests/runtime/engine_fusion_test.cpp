// The engine's fused stem (conv -> max pool -> quantizer in one kernel), fused final upsample
// (straight into logits/labels) and 1x1 downsample convs computed in their block's second conv
// give the same results as the unfused graph (runtime/model_plan.cpp plans the fusions,
// model_run.cpp runs them).
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "core/rng.h"
#include "runtime/engine.h"
#include "runtime/synthetic.h"
#include "tests/runtime/synthetic_graph.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

using bfcn::test::synthetic_graph;

rt::Model synthetic_model(bool block_stem_fusion) {
  auto [header, blobs] = synthetic_graph();
  if (block_stem_fusion)  // a second reader of the stem conv's output keeps it a float tensor
    bfcn::test::add_second_stem_reader(header);
  return rt::Model::from_file(rt::parse_model("synthetic", rt::serialize_model(header, blobs)));
}

}  // namespace

TEST_CASE("engine: fused stem and fused output equal the unfused graph", "[runtime][engine]") {
  const rt::Model fused = synthetic_model(false), plain = synthetic_model(true);
  for (auto [h, w] : {std::pair{45, 61}, std::pair{64, 64}, std::pair{33, 17}}) {
    INFO(h << "x" << w);
    Rng rng(uint64_t(h) * w);
    const std::vector<float> img = test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
    std::vector<float> la, lb;
    std::vector<uint8_t> ya, yb, y_only;
    fused.run(img.data(), h, w, &la, &ya);
    plain.run(img.data(), h, w, &lb, &yb);
    fused.run(img.data(), h, w, nullptr, &y_only);
    REQUIRE(la.size() == size_t(5) * h * w);
    CHECK(la == lb);  // bit-identical: pool-after-quantize is exact
    CHECK(ya == yb);
    CHECK(y_only == ya);
    // labels are the first-maximum argmax of the NCHW logits
    const int64_t pix = int64_t(h) * w;
    bool argmax_ok = true;
    for (int64_t p = 0; p < pix; ++p) {
      int best = 0;
      for (int c = 1; c < 5; ++c)
        if (la[size_t(best * pix + p)] < la[size_t(c * pix + p)]) best = c;
      argmax_ok = argmax_ok && ya[size_t(p)] == best;
    }
    CHECK(argmax_ok);
  }
}

TEST_CASE("engine: 1x1 downsample convs computed in their block's epilogue equal the unfused graph",
          "[runtime][engine]") {
  // Traced runs compute every layer on its own (set_trace), so traced = unfused. 48 base channels:
  // the downsample inputs have 48, 96 and 192 channels (1, 2 and 3 words per bit plane).
  for (auto [wb, ab] : {std::pair{1, 2}, std::pair{1, 1}, std::pair{2, 2}}) {
    rt::SyntheticOptions o;
    o.w_bits = wb;
    o.a_bits = ab;
    o.base_channels = 48;
    o.blocks = {1, 1, 1, 1};
    o.num_classes = 5;
    nlohmann::json header;
    std::vector<rt::BlobData> blobs;
    rt::make_synthetic_fcn8s(o, header, blobs);
    const rt::Model m =
        rt::Model::from_file(rt::parse_model("ds.bfcn", rt::serialize_model(header, blobs)));
    for (auto [h, w] : {std::pair{61, 45}, std::pair{64, 64}}) {
      INFO("W" << wb << "A" << ab << " " << h << "x" << w);
      Rng rng(uint64_t(h) * w + uint64_t(wb) * 10 + uint64_t(ab));
      const std::vector<float> img =
          test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
      std::vector<float> fused, plain;
      std::vector<uint8_t> yf, yp;
      std::vector<rt::LayerTiming> prof;
      m.set_profile(&prof);
      m.run(img.data(), h, w, &fused, &yf);
      m.set_profile(nullptr);
      int in_epilogue = 0;
      for (const rt::LayerTiming& t : prof)
        if (t.name.find("downsample") != std::string::npos) {
          CHECK(t.macs == 0);  // its work is counted in the conv that ran it
          ++in_epilogue;
        }
      CHECK(in_epilogue == 3);
      m.set_trace([](const rt::TracedTensor&) {});
      m.run(img.data(), h, w, &plain, &yp);
      m.set_trace({});
      REQUIRE(fused.size() == size_t(5) * h * w);
      CHECK(fused == plain);
      CHECK(yf == yp);
    }
  }
}
