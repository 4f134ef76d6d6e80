// The engine's fused stem (conv -> max pool -> quantizer in one kernel) and fused final upsample
// (straight into logits/labels) give the same results as the unfused graph (runtime/model_plan.cpp
// plans the fusions, model_run.cpp runs them).
#include <omp.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/rng.h"
#include "kernels/bitpack.h"
#include "runtime/engine.h"
#include "runtime/synthetic.h"
#include "tests/runtime/synthetic_graph.h"
#include "tests/support/test_support.h"

using namespace bfcn;

namespace {

using bfcn::test::synthetic_graph;

rt::Model synthetic_model(bool block_stem_fusion, bool second_pool_reader = false,
                          bool dilated_stem = false) {
  auto [header, blobs] = synthetic_graph();
  if (dilated_stem) {  // 7x7 dilation 2, pad 6: the same map size, the im2col stem's path
    header["layers"][0]["dilation"] = 2;
    header["layers"][0]["pad"] = 6;
  }
  if (block_stem_fusion)  // a second reader of the stem conv's output keeps it a float tensor
    bfcn::test::add_second_stem_reader(header);
  if (second_pool_reader)  // the pooled map read twice: only the conv and the pool fuse
    bfcn::test::add_second_pool_reader(header);
  return rt::Model::from_file(rt::parse_model("synthetic", rt::serialize_model(header, blobs)));
}

}  // namespace

TEST_CASE("engine: fused stem and fused output equal the unfused graph", "[runtime][engine]") {
  // The fused stem pools rows of codes as the conv writes them; a dilated stem (the im2col path)
  // stores its codes whole and pools them after.
  for (bool dilated : {false, true}) {
    const rt::Model fused = synthetic_model(false, false, dilated),
                    plain = synthetic_model(true, false, dilated);
    for (auto [h, w] : {std::pair{45, 61}, std::pair{64, 64}, std::pair{33, 17}}) {
      INFO(h << "x" << w << " dilated " << dilated);
      Rng rng(uint64_t(h) * w);
      const std::vector<float> img =
          test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
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
}

TEST_CASE("engine: the int8 stem, fused or not, is close to the FP32 stem", "[runtime][engine]") {
  // Model::set_stem_int8: the stem conv in 8-bit integers on the raw image. Fused (conv -> pool ->
  // quantizer) and unfused (float conv output, then pool, then quantizer) give the same labels,
  // because the fused thresholds reproduce the float epilogue's codes; both are close to the FP32
  // stem, and the profile names the int8 kernel.
  rt::Model fused = synthetic_model(false), plain = synthetic_model(true);
  const int h = 64, w = 48;
  Rng rng(5);
  const std::vector<float> img = test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
  std::vector<uint8_t> fp32, int8_fused, int8_plain;
  fused.run(img.data(), h, w, nullptr, &fp32);
  CHECK_FALSE(fused.stem_int8());
  fused.set_stem_int8(true);
  plain.set_stem_int8(true);
  CHECK(fused.stem_int8());
  std::vector<rt::LayerTiming> prof;
  fused.set_profile(&prof);
  fused.run(img.data(), h, w, nullptr, &int8_fused);
  fused.set_profile(nullptr);
  plain.run(img.data(), h, w, nullptr, &int8_plain);
  REQUIRE(int8_fused.size() == size_t(h) * w);
  CHECK(int8_fused == int8_plain);
  int64_t same = 0;
  for (size_t i = 0; i < fp32.size(); ++i) same += fp32[i] == int8_fused[i];
  INFO("labels equal to the FP32 stem's: " << same << " of " << fp32.size());
  CHECK(double(same) / double(fp32.size()) > 0.9);
  REQUIRE(!prof.empty());
  CHECK(prof.front().kernel.find("conv_stem_int8") == 0);
  // 8-bit weights: another rounding, still close; a width the stem has not is a clear error.
  CHECK(fused.stem_int8_weight_bits() == 15);
  fused.set_stem_int8(true, 8);
  CHECK(fused.stem_int8_weight_bits() == 8);
  std::vector<uint8_t> int8_w8;
  fused.run(img.data(), h, w, nullptr, &int8_w8);
  same = 0;
  for (size_t i = 0; i < fp32.size(); ++i) same += fp32[i] == int8_w8[i];
  CHECK(double(same) / double(fp32.size()) > 0.9);
  CHECK_THROWS_WITH(fused.set_stem_int8(true, 16), Catch::Contains("8 or 15, got 16"));
  // Off again: the FP32 stem's labels exactly.
  fused.set_stem_int8(false);
  std::vector<uint8_t> again;
  fused.run(img.data(), h, w, nullptr, &again);
  CHECK(again == fp32);
}

TEST_CASE("engine: the stem conv fused with its float pool equals the unfused graph",
          "[runtime][engine]") {
  // kStemPool (a trained model's stem: the pooled map feeds the quantizer and a residual) against
  // the same graph with nothing fused, FP32 and int8 stems: the pool reads the same floats.
  rt::Model pooled = synthetic_model(false, true), plain = synthetic_model(true, true);
  for (bool int8 : {false, true}) {
    pooled.set_stem_int8(int8);
    plain.set_stem_int8(int8);
    for (auto [h, w] : {std::pair{45, 61}, std::pair{64, 64}, std::pair{7, 9}}) {
      INFO(h << "x" << w << " int8 " << int8);
      Rng rng(uint64_t(h) * w + 1);
      const std::vector<float> img =
          test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
      std::vector<float> la, lb;
      std::vector<uint8_t> ya, yb;
      std::vector<rt::LayerTiming> prof;
      pooled.set_profile(&prof);
      pooled.run(img.data(), h, w, &la, &ya);
      pooled.set_profile(nullptr);
      plain.run(img.data(), h, w, &lb, &yb);
      REQUIRE(la.size() == size_t(5) * h * w);
      CHECK(la == lb);
      CHECK(ya == yb);
      REQUIRE(prof.size() > 1);
      // the stem that ran (a trained model's stem takes the int8 path too)
      CHECK(prof[0].kernel.find(int8 ? "conv_stem_int8__" : "conv_stem__") == 0);
      CHECK(prof[1].name == "maxpool");
      CHECK(prof[1].ms == 0.0);  // absorbed by the stem
    }
  }
}

TEST_CASE("engine: the int8 stem's float map is within its weights' rounding of the FP32 stem's",
          "[runtime][engine]") {
  // A trained model's stem (kStemPool: a float map out) on an image of 8-bit levels, which the
  // int8 stem reads exactly: what is left is the weights' rounding, ~2^7 times finer at 15 bits
  // than at 8.
  rt::Model model = synthetic_model(false, true);
  const int h = 40, w = 56;
  std::mt19937 gen(3);
  std::vector<float> img(size_t(3) * h * w);
  for (auto& v : img) v = float(gen() % 256) / 255.0f;
  auto stem_map = [&](bool int8, int bits) {
    model.set_stem_int8(int8, bits);
    std::vector<float> map;
    model.set_trace([&](const rt::TracedTensor& t) {
      if (map.empty()) map = t.values;  // the first: the pooled stem map
    });
    std::vector<uint8_t> labels;
    model.run(img.data(), h, w, nullptr, &labels);
    model.set_trace({});
    return map;
  };
  const auto f32 = stem_map(false, 15), i15 = stem_map(true, 15), i8 = stem_map(true, 8);
  REQUIRE(!f32.empty());
  REQUIRE(i15.size() == f32.size());
  REQUIRE(i8.size() == f32.size());
  double big = 0, err15 = 0, err8 = 0;
  for (size_t i = 0; i < f32.size(); ++i) {
    big = std::max(big, std::abs(double(f32[i])));
    err15 = std::max(err15, std::abs(double(i15[i]) - f32[i]));
    err8 = std::max(err8, std::abs(double(i8[i]) - f32[i]));
  }
  INFO("|map| up to " << big << ", error 15-bit " << err15 << ", 8-bit " << err8);
  CHECK(big > 0.1);
  CHECK(err15 < 1e-3 * big);
  CHECK(err8 > 10 * err15);
  CHECK(err8 < 0.05 * big);
}

TEST_CASE("engine: a block's float output with ReLU and the quantizer after it",
          "[runtime][engine]") {
  // The trained models' block outputs (float map with ReLU, then the next block's quant_act; one
  // conv with a packed residual, one with a float one): the conv applies the training engine's
  // ReLU row by row in its epilogue, so the traced map has no negative, -0 or NaN value, and the
  // quant_act's codes are the scalar quantize_pack_act of that map.
  test::SyntheticGraph g = test::synthetic_graph();
  test::float_block_outputs(g);
  const rt::Model model =
      rt::Model::from_file(rt::parse_model("synthetic", rt::serialize_model(g.header, g.blobs)));
  auto blob = [&](const std::string& name) {
    for (const rt::BlobData& b : g.blobs)
      if (b.name == name) {
        std::vector<float> v(b.bytes.size() / sizeof(float));
        std::memcpy(v.data(), b.bytes.data(), b.bytes.size());
        return v;
      }
    FAIL("no blob " << name);
    return std::vector<float>{};
  };
  for (auto [h, w] : {std::pair{45, 61}, std::pair{64, 64}}) {
    INFO(h << "x" << w);
    Rng rng(uint64_t(h) * w + 7);
    const std::vector<float> img = test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
    std::map<std::string, rt::TracedTensor> traced;
    model.set_trace([&](const rt::TracedTensor& t) { traced[t.layer] = t; });
    std::vector<uint8_t> labels;
    model.run(img.data(), h, w, nullptr, &labels);
    for (const std::string block : {"layer1.0", "layer2.0"}) {
      INFO(block);
      const rt::TracedTensor &y = traced[block + ".conv2"], &q = traced[block + ".act"];
      REQUIRE(y.bits == 0);
      REQUIRE(y.values.size() == size_t(y.h) * y.w * y.c);
      CHECK(std::all_of(y.values.begin(), y.values.end(),
                        [](float v) { return v >= 0.0f && !std::signbit(v); }));
      CHECK(std::count(y.values.begin(), y.values.end(), 0.0f) > 0);  // the ReLU clipped some
      const int64_t pix = int64_t(y.h) * y.w;
      std::vector<uint64_t> packed(size_t(pix) * 2 * bit_words(y.c));
      const std::vector<float> mul = blob(block + ".act.mul"), add = blob(block + ".act.add");
      quantize_pack_act__ref(y.values.data(), pix, y.c, 2, mul.data(), add.data(), packed.data());
      std::vector<uint8_t> want(size_t(pix) * y.c);
      unpack_act_q(packed.data(), pix, y.c, 2, want.data());
      CHECK(q.codes == want);
      std::vector<int> seen(4, 0);
      for (uint8_t c : q.codes) ++seen[c];
      for (int l = 0; l < 4; ++l) CHECK(seen[size_t(l)] > 0);  // every level occurs
    }
  }
}

TEST_CASE("engine: downsample convs computed in their block's conv2 equal the stored ones",
          "[runtime][engine]") {
  // kResidualConv: the fused graph against the same graph with a second reader of every
  // downsample output (which keeps each a stored float map read as conv2's residual), bit for
  // bit; packed block outputs (the paper's graph) and float ones with ReLU (a trained model's),
  // odd sizes, 1 and 2 threads.
  for (bool float_blocks : {false, true}) {
    test::SyntheticGraph g = test::synthetic_graph();
    if (float_blocks) test::float_block_outputs(g);
    const rt::Model fused =
        rt::Model::from_file(rt::parse_model("fused", rt::serialize_model(g.header, g.blobs)));
    for (const std::string block : {"layer2.0", "layer3.0", "layer4.0"})
      test::add_downsample_reader(g.header, block);
    const rt::Model plain =
        rt::Model::from_file(rt::parse_model("plain", rt::serialize_model(g.header, g.blobs)));
    for (auto [h, w] : {std::pair{45, 61}, std::pair{64, 64}, std::pair{70, 33}})
      for (int threads : {1, 2}) {
        INFO(h << "x" << w << " threads " << threads << " float blocks " << float_blocks);
        Rng rng(uint64_t(h) * w + 11);
        const std::vector<float> img =
            test::random_tensor(Shape{3, h, w}, rng, 0.0f, 1.0f).to_vector();
        const int saved = omp_get_max_threads();
        omp_set_num_threads(threads);
        std::vector<float> la, lb;
        std::vector<uint8_t> ya, yb;
        fused.run(img.data(), h, w, &la, &ya);
        plain.run(img.data(), h, w, &lb, &yb);
        omp_set_num_threads(saved);
        REQUIRE(la.size() == size_t(5) * h * w);
        CHECK(std::memcmp(la.data(), lb.data(), la.size() * sizeof(float)) == 0);
        CHECK(ya == yb);
        CHECK(std::set<float>(la.begin(), la.end()).size() > 100);  // not a constant map
      }
  }
}
