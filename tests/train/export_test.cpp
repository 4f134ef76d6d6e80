// End to end: a randomly initialised W1A2 / W2A2 ResNet-18 FCN-8s (BN running stats set so every
// quantizer's levels are used) exported to .bfcn and run on the bit-conv runtime computes what
// the training engine's quantized eval forward computes: every activation code equal except at
// float rounding ties (summation order and BN folding differ, so a pre-quantizer value on a
// rounding boundary may flip one level), and with those replayed the same labels and logits up
// to float rounding; without a tie, >= 99.9 % equal labels as they are.
#include "train/export.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>

#include "autograd/quant.h"
#include "autograd/var.h"
#include "core/rng.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/conv.h"
#include "layers/export_graph.h"
#include "layers/model.h"
#include "runtime/engine.h"
#include "tests/support/calibrated_model.h"
#include "tests/support/test_support.h"
#include "train/calibrate.h"
#include "train/export_verify.h"

using namespace bfcn;

namespace {

// Sets BN running stats to the expected statistics of its conv's output (inputs: the normalised
// image for the stem, else uniform levels of the 2-bit quantizer), gamma ~0.3 and beta so that
// the following quantizer sees values spread over [0,1].
void spread_batch_norms(SegmentationModel& model, Rng& rng) {
  std::map<std::string, Module*> mods;
  for (const auto& [name, m] : model.named_modules()) mods[name] = m;
  for (const auto& [name, m] : mods) {
    auto* bn = dynamic_cast<BatchNorm2d*>(m);
    if (!bn) continue;
    std::string conv_name = name, suffix;
    if (name.size() >= 3 && name.compare(name.size() - 3, 3, "bn1") == 0)
      conv_name = name.substr(0, name.size() - 3) + "conv1";
    else if (name.size() >= 3 && name.compare(name.size() - 3, 3, "bn2") == 0)
      conv_name = name.substr(0, name.size() - 3) + "conv2";
    else
      conv_name = name.substr(0, name.size() - 1) + "0";  // downsample.1 -> downsample.0
    auto* conv = dynamic_cast<Conv2d*>(mods.at(conv_name));
    REQUIRE(conv);
    Tensor w = conv->weight().value();
    if (auto* q = dynamic_cast<QConv2d*>(conv)) w = quantize_weight_value(w, q->quant());
    const bool stem = conv_name == "conv1";
    const double in_mean = stem ? 0.0 : 0.5, in_var = stem ? 1.3 : 0.139;
    const int64_t oc = w.dim(0), per = w.numel() / oc;
    const float* wv = w.f32();
    float* mean = bn->running_mean().f32();
    float* var = bn->running_var().f32();
    float* gamma = bn->weight().mutable_value().f32();
    float* beta = bn->bias().mutable_value().f32();
    const bool bn2 = name.size() >= 3 && name.compare(name.size() - 3, 3, "bn2") == 0;
    for (int64_t o = 0; o < oc; ++o) {
      double s = 0, s2 = 0;
      for (int64_t i = 0; i < per; ++i) {
        s += wv[o * per + i];
        s2 += double(wv[o * per + i]) * wv[o * per + i];
      }
      mean[o] = float(in_mean * s);
      var[o] = float(in_var * s2 + 1e-6);
      gamma[o] = rng.uniform(0.2f, 0.35f);
      beta[o] = bn2 ? rng.uniform(-0.05f, 0.05f) : rng.uniform(0.4f, 0.6f);
    }
  }
}

struct Agreement {
  double label_agreement = 0, max_logit_diff = 0, mean_logit_diff = 0, logit_range = 0;
  EngineComparison codes;  // the same input, quantizer by quantizer (train/export_verify.h)
};

// What every export must show on an input: activation codes equal to the training engine's except
// at float rounding ties, and, with the runtime's codes replayed at those ties, the same labels
// and logits up to float rounding. Labels and logits as they are must agree too unless a tie
// flipped (one flipped code can cascade through an untrained random model, which is chaotic).
void check_agrees(const Agreement& a) {
  INFO(describe(a.codes));
  CHECK(a.logit_range > 0.5);  // the comparison is not vacuous
  CHECK(!a.codes.quantizers.empty());
  CHECK(a.codes.differ() == a.codes.ties());
  CHECK(a.codes.agreement_ties_resolved() >= 0.999);
  CHECK(a.codes.max_logit_diff_ties_resolved <= 1e-3 * a.logit_range);
  if (a.codes.ties() == 0) {
    CHECK(a.label_agreement >= 0.999);
    CHECK(a.mean_logit_diff <= 0.01 * a.logit_range);
  }
}

Agreement compare_model(SegmentationModel& model_ref, Rng& rng);

Agreement compare_engines(int w_bits, int a_bits, uint64_t seed,
                          const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json cfg = {
      {"backbone", "resnet18"},
      {"head", "fcn8s"},
      {"n_classes", 6},
      {"quant", {{"w_bits", w_bits}, {"a_bits", a_bits}, {"first_last_fp", true}}}};
  for (const auto& [k, v] : extra.items()) cfg["quant"][k] = v;
  auto model = build_model(cfg, seed);
  Rng rng(seed);
  spread_batch_norms(*model, rng);
  return compare_model(*model, rng);
}

// A model with precision-policy options, calibrated as the trainer does (learned clips from FP
// statistics, then BN re-estimation with the quantizers on) on random images, then compared on
// `images` random inputs (one Agreement each).
std::vector<Agreement> compare_policy(const nlohmann::json& quant, uint64_t seed, int images = 1) {
  Rng rng(seed);
  auto model = test::calibrated_model(quant, seed, rng, /*vary_clips=*/true);
  REQUIRE(model);
  std::vector<Agreement> out;
  for (int i = 0; i < images; ++i) out.push_back(compare_model(*model, rng));
  return out;
}

Agreement compare_model(SegmentationModel& model_ref, Rng& rng) {
  SegmentationModel* model = &model_ref;
  model->eval();
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  const int h = sanitized ? 40 : 72, w = sanitized ? 48 : 88;
  Tensor x = test::random_tensor(Shape{1, 3, h, w}, rng, -2.0f, 2.0f);
  Tensor ref;
  {
    NoGradGuard g;
    ref = model->forward(Var(x)).value();
  }
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  build_export(*model, nlohmann::json::object(), header, blobs);
  const rt::Model rtm =
      rt::Model::from_file(rt::parse_model("e2e.bfcn", rt::serialize_model(header, blobs)));
  std::vector<float> logits;
  std::vector<uint8_t> labels;
  rtm.run(x.f32(), h, w, &logits, &labels, /*normalize=*/false);
  const int nc = 6;
  const int64_t pix = int64_t(h) * w;
  REQUIRE(logits.size() == size_t(nc * pix));
  Agreement a;
  int64_t same = 0;
  float lo = 1e30f, hi = -1e30f;
  const float* r = ref.f32();
  for (int64_t p = 0; p < pix; ++p) {
    int best = 0;
    for (int c = 1; c < nc; ++c)
      if (r[c * pix + p] > r[best * pix + p]) best = c;
    same += best == labels[size_t(p)];
  }
  for (int64_t i = 0; i < nc * pix; ++i) {
    const double d = std::abs(double(r[i]) - logits[size_t(i)]);
    a.max_logit_diff = std::max(a.max_logit_diff, d);
    a.mean_logit_diff += d / double(nc * pix);
    lo = std::min(lo, r[i]);
    hi = std::max(hi, r[i]);
  }
  a.label_agreement = double(same) / double(pix);
  a.logit_range = hi - lo;
  compare_engines_on_image(*model, rtm, x, a.codes);
  return a;
}

// An ExportGraph that records the steps modules describe, one line each (no format involved).
struct RecordingGraph : ExportGraph {
  std::vector<std::string> steps;
  int act_bits(const std::string&, const Module& act) const override {
    const auto* q = dynamic_cast<const QuantAct*>(&act);
    return q && q->a_bits() < 32 ? q->a_bits() : 0;
  }
  float act_clip(const Module& act) const override {
    const auto* q = dynamic_cast<const QuantAct*>(&act);
    return q ? q->clip_value() : 1.0f;
  }
  void conv(const ExportConv& c) override {
    steps.push_back("conv " + c.name + " " + c.in + (c.residual.empty() ? "" : "+" + c.residual) +
                    " -> " + c.out + " bits " + std::to_string(c.out_bits) + (c.bn ? " bn" : "") +
                    (c.relu ? " relu" : ""));
  }
  void conv_f32(const ExportConv& c) override {
    steps.push_back("conv_f32 " + c.name + " " + c.in + " -> " + c.out + (c.bn ? " bn" : ""));
  }
  void quant_act(const std::string& name, const std::string& in, const std::string& out, int bits,
                 float) override {
    steps.push_back("quant_act " + name + " " + in + " -> " + out + " bits " +
                    std::to_string(bits));
  }
  void maxpool(const std::string& name, const MaxPool2d&, const std::string& in,
               const std::string& out) override {
    steps.push_back("maxpool " + name + " " + in + " -> " + out);
  }
  void add(const std::string& name, const std::string& a, const std::string& b,
           const std::string& out) override {
    steps.push_back("add " + name + " " + a + "+" + b + " -> " + out);
  }
  void upsample(const std::string& name, const std::string& in, const std::string& size_of,
                const std::string& out) override {
    steps.push_back("upsample " + name + " " + in + " to " + size_of + " -> " + out);
  }
};

}  // namespace

TEST_CASE("modules describe themselves for export; a block without a description is an error",
          "[train][export]") {
  Rng rng(1);
  const QuantConfig q = QuantConfig::from_json({{"w_bits", 1}, {"a_bits", 2}}, "quant");
  BasicBlock down(64, 128, 2, 1, "layer2.0.", q, rng);
  RecordingGraph g;
  CHECK(down.export_to(g, "layer2.0", "x") == "layer2.0");
  const std::vector<std::string> block = {
      "conv layer2.0.conv1 x -> layer2.0.conv1 bits 2 bn",
      "conv layer2.0.downsample.0 x -> layer2.0.downsample bits 0 bn",
      "conv layer2.0.conv2 layer2.0.conv1+layer2.0.downsample -> layer2.0 bits 2 bn"};
  CHECK(g.steps == block);
  // Bi-Real residual: act_in quantizes the block input, the sum stays float (relu).
  const QuantConfig fp_res =
      QuantConfig::from_json({{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}}, "quant");
  BasicBlock same(64, 64, 1, 1, "layer1.1.", fp_res, rng);
  RecordingGraph gf;
  same.export_to(gf, "layer1.1", "x");
  const std::vector<std::string> fp_block = {
      "quant_act layer1.1.act_in x -> layer1.1.in bits 2",
      "conv layer1.1.conv1 layer1.1.in -> layer1.1.conv1 bits 2 bn",
      "conv layer1.1.conv2 layer1.1.conv1+x -> layer1.1 bits 0 bn relu"};
  CHECK(gf.steps == fp_block);
  Bottleneck bottleneck(64, 16, 1, 1, "layer1.0.", q, rng);
  CHECK_THROWS_WITH(bottleneck.export_to(g, "layer1.0", "x"),
                    Catch::Contains("'layer1.0'") && Catch::Contains("Bottleneck"));

  // The whole network: stem, the 8 blocks in order, then the fcn8s head.
  auto model = build_model({{"backbone", "resnet18"},
                            {"head", "fcn8s"},
                            {"n_classes", 3},
                            {"quant", {{"w_bits", 1}, {"a_bits", 2}}}},
                           1);
  RecordingGraph mg;
  CHECK(model->export_to(mg, "image") == "logits");
  REQUIRE(mg.steps.size() == 3 + 8 * 2 + 3 + 8);
  CHECK(mg.steps[0] == "conv_f32 conv1 image -> conv1 bn");
  CHECK(mg.steps[1] == "maxpool maxpool conv1 -> pool");
  CHECK(mg.steps[2] == "quant_act act1 pool -> stem bits 2");
  CHECK(mg.steps[3] == "conv layer1.0.conv1 stem -> layer1.0.conv1 bits 2 bn");
  CHECK(mg.steps[8] == "conv layer2.0.downsample.0 layer1.1 -> layer2.0.downsample bits 0 bn");
  const std::vector<std::string> want_head = {"conv_f32 score_layer4 layer4.1 -> score4",
                                              "conv_f32 score_layer3 layer3.1 -> score3",
                                              "upsample up4 score4 to score3 -> up4",
                                              "add fuse3 up4+score3 -> fuse3",
                                              "conv_f32 score_layer2 layer2.1 -> score2",
                                              "upsample up3 fuse3 to score2 -> up3",
                                              "add fuse2 up3+score2 -> fuse2",
                                              "upsample logits fuse2 to image -> logits"};
  CHECK(std::vector<std::string>(mg.steps.end() - 8, mg.steps.end()) == want_head);
}

TEST_CASE("exported W1A2 and W2A2 models agree with the training engine", "[train][export]") {
  for (auto [wb, ab] : {std::pair{1, 2}, std::pair{2, 2}}) {
    const Agreement a = compare_engines(wb, ab, 17);
    INFO("W" << wb << "A" << ab << ": label agreement " << a.label_agreement
             << ", max |logit diff| " << a.max_logit_diff << ", mean " << a.mean_logit_diff
             << ", logit range " << a.logit_range);
    WARN("W" << wb << "A" << ab << ": label agreement " << a.label_agreement
             << ", max |logit diff| " << a.max_logit_diff << ", mean " << a.mean_logit_diff
             << ", logit range " << a.logit_range);
    check_agrees(a);
  }
}

TEST_CASE("every graph-changing precision option exports and agrees with the training engine",
          "[train][export]") {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"fp residual", {{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}}},
      {"learned clip", {{"w_bits", 1}, {"a_bits", 2}, {"act_clip", "learned"}}},
      {"downsample fp32", {{"w_bits", 1}, {"a_bits", 2}, {"downsample", "fp32"}}},
      {"fp residual + fp32 downsample + learned clip",
       {{"w_bits", 1},
        {"a_bits", 2},
        {"residual", "fp"},
        {"downsample", "fp32"},
        {"act_clip", "learned"}}},
      {"fp residual + bit downsample (reads the quantized input)",
       {{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}, {"act_clip", "learned"}}},
      // Symmetric 8-bit weights (conv_f32 with the training forward's exact values).
      {"downsample w8", {{"w_bits", 1}, {"a_bits", 2}, {"downsample", "w8"}}},
      {"score w8", {{"w_bits", 1}, {"a_bits", 2}, {"score", "w8"}}},
      // Statistics-scaled 2-bit weights: DoReFa's bit planes, a_o in each channel's multiplier.
      {"W2A2 scaled weights", {{"w_bits", 2}, {"a_bits", 2}, {"w_quantizer", "scaled"}}},
      {"W2A2 scaled weights + the recipe (fp residual, fp32 downsample, learned clip)",
       {{"w_bits", 2},
        {"a_bits", 2},
        {"w_quantizer", "scaled"},
        {"residual", "fp"},
        {"downsample", "fp32"},
        {"act_clip", "learned"}}},
      {"fp residual + w8 downsample (reads the FP stream) + w8 score + learned clip",
       {{"w_bits", 1},
        {"a_bits", 2},
        {"residual", "fp"},
        {"downsample", "w8"},
        {"score", "w8"},
        {"act_clip", "learned"}}},
  };
  for (const auto& [name, q] : cases) {
    const Agreement a = compare_policy(q, 23)[0];
    INFO(name << ": label agreement " << a.label_agreement << ", max |logit diff| "
              << a.max_logit_diff << ", mean " << a.mean_logit_diff << ", logit range "
              << a.logit_range);
    check_agrees(a);
  }
}

// With the FP residual stream and DoReFa's fixed clip at 1, an untrained random model's stream
// grows to ~10 while every act_in clips at 1: the network is chaotic, and one activation whose
// scaled value lands within float rounding of a level boundary (x*3 = 2.5000026 in one engine,
// 2.4999997 in the other: FMA/summation order) flips one code, which cascades into a few percent
// of the labels (seed 17: 2 of 6 inputs). Compared code by code, every difference is such a tie
// and, replayed, the engines agree; a real export bug (a wrong scale, a misread tensor) leaves
// codes that differ away from any tie.
TEST_CASE("fp residual with fixed clips and a bit downsample agrees except at rounding ties",
          "[train][export]") {
  for (uint64_t seed : {17, 5}) {
    const auto runs = compare_policy({{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}}, seed, 6);
    for (size_t i = 0; i < runs.size(); ++i) {
      const Agreement& a = runs[i];
      INFO("seed " << seed << " input " << i << ": label agreement " << a.label_agreement
                   << ", max |logit diff| " << a.max_logit_diff << ", logit range "
                   << a.logit_range);
      check_agrees(a);
    }
  }
}

TEST_CASE("w8 score convs export the training forward's weight values bit for bit",
          "[train][export]") {
  auto model = build_model({{"backbone", "resnet18"},
                            {"head", "fcn8s"},
                            {"n_classes", 3},
                            {"quant", {{"w_bits", 1}, {"a_bits", 2}, {"score", "w8"}}}},
                           3);
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  build_export(*model, nlohmann::json::object(), header, blobs);
  for (const auto& [name, m] : model->named_modules()) {
    if (name.rfind("score_layer", 0) != 0) continue;
    const auto* q = dynamic_cast<QConv2d*>(m);
    REQUIRE(q);
    CHECK(q->quant().w_bits == 8);
    CHECK(q->quant().w_symmetric);
    Tensor want;
    {
      NoGradGuard g;
      want = q->quantized_weight().value();  // what the training forward convolves with
    }
    // A 1x1 score conv has no BN and reads a fixed-clip (unit 1) tensor, so the blob [oc][c] is
    // the quantized weight itself.
    const auto it = std::find_if(blobs.begin(), blobs.end(),
                                 [&](const rt::BlobData& b) { return b.name == name + ".weight"; });
    REQUIRE(it != blobs.end());
    REQUIRE(it->bytes.size() == size_t(want.numel()) * 4);
    std::vector<float> got(size_t(want.numel()));
    std::memcpy(got.data(), it->bytes.data(), it->bytes.size());
    INFO(name);
    CHECK(got == want.to_vector());
    std::set<float> levels(got.begin(), got.end());
    CHECK(levels.size() > 20);  // 8-bit levels, not 1-bit
  }
  std::string types;
  for (const auto& l : header["layers"])
    if (l["name"].get<std::string>().rfind("score_layer", 0) == 0)
      types += l["type"].get<std::string>() + " ";
  CHECK(types == "conv_f32 conv_f32 conv_f32 ");
}

TEST_CASE("export rejects models the runtime cannot run", "[train][export]") {
  const nlohmann::json cfg = {{"backbone", "resnet50"},
                              {"head", "fcn8s"},
                              {"n_classes", 3},
                              {"quant", {{"w_bits", 1}, {"a_bits", 2}}}};
  auto model = build_model(cfg, 1);
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  CHECK_THROWS_WITH(build_export(*model, nlohmann::json::object(), header, blobs),
                    Catch::Contains("resnet50"));
  const nlohmann::json fp = {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 3}};
  auto fp_model = build_model(fp, 1);
  CHECK_THROWS_WITH(build_export(*fp_model, nlohmann::json::object(), header, blobs),
                    Catch::Contains("quantized activations"));
}
