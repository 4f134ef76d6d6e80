// `bfcn export` and `bfcn infer` end to end through the binary: checkpoint -> .bfcn -> label PNGs
// equal to running the loaded model in-process on the same pixels.
#include <catch2/catch.hpp>
#include <filesystem>
#include <string>

#include "datasets/image_io.h"
#include "runtime/engine.h"
#include "tests/datasets/fixtures.h"
#include "tests/support/test_support.h"
#include "tests/support/tiny_checkpoint.h"

using namespace bfcn;
namespace fs = std::filesystem;

TEST_CASE("cli: bfcn export then bfcn infer writes the runtime's label maps", "[apps][cli]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_rt_cli");
  test::save_random_w1a2_checkpoint(tmp / "m.h5", 5, tmp / "none");
  const std::string bin = test::bfcn_binary().string();
  auto r = test::run_command(bin + " export --checkpoint " + (tmp / "m.h5").string() + " --out " +
                             (tmp / "m.bfcn").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  const rt::Model m = rt::Model::load((tmp / "m.bfcn").string());
  CHECK(m.num_classes() == 21);
  CHECK(m.class_names()[1] == "aeroplane");
  CHECK(fs::file_size(tmp / "m.bfcn") * 20 < fs::file_size(tmp / "m.h5"));

  ImageRGB img;
  img.height = 37;
  img.width = 50;
  img.data.resize(size_t(37) * 50 * 3);
  for (size_t i = 0; i < img.data.size(); ++i) img.data[i] = uint8_t((i * 37 + i / 150) % 256);
  fs::create_directories(tmp / "in");
  write_image_rgb(tmp / "in" / "a.png", img);
  r = test::run_command(bin + " infer --model " + (tmp / "m.bfcn").string() + " --input " +
                        (tmp / "in").string() + " --out " + (tmp / "out").string() +
                        " --color --threads 1");
  INFO(r.output);
  REQUIRE(r.status == 0);
  const LabelMap got = read_label_png(tmp / "out" / "a.png");
  REQUIRE(got.height == 37);
  REQUIRE(got.width == 50);
  CHECK(fs::exists(tmp / "out" / "a_color.png"));
  std::vector<float> x(size_t(3) * 37 * 50);
  for (size_t p = 0; p < size_t(37) * 50; ++p)
    for (size_t c = 0; c < 3; ++c) x[c * 37 * 50 + p] = img.data[p * 3 + c] / 255.0f;
  std::vector<uint8_t> labels;
  m.run(x.data(), 37, 50, nullptr, &labels);
  CHECK(got.data == labels);

  r = test::run_command(bin + " infer --model " + (tmp / "missing.bfcn").string() + " --input " +
                        (tmp / "in").string() + " --out " + (tmp / "out").string());
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("missing.bfcn"));
}

TEST_CASE("cli: bfcn export --verify compares runtime and training engine on val images",
          "[apps][cli]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_rt_verify");
  test::write_voc(tmp / "voc", 3, 40, 48, "val");
  test::save_random_w1a2_checkpoint(tmp / "m.h5", 5, tmp / "voc");
  const std::string bin = test::bfcn_binary().string();
  const std::string base = bin + " export --checkpoint " + (tmp / "m.h5").string() + " --out " +
                           (tmp / "m.bfcn").string() + " --threads 1 --verify ";
  auto r = test::run_command(base + "5");
  INFO(r.output);
  CHECK(r.status == 0);
  // 3 images exist (N is capped); a random model's logits agree to float rounding.
  CHECK_THAT(r.output, Catch::Contains("verify: 3 val images of voc: label agreement 100.0000 %"));
  // --data-root overrides the stored root; a wrong one is named in the error.
  r = test::run_command(base + "2 --data-root " + (tmp / "nowhere").string());
  INFO(r.output);
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("nowhere"));
  r = test::run_command(base + "-1");
  CHECK(r.status == 1);
  CHECK_THAT(r.output,
             Catch::Contains("--verify: expected a count of images >= 0 or 'all', got '-1'"));
  r = test::run_command(base + "3x");
  CHECK(r.status == 1);
  CHECK_THAT(r.output, Catch::Contains("got '3x'"));
  // all: the whole val split.
  r = test::run_command(base + "all");
  INFO(r.output);
  CHECK(r.status == 0);
  CHECK_THAT(r.output, Catch::Contains("verify: 3 val images of voc:"));
}
