// QuantConfig: defaults, per-layer overrides by exact name or dotted prefix (longest wins per
// field), first_last_fp, round trip, and the exact ConfigError messages for bad input.
#include "layers/quant_config.h"

#include "core/error.h"
#include "layers/activation.h"
#include "layers/conv.h"
#include "layers/model.h"
#include "layers/resnet.h"
#include "tests/support/test_support.h"

using namespace bfcn;
using nlohmann::json;

namespace {
std::string error_of(const json& j) {
  try {
    QuantConfig::from_json(j, "model.quant");
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no error";
}
}  // namespace

TEST_CASE("quant config: bad values give exact messages", "[layers][config]") {
  CHECK(error_of({{"w_bits", 0}}) == "model.quant.w_bits: expected 1..8 or 32, but got 0");
  CHECK(error_of({{"a_bits", 9}}) == "model.quant.a_bits: expected 1..8 or 32, but got 9");
  CHECK(error_of({{"g_bits", 16}}) == "model.quant.g_bits: expected 1..8 or 32, but got 16");
  CHECK(error_of({{"w_scale", "foo"}}) ==
        "model.quant.w_scale: expected one of layer, channel, but got 'foo'");
  CHECK(error_of({{"w_bit", 1}}) ==
        "model.quant.w_bit: unknown key; did you mean 'w_bits'? (known: w_bits, a_bits, g_bits, "
        "w_scale, first_last_fp, overrides, residual, downsample, score, act_clip, w_quantizer)");
  CHECK(error_of({{"w_quantizer", "lsq"}}) ==
        "model.quant.w_quantizer: expected one of dorefa, scaled, but got 'lsq'");
  CHECK(error_of({{"residual", "float"}}) ==
        "model.quant.residual: expected one of quantized, fp, but got 'float'");
  CHECK(error_of({{"act_clip", 1}}) ==
        "model.quant.act_clip: expected one of fixed, learned, but got an integer (1)");
  CHECK(error_of({{"w_bits", "1"}}) ==
        "model.quant.w_bits: expected an integer, but got a string (\"1\")");
  CHECK(error_of({{"w_bits", 1.5}}) ==
        "model.quant.w_bits: expected an integer, but got a number (1.5)");
  CHECK(error_of({{"first_last_fp", 1}}) ==
        "model.quant.first_last_fp: expected a boolean, but got an integer (1)");
  CHECK(error_of(json::array()) ==
        "model.quant: expected an object like {\"w_bits\": 1, \"a_bits\": 2}, but got an array "
        "([])");
  CHECK(error_of({{"overrides", {{"layer2.0.conv1", {{"w_bits", 0}}}}}}) ==
        "model.quant.overrides.layer2.0.conv1.w_bits: expected 1..8 or 32, but got 0");
  CHECK(error_of({{"overrides", {{"layer4", {{"a_bit", 2}}}}}}) ==
        "model.quant.overrides.layer4.a_bit: unknown key; did you mean 'a_bits'? (known: w_bits, "
        "a_bits, g_bits, w_scale)");
  CHECK(error_of({{"overrides", {{"layer4", 2}}}}) ==
        "model.quant.overrides.layer4: expected an object with w_bits, a_bits, g_bits or w_scale, "
        "but got an integer (2)");
  CHECK(error_of({{"overrides", {{"layer4", {{"w_scale", "per"}}}}}}) ==
        "model.quant.overrides.layer4.w_scale: expected one of layer, channel, but got 'per'");
  CHECK(error_of({{"overrides", 3}}) ==
        "model.quant.overrides: expected an object, but got an integer (3)");
}

TEST_CASE("quant config: defaults, first_last_fp and overrides by prefix", "[layers][config]") {
  const QuantConfig fp;
  CHECK(fp.spec_for("anything") == QuantSpec{});
  CHECK(fp.first_last_fp());

  const json j = json::parse(R"({"w_bits": 1, "a_bits": 2, "w_scale": "layer",
      "first_last_fp": false,
      "overrides": {"layer4": {"w_bits": 2}, "layer4.1": {"a_bits": 4, "w_scale": "channel"},
                    "layer2.0.conv1": {"a_bits": 4}, "classifier": {"w_bits": 32, "a_bits": 32}}})");
  const QuantConfig c = QuantConfig::from_json(j, "model.quant");
  CHECK_FALSE(c.first_last_fp());
  CHECK(c.default_spec() == QuantSpec{1, 2, 32, false});
  CHECK(c.spec_for("layer1.0.conv1") == QuantSpec{1, 2, 32, false});
  CHECK(c.spec_for("layer2.0.conv1") == QuantSpec{1, 4, 32, false});
  CHECK(c.spec_for("layer2.0.conv2") == QuantSpec{1, 2, 32, false});
  CHECK(c.spec_for("layer4") == QuantSpec{2, 2, 32, false});
  CHECK(c.spec_for("layer4.0.conv1") == QuantSpec{2, 2, 32, false});
  // "layer4" and "layer4.1" both match: the longer one wins the fields it sets.
  CHECK(c.spec_for("layer4.1.conv2") == QuantSpec{2, 4, 32, true});
  // A prefix matches only at a dot: "layer4" does not cover "layer40" or "layer4x".
  CHECK(c.spec_for("layer40.conv") == QuantSpec{1, 2, 32, false});
  CHECK(c.spec_for("layer4x") == QuantSpec{1, 2, 32, false});
  CHECK(c.spec_for("classifier") == QuantSpec{32, 32, 32, false});
  CHECK(c.override_keys() ==
        std::vector<std::string>{"classifier", "layer2.0.conv1", "layer4", "layer4.1"});

  CHECK_NOTHROW(c.check_overrides_match(
      {"conv1", "layer2.0.conv1", "layer4.0.conv1", "layer4.1.conv1", "classifier"}));
  try {
    c.check_overrides_match({"conv1", "layer4.0.conv1", "layer4.1.conv1", "classifier"});
    FAIL("expected a ConfigError");
  } catch (const ConfigError& e) {
    CHECK(std::string(e.what()) == "model.quant.overrides: key 'layer2.0.conv1' matches no layer");
  }

  // Round trip through to_json.
  const QuantConfig back = QuantConfig::from_json(c.to_json(), "x");
  CHECK(back.to_json() == c.to_json());
  for (const char* n : {"layer1.0.conv1", "layer2.0.conv1", "layer4.1.conv2", "classifier"})
    CHECK(back.spec_for(n) == c.spec_for(n));
  CHECK(c.to_json()["w_scale"] == "layer");
  CHECK(c.to_json()["overrides"]["layer4.1"]["w_scale"] == "channel");
}

TEST_CASE("precision policies: fp residual stream, downsample/score bits, learned clips",
          "[layers][config]") {
  const nlohmann::json base = {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 5}};
  auto with = [&](nlohmann::json q) {
    nlohmann::json c = base;
    c["quant"] = std::move(q);
    return build_model(c, 1);
  };
  auto find = [](const SegmentationModel& m, const std::string& name) -> Module* {
    for (const auto& [n, mod] : m.named_modules())
      if (n == name) return mod;
    return nullptr;
  };
  // Paper recipe: 2-bit stream (act2 quantizes), quantized downsample, no act_in, no clips.
  auto paper = with({{"w_bits", 1}, {"a_bits", 2}});
  CHECK(dynamic_cast<QuantAct*>(find(*paper, "layer1.0.act2")));
  CHECK(find(*paper, "layer1.0.act_in") == nullptr);
  CHECK(dynamic_cast<QConv2d*>(find(*paper, "layer2.0.downsample.0"))->quant().w_bits == 1);
  for (const auto& [n, p] : paper->named_parameters()) CHECK(n.find("clip") == std::string::npos);
  // fp residual: act_in quantizes, act2 and the stem act1 are ReLUs.
  auto fp = with({{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}, {"downsample", "fp32"}});
  CHECK(dynamic_cast<QuantAct*>(find(*fp, "layer1.0.act_in")));
  CHECK(dynamic_cast<ReLU*>(find(*fp, "layer1.0.act2")));
  CHECK(dynamic_cast<ReLU*>(find(*fp, "act1")));
  CHECK(dynamic_cast<QConv2d*>(find(*fp, "layer2.0.downsample.0")) == nullptr);
  CHECK(dynamic_cast<BasicBlock*>(find(*fp, "layer2.0"))->downsample_reads_fp);
  // 8-bit downsample and score convs; learned clips on every quantizer.
  auto w8 = with({{"w_bits", 1},
                  {"a_bits", 2},
                  {"downsample", "w8"},
                  {"score", "w8"},
                  {"act_clip", "learned"}});
  CHECK(dynamic_cast<QConv2d*>(find(*w8, "layer3.0.downsample.0"))->quant().w_bits == 8);
  CHECK(dynamic_cast<QConv2d*>(find(*w8, "score_layer2"))->quant().w_bits == 8);
  // w8 is the symmetric max-scaled quantizer (scale kept), not DoReFa's [-1,1] fw.
  CHECK(dynamic_cast<QConv2d*>(find(*w8, "layer3.0.downsample.0"))->quant().w_symmetric);
  CHECK(dynamic_cast<QConv2d*>(find(*w8, "score_layer2"))->quant().w_symmetric);
  CHECK_FALSE(dynamic_cast<QConv2d*>(find(*w8, "layer3.0.conv1"))->quant().w_symmetric);
  CHECK(dynamic_cast<QuantAct*>(find(*w8, "layer1.0.act1"))->learned_clip());
  int clips = 0;
  for (const auto& [n, p] : w8->named_parameters()) clips += n.find(".clip") != std::string::npos;
  CHECK(clips == 1 + 8 * 2);  // stem act1 + act1/act2 of 8 blocks
  // The resolved config round-trips the policy keys (and omits them at their defaults).
  const auto j =
      QuantConfig::from_json({{"residual", "fp"}, {"act_clip", "learned"}}, "q").to_json();
  CHECK(j.at("residual") == "fp");
  CHECK(j.at("act_clip") == "learned");
  CHECK_FALSE(j.contains("downsample"));
  CHECK_FALSE(j.contains("w_quantizer"));
  // "w_quantizer": "scaled" reaches every layer's spec (the downsample and head convs included)
  // and round-trips.
  auto sc = with({{"w_bits", 2}, {"a_bits", 2}, {"w_quantizer", "scaled"}});
  CHECK(dynamic_cast<QConv2d*>(find(*sc, "layer3.0.conv1"))->quant().w_scaled);
  CHECK(dynamic_cast<QConv2d*>(find(*sc, "layer3.0.downsample.0"))->quant().w_scaled);
  CHECK_FALSE(dynamic_cast<QConv2d*>(find(*w8, "layer3.0.conv1"))->quant().w_scaled);
  CHECK(QuantConfig::from_json({{"w_quantizer", "scaled"}}, "q").to_json().at("w_quantizer") ==
        "scaled");
}
