// `bfcn eval --checkpoint` end to end: a randomly initialised FCN-8s saved with train/checkpoint.h
// over a tiny VOC-layout dataset; the command's mIoU equals evaluate_dataset() called directly
// with the same model, and --save-pred writes one raw PNG, colour mask and panel per image.
#include <fstream>
#include <nlohmann/json.hpp>

#include "autograd/var.h"
#include "datasets/image_io.h"
#include "eval/evaluate.h"
#include "layers/model.h"
#include "tests/support/test_support.h"
#include "train/checkpoint.h"

using namespace bfcn;
namespace fs = std::filesystem;

namespace {

// VOC2012 layout: 2 val images 40x56 with random colours and labels in {0, 1, 15, 255}.
void make_voc(const fs::path& root) {
  Rng rng(5);
  fs::create_directories(root / "JPEGImages");
  fs::create_directories(root / "SegmentationClass");
  fs::create_directories(root / "ImageSets/Segmentation");
  std::ofstream list(root / "ImageSets/Segmentation/val.txt");
  const Palette pal = voc_palette();
  for (const char* id : {"2000_000001", "2000_000002"}) {
    ImageRGB im;
    im.height = 40;
    im.width = 56;
    im.data.resize(40 * 56 * 3);
    for (auto& v : im.data) v = static_cast<uint8_t>(rng.randint(0, 256));
    std::vector<uint8_t> lab(40 * 56);
    const uint8_t values[4] = {0, 1, 15, 255};
    for (auto& v : lab) v = values[rng.randint(0, 4)];
    write_image_rgb(root / "JPEGImages" / (std::string(id) + ".jpg"), im);
    write_label_png(root / "SegmentationClass" / (std::string(id) + ".png"), lab.data(), 40, 56,
                    &pal);
    list << id << "\n";
  }
}

}  // namespace

TEST_CASE("cli: bfcn eval --checkpoint matches evaluate_dataset and saves predictions", "[eval]") {
  if (!fs::exists(test::bfcn_binary())) BFCN_SKIP("bfcn binary not built");
  test::TempDir tmp("bfcn_eval_ckpt");
  make_voc(tmp / "VOC2012");
  nlohmann::json cfg = {{"model", {{"backbone", "resnet18"}, {"head", "fcn8s"}, {"n_classes", 21}}},
                        {"data", {{"dataset", "voc"}, {"root", (tmp / "VOC2012").string()}}}};
  std::shared_ptr<SegmentationModel> model = build_model(cfg["model"], 3);
  model->eval();
  save_checkpoint(tmp / "m.h5", *model, nullptr, TrainState{}, cfg);

  auto r = test::run_command(test::bfcn_binary().string() + " eval --checkpoint " +
                             (tmp / "m.h5").string() + " --flip --save-pred " +
                             (tmp / "out").string() + " --json " + (tmp / "m.json").string());
  INFO(r.output);
  REQUIRE(r.status == 0);
  std::ifstream jf(tmp / "m.json");
  nlohmann::json j = nlohmann::json::parse(jf);
  REQUIRE(j["n_images"] == 2);
  REQUIRE(j["inference"]["flip"] == true);
  for (const char* id : {"2000_000001", "2000_000002"}) {
    LabelMap p = read_label_png(tmp / "out" / (std::string(id) + ".png"));
    REQUIRE(p.width == 56);
    REQUIRE(p.height == 40);
    REQUIRE(fs::exists(tmp / "out/color" / (std::string(id) + "_color.png")));
    REQUIRE(fs::exists(tmp / "out/panel" / (std::string(id) + "_panel.png")));
  }
  // The same model through the library: identical metrics.
  DataConfig dc = DataConfig::from_json(cfg["data"], "data");
  auto ds = make_dataset(dc, "val");
  LogitsFn fn = [model](const Tensor& x) {
    NoGradGuard ng;
    return model->forward(Var(x)).value();
  };
  EvaluateOptions o;
  o.inference.flip = true;
  o.log_every = 0;
  EvaluateResult direct = evaluate_dataset(*ds, fn, o);
  REQUIRE(j["miou"].get<double>() == Approx(direct.metrics.miou).epsilon(1e-12));
  REQUIRE(j["valid_pixels"] == direct.metrics.valid_pixels);
  // The saved predictions, scored as a prediction folder, give the same numbers again.
  r = test::run_command(test::bfcn_binary().string() + " eval --pred-dir " +
                        (tmp / "out").string() + " --gt-dir " + (tmp / "VOC2012").string() +
                        " --dataset voc --json " + (tmp / "f.json").string());
  REQUIRE(r.status == 0);
  std::ifstream ff(tmp / "f.json");
  nlohmann::json f = nlohmann::json::parse(ff);
  REQUIRE(f["miou"].get<double>() == Approx(direct.metrics.miou).epsilon(1e-12));
}
