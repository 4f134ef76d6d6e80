// compare_engines_on_image (bfcn export --verify): on calibrated random models the runtime's
// activation codes equal the training engine's except at rounding ties, every quantized
// activation is compared, and a wrong multiplier in the file is caught and located.
#include "train/export_verify.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <string>

#include "autograd/var.h"
#include "core/rng.h"
#include "layers/activation.h"
#include "layers/batch_norm.h"
#include "layers/model.h"
#include "runtime/engine.h"
#include "tests/support/calibrated_model.h"
#include "tests/support/test_support.h"
#include "train/calibrate.h"
#include "train/export.h"

using namespace bfcn;

namespace {

std::shared_ptr<SegmentationModel> calibrated_model(const nlohmann::json& quant, uint64_t seed) {
  Rng rng(seed);
  auto model = test::calibrated_model(quant, seed, rng);
  REQUIRE(model);
  return model;
}

rt::Model exported(const SegmentationModel& model, nlohmann::json* header_out = nullptr,
                   void (*edit)(nlohmann::json&, std::vector<rt::BlobData>&) = nullptr) {
  nlohmann::json header;
  std::vector<rt::BlobData> blobs;
  build_export(model, nlohmann::json::object(), header, blobs);
  if (edit) edit(header, blobs);
  if (header_out) *header_out = header;
  return rt::Model::from_file(rt::parse_model("v.bfcn", rt::serialize_model(header, blobs)));
}

int quantized_acts(SegmentationModel& model) {
  int n = 0;
  for (const auto& [name, m] : model.named_modules())
    if (auto* q = dynamic_cast<QuantAct*>(m); q && q->a_bits() < 32) ++n;
  return n;
}

EngineComparison compare(SegmentationModel& model, const rt::Model& rtm, uint64_t seed,
                         int images) {
  Rng rng(seed + 100);
  const bool sanitized = std::getenv("BFCN_SANITIZED") != nullptr;
  const int h = sanitized ? 40 : 72, w = sanitized ? 48 : 88;
  EngineComparison c;
  for (int i = 0; i < images; ++i)
    compare_engines_on_image(model, rtm, test::random_tensor(Shape{1, 3, h, w}, rng, -2.0f, 2.0f),
                             c);
  return c;
}

}  // namespace

TEST_CASE("export verify: codes differ only at rounding ties, every quantizer compared",
          "[train][export]") {
  const std::vector<std::pair<std::string, nlohmann::json>> cases = {
      {"W1A2 paper", {{"w_bits", 1}, {"a_bits", 2}, {"first_last_fp", true}}},
      {"W2A2 recipe (scaled weights, fp residual, fp32 downsample, learned clip)",
       {{"w_bits", 2},
        {"a_bits", 2},
        {"w_quantizer", "scaled"},
        {"residual", "fp"},
        {"downsample", "fp32"},
        {"act_clip", "learned"}}},
      // The chaotic case of tests/train/export_test.cpp: its label flips are ties too.
      {"fp residual, fixed clip, bit downsample",
       {{"w_bits", 1}, {"a_bits", 2}, {"residual", "fp"}}},
  };
  for (const auto& [name, q] : cases) {
    auto model = calibrated_model(q, 17);
    const rt::Model rtm = exported(*model);
    const EngineComparison c = compare(*model, rtm, 17, 3);
    INFO(name << ":\n" << describe(c));
    CHECK(c.images == 3);
    CHECK(int(c.quantizers.size()) == quantized_acts(*model));
    CHECK(c.codes() > 0);
    CHECK(c.differ() == c.ties());
    CHECK(c.first_non_tie.empty());
    CHECK(c.agreement_ties_resolved() >= c.agreement());
    CHECK(c.agreement_ties_resolved() >= 0.9999);
    for (const QuantizerCodes& qc : c.quantizers) {
      INFO(qc.quantizer << " in layer " << qc.layer);
      CHECK(qc.codes > 0);
    }
  }
}

TEST_CASE("export verify: a wrong channel multiplier is reported where it is, not as a tie",
          "[train][export]") {
  auto model = calibrated_model({{"w_bits", 1}, {"a_bits", 2}}, 23);
  const rt::Model good = exported(*model);
  const EngineComparison ok = compare(*model, good, 23, 1);
  INFO(describe(ok));
  REQUIRE(ok.differ() == ok.ties());
  // layer2.0.conv1's channel multipliers scaled by 1.7: its codes move far from any tie.
  const rt::Model bad =
      exported(*model, nullptr, [](nlohmann::json&, std::vector<rt::BlobData>& b) {
        for (rt::BlobData& blob : b)
          if (blob.name == "layer2.0.conv1.mul") {
            for (size_t at = 0; at + sizeof(float) <= blob.bytes.size(); at += sizeof(float)) {
              float v;
              std::memcpy(&v, blob.bytes.data() + at, sizeof v);
              v *= 1.7f;
              std::memcpy(blob.bytes.data() + at, &v, sizeof v);
            }
          }
      });
  const EngineComparison c = compare(*model, bad, 23, 1);
  INFO(describe(c));
  CHECK(c.differ() > c.ties());
  CHECK(c.first_non_tie.find("layer2.0.conv1") != std::string::npos);
  CHECK(describe(c).find("not ties") != std::string::npos);
  // Earlier quantizers still agree (the comparison localises the fault).
  for (const QuantizerCodes& qc : c.quantizers) {
    if (qc.layer.rfind("layer2.0.conv1", 0) == 0) break;
    INFO(qc.layer);
    CHECK(qc.differ == qc.ties);
  }
}

TEST_CASE("export verify: a file without quantizer names compares labels only", "[train][export]") {
  auto model = calibrated_model({{"w_bits", 1}, {"a_bits", 2}}, 5);
  Rng rng(9);
  const Tensor x = test::random_tensor(Shape{1, 3, 40, 48}, rng, -2.0f, 2.0f);
  Tensor before;
  {
    NoGradGuard g;
    before = model->forward(Var(x)).value().clone();
  }
  const rt::Model old =
      exported(*model, nullptr, [](nlohmann::json& h, std::vector<rt::BlobData>&) {
        for (auto& L : h["layers"]) L.erase("quantizer");
      });
  const EngineComparison c = compare(*model, old, 5, 1);
  CHECK(c.quantizers.empty());
  CHECK(c.pixels > 0);
  CHECK(describe(c).find("not compared") != std::string::npos);
  // The observers are gone afterwards: the model computes what it computed before.
  const rt::Model with_names = exported(*model);
  (void)compare(*model, with_names, 5, 1);
  NoGradGuard g;
  CHECK(model->forward(Var(x)).value().to_vector() == before.to_vector());
}
