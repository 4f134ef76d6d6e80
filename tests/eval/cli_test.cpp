// `bfcn eval` end to end through the binary: prediction-folder mode writes the table, JSON and
// markdown; flag misuse and bad inputs exit 1 with a one-line reason.
#include <fstream>
#include <nlohmann/json.hpp>

#include "datasets/image_io.h"
#include "tests/support/test_support.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

void write_labels(const fs::path& f, const std::vector<uint8_t>& v) {
  fs::create_directories(f.parent_path());
  Palette pal = voc_palette();
  write_label_png(f, v.data(), 2, 3, &pal);
}

std::string eval_cmd(const std::string& flags) {
  return test::bfcn_binary().string() + " eval " + flags;
}

}  // namespace

TEST_CASE("cli: bfcn eval --pred-dir prints the table and writes JSON and markdown", "[eval]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_eval_cli");
  write_labels(tmp / "gt/a.png", {0, 0, 15, 15, 15, 255});
  write_labels(tmp / "pred/a.png", {0, 15, 15, 15, 15, 0});
  auto r = test::run_command(eval_cmd("--pred-dir " + (tmp / "pred").string() + " --gt-dir " +
                                      (tmp / "gt").string() + " --dataset voc --json " +
                                      (tmp / "m.json").string() + " --markdown " +
                                      (tmp / "m.md").string()));
  INFO(r.output);
  REQUIRE(r.status == 0);
  REQUIRE_THAT(r.output, Catch::Contains("person") && Catch::Contains("mIoU"));
  std::ifstream jf(tmp / "m.json");
  nlohmann::json j = nlohmann::json::parse(jf);
  // background: tp 1, GT 2, pred 1 → 1/2; person: tp 3, GT 3, pred 4 → 3/4.
  REQUIRE(j["miou"].get<double>() == Approx((0.5 + 0.75) / 2));
  REQUIRE(j["per_class_iou"]["person"].get<double>() == Approx(0.75));
  REQUIRE(j["per_class_iou"]["dog"].is_null());
  REQUIRE(j["n_images"] == 1);
  REQUIRE(j["mode"] == "pred-dir");
  std::ifstream mf(tmp / "m.md");
  std::string md((std::istreambuf_iterator<char>(mf)), std::istreambuf_iterator<char>());
  REQUIRE_THAT(md, Catch::Contains("| person | 75.00 | 100.00 |"));
}

TEST_CASE("cli: bfcn eval misuse and bad inputs exit 1 with the reason", "[eval]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_eval_cli_bad");
  write_labels(tmp / "gt/a.png", {0, 0, 0, 0, 0, 0});
  write_labels(tmp / "gt/b.png", {0, 0, 0, 0, 0, 0});
  write_labels(tmp / "pred/a.png", {0, 0, 0, 0, 0, 0});
  const std::string dirs =
      " --pred-dir " + (tmp / "pred").string() + " --gt-dir " + (tmp / "gt").string();
  auto r = test::run_command(eval_cmd(dirs + " --dataset voc"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("1 of 2 ground-truth images have no prediction") &&
                             Catch::Contains(": b"));
  r = test::run_command(eval_cmd(dirs + " --dataset kitti"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("--dataset must be voc or cityscapes, got 'kitti'"));
  r = test::run_command(eval_cmd(dirs));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("--dataset is required"));
  r = test::run_command(eval_cmd("--gt-dir x"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("either --pred-dir"));
  r = test::run_command(eval_cmd(dirs + " --dataset voc --flip"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("--flip applies to --checkpoint"));
  r = test::run_command(eval_cmd("--checkpoint " + (tmp / "none.h5").string()));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("none.h5"));
  r = test::run_command(eval_cmd("--checkpoint x.h5 --scales 1,abc"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("--scales expects positive numbers"));
  r = test::run_command(eval_cmd("--bogus"));
  REQUIRE(r.status == 1);
  REQUIRE_THAT(r.output, Catch::Contains("unknown flag '--bogus'"));
  r = test::run_command(eval_cmd("--help"));
  REQUIRE(r.status == 0);
  REQUIRE_THAT(r.output, Catch::Contains("--pred-format") && Catch::Contains("Examples"));
}
