// `bfcn summary`: runs on every shipped config; the FCN8s-ResNet18 MAC total at 512x512 equals a
// hand count; the bit-conv share and errors of the command.
#include <catch2/catch.hpp>
#include <fstream>

#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/config.h"

namespace bfcn {
namespace {

using nlohmann::json;
namespace fs = std::filesystem;

// FCN-8s on ResNet-18 at 512x512 (output stride 32), counted by hand: conv MACs = Ho*Wo*K*C*kh*kw.
int64_t hand_count_fcn8s_r18_512(int64_t n_classes) {
  int64_t m = 0;
  m += 256LL * 256 * 64 * 3 * 7 * 7;     // conv1 7x7/2 → 256x256
  m += 4 * (128LL * 128 * 64 * 64 * 9);  // layer1: 4 convs 3x3 64→64 at 128x128
  m += 64LL * 64 * 128 * 64 * 9;         // layer2.0.conv1 3x3/2 64→128 at 64x64
  m += 3 * (64LL * 64 * 128 * 128 * 9);  // layer2: 3 more convs 128→128
  m += 64LL * 64 * 128 * 64;             // layer2.0.downsample 1x1/2
  m += 32LL * 32 * 256 * 128 * 9;        // layer3.0.conv1 at 32x32
  m += 3 * (32LL * 32 * 256 * 256 * 9);  // layer3: 3 more
  m += 32LL * 32 * 256 * 128;            // layer3.0.downsample
  m += 16LL * 16 * 512 * 256 * 9;        // layer4.0.conv1 at 16x16
  m += 3 * (16LL * 16 * 512 * 512 * 9);  // layer4: 3 more
  m += 16LL * 16 * 512 * 256;            // layer4.0.downsample
  m += 16LL * 16 * n_classes * 512;      // score_layer4
  m += 32LL * 32 * n_classes * 256;      // score_layer3
  m += 64LL * 64 * n_classes * 128;      // score_layer2
  return m;
}

std::vector<fs::path> shipped_configs() {
  std::vector<fs::path> v;
  for (const auto& e : fs::directory_iterator(test::source_dir() / "configs"))
    if (e.path().extension() == ".json") v.push_back(e.path());
  std::sort(v.begin(), v.end());
  return v;
}

}  // namespace

TEST_CASE("summary: FCN8s-ResNet18 MACs at 512x512 equal the hand count", "[models][summary]") {
  for (int ncls : {21, 19}) {
    auto m = build_model(json{{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", ncls}}, 0);
    SummaryTotals t = summary_totals(m->summary(512, 512));
    CHECK(t.macs == hand_count_fcn8s_r18_512(ncls));
    CHECK(t.params == m->parameter_count());
    CHECK(t.bit_macs == 0);  // FP32: no bit convs
  }
  // W1A2 with first/last FP: every conv but conv1 and the score convs is a bit conv.
  auto q = build_model(json{{"backbone", "resnet18"},
                            {"head", "fcn8s"},
                            {"n_classes", 21},
                            {"quant", {{"w_bits", 1}, {"a_bits", 2}}}},
                       0);
  SummaryTotals t = summary_totals(q->summary(512, 512));
  const int64_t fp = 256LL * 256 * 64 * 3 * 49 + 16LL * 16 * 21 * 512 + 32LL * 32 * 21 * 256 +
                     64LL * 64 * 21 * 128;
  CHECK(t.bit_macs == hand_count_fcn8s_r18_512(21) - fp);
}

TEST_CASE("summary: bfcn summary runs on every shipped config", "[models][summary]") {
  test::TempDir dir("bfcn_summary");
  std::vector<fs::path> configs = shipped_configs();
  REQUIRE(configs.size() >= 6);
  for (const fs::path& c : configs) {
    INFO(c.string());
    const fs::path out = dir / (c.stem().string() + ".json");
    test::RunResult r = test::run_command(test::bfcn_binary().string() + " summary --config " +
                                          c.string() + " --input 512x512 --json " + out.string());
    INFO(r.output);
    REQUIRE(r.status == 0);
    CHECK_THAT(r.output, Catch::Contains("layer4.1.conv2") && Catch::Contains("total params"));
    json j = load_json_file(out);
    CHECK(j["layers"].size() > 50);
    const json& m = j["model"];
    if (m["backbone"] == "resnet18" && m["head"] == "fcn8s" && m["output_stride"] == 32 &&
        m["in_channels"] == 3)
      CHECK(j["total_macs"].get<int64_t>() ==
            hand_count_fcn8s_r18_512(j["model"]["n_classes"].get<int64_t>()));
  }
}

TEST_CASE("summary: bare model sections, input sizes and errors", "[models][summary]") {
  test::TempDir dir("bfcn_summary");
  {
    std::ofstream(dir / "bare.json")
        << R"({"backbone": "resnet50", "head": "dilated", "n_classes": 19})";
    std::ofstream(dir / "bad.json")
        << R"({"model": {"backbone": "resnet19", "head": "fcn8s", "n_classes": 21}, "data": {}})";
  }
  const std::string bin = test::bfcn_binary().string();
  test::RunResult r = test::run_command(bin + " summary --config " + (dir / "bare.json").string() +
                                        " --input 256x128");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("resnet50 + dilated") && Catch::Contains("[1,19,256,128]") &&
                           Catch::Contains("[1,2048,32,16]"));
  r = test::run_command(bin + " summary --config " + (dir / "bad.json").string());
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("bad.json: model.backbone: expected one of resnet18"));
  r = test::run_command(bin + " summary --config " + (dir / "none.json").string());
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("none.json"));
  r = test::run_command(bin + " summary --config " + (dir / "bare.json").string() + " --input 0x5");
  CHECK(r.status == 1);
}

}  // namespace bfcn
